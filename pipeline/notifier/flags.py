"""`--webhook URL --webhook-secret S` and `--apprise URL`: destinations without editing config.

Flag destinations are added to the configured ones, with ids `webhook-1`,
`webhook-2`, ... and `apprise-1`, ... in the order given (rules can name them in
`notify`). Each `--webhook` needs its own `--webhook-secret`, paired by position.
Values on a command line are visible to other users of the machine (`ps`): for
shared hosts put destinations in `NEWSMON_NOTIFIER__DESTINATIONS` (JSON) instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from pydantic import ValidationError

from pipeline.config import Config, Destination
from pipeline.errors import ConfigError
from pipeline.notifier.signing import signing_key


def add_destination_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("destinations (added to those in the config)")
    group.add_argument(
        "--webhook", action="append", default=[], metavar="URL",
        help="signed JSON webhook endpoint (repeatable; id webhook-N)",
    )  # fmt: skip
    group.add_argument(
        "--webhook-secret", action="append", default=[], metavar="SECRET",
        help="Standard Webhooks secret (whsec_<base64> or raw), one per --webhook, in order",
    )  # fmt: skip
    group.add_argument(
        "--apprise", action="append", default=[], metavar="URL",
        help="Apprise URL: slack://..., discord://..., mailto://... (repeatable; id apprise-N)",
    )  # fmt: skip


def flag_destinations(
    webhooks: Sequence[str], secrets: Sequence[str], apprise_urls: Sequence[str]
) -> list[Destination]:
    """Destinations for the flag values; `ConfigError` names the flag that is wrong."""
    if len(secrets) != len(webhooks):
        raise ConfigError(
            [f"--webhook-secret: give one per --webhook, in order "
             f"({len(webhooks)} webhooks, {len(secrets)} secrets)"]
        )  # fmt: skip
    problems: list[str] = []
    found: list[Destination] = []
    for n, (url, secret) in enumerate(zip(webhooks, secrets, strict=True), 1):
        found.extend(_destination("--webhook", f"webhook-{n}", url, secret, problems))
    for n, url in enumerate(apprise_urls, 1):
        found.extend(_destination("--apprise", f"apprise-{n}", url, None, problems))
    if problems:
        raise ConfigError(problems)
    return found


def _destination(
    flag: str, ident: str, url: str, secret: str | None, problems: list[str]
) -> list[Destination]:
    kind = "webhook" if secret is not None else "apprise"
    try:
        if secret is not None:
            signing_key(secret)
        return [
            Destination.model_validate({"id": ident, "type": kind, "url": url, "secret": secret})
        ]
    except ValidationError as exc:
        problems.extend(
            f"{flag} ({ident}): {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
    except ConfigError as exc:
        problems.extend(f"{flag} ({ident}): {p}" for p in exc.problems)
    return []


def with_destinations(config: Config, extra: Sequence[Destination]) -> Config:
    """The config with `extra` destinations added after the configured ones."""
    if not extra:
        return config
    notifier = config.settings.notifier
    taken = {d.id for d in notifier.destinations}
    clashes = sorted(d.id for d in extra if d.id in taken)
    if clashes:
        raise ConfigError([f"destination id {clashes[0]!r} is in the config and given by a flag"])
    destinations = [*notifier.destinations, *extra]
    settings = config.settings.model_copy(
        update={"notifier": notifier.model_copy(update={"destinations": destinations})}
    )
    return replace(config, settings=settings)


def apply_destination_flags(args: argparse.Namespace, config: Config) -> Config:
    extra = flag_destinations(args.webhook, args.webhook_secret, args.apprise)
    return with_destinations(config, extra)
