from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline.errors import ConfigError
from pipeline.notifier.signing import as_whsec, signature_headers, signing_key

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"alert_id":"a1","kind":"alert"}'


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        (WHSEC, KEY),
        (WHSEC.rstrip("="), KEY),  # unpadded base64 is accepted, as the reference library does
        ("my raw secret", b"my raw secret"),
        ("whsec", b"whsec"),  # no underscore: a raw secret that happens to look similar
    ],
)
def test_signing_key(secret: str, key: bytes) -> None:
    assert signing_key(secret) == key


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "whsec_@@@@"])
def test_bad_secrets_are_config_errors(secret: str) -> None:
    with pytest.raises(ConfigError):
        signing_key(secret)


@pytest.mark.parametrize("secret", [WHSEC, "my raw secret"])
def test_receiver_verifies_with_the_reference_library(secret: str) -> None:
    key = signing_key(secret)
    headers = signature_headers(key, "a1", _now(), BODY)
    receiver_secret = secret if secret.startswith("whsec_") else as_whsec(key)
    assert Webhook(receiver_secret).verify(BODY, headers) == {"alert_id": "a1", "kind": "alert"}
    assert headers["webhook-id"] == "a1"
    assert headers["webhook-signature"].startswith("v1,")


def test_tampered_body_or_other_secret_fails_verification() -> None:
    headers = signature_headers(KEY, "a1", _now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(BODY.replace(b"a1", b"a2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(as_whsec(b"another key entirely")).verify(BODY, headers)


def test_signature_matches_the_spec_by_hand() -> None:
    import hashlib
    import hmac

    headers = signature_headers(KEY, "msg_1", 1_700_000_000, BODY)
    signed = b"msg_1.1700000000." + BODY
    digest = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": f"v1,{digest}",
    }


def _now() -> int:
    import time

    return int(time.time())
