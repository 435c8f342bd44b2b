"""Standard Webhooks signatures, so a receiver can verify and deduplicate our POSTs.

Secrets: `whsec_<base64>` (the spec's format, as Svix and the reference libraries
print them) is base64-decoded into the HMAC key; any other string is used as the
key byte for byte (its UTF-8 encoding). `as_whsec` turns such a raw secret into
the `whsec_` form a receiver's library expects.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from standardwebhooks import Webhook

from pipeline.errors import ConfigError

SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for; `ConfigError` for one that is empty or not base64."""
    if not secret.startswith(SECRET_PREFIX):
        key = secret.encode("utf-8")
    else:
        key = _decode_whsec(secret[len(SECRET_PREFIX) :])
    if not key:
        raise ConfigError(["webhook secret: must not be empty"])
    return key


def _decode_whsec(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError([f"webhook secret: '{SECRET_PREFIX}...' is not valid base64"]) from exc


def as_whsec(key: bytes) -> str:
    """The `whsec_...` spelling of a key (what to give a receiver for a raw secret)."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def signature_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed webhook: id, Unix-seconds timestamp and `v1,<base64>`."""
    when = datetime.fromtimestamp(timestamp, UTC)
    signature = Webhook(key).sign(message_id, when, body.decode("utf-8"))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
