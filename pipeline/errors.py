"""One exception tree for the whole pipeline.

Stages raise typed errors with context instead of returning None, so a runner
can decide in one place what happens next: dead-letter the record (a
`PipelineError`), try again later (`Retryable`), or drop it on purpose (`Skip`).
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error newsmon raises on purpose.

    `reason` is a short, fixed token (safe as a metric label and a Kafka
    header); the message carries the human detail.
    """

    reason: str = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or (reason or self.reason))
        if reason is not None:
            self.reason = reason


class ConfigError(PipelineError):
    """A configuration file or variable is invalid; the messages name file, entry and field."""

    reason = "config"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[str]]]:
        """Pickled as its problems (a process pool hands it to its parent)."""
        return (type(self), (self.problems,))


class Skip(PipelineError):
    """Not an error: the record is deliberately dropped (already seen, filtered out)."""

    reason = "skip"


class Retryable(PipelineError):
    """A transient failure; the same input may succeed later."""

    reason = "retryable"

    def __init__(
        self, message: str = "", *, reason: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


# --- the wire -----------------------------------------------------------------


class DecodeError(PipelineError):
    """Bytes on a topic are not valid JSON of the expected contract."""

    reason = "decode"


class SchemaError(DecodeError):
    """Valid JSON that does not satisfy the message contract (or an unknown schema_version)."""

    reason = "schema"


# --- HTTP -----------------------------------------------------------------------


class FetchError(PipelineError):
    """Fetching a URL failed for good (bad status, not allowed, too large...)."""

    reason = "fetch"


class FetchRefused(FetchError):
    """The URL or the address it resolves to is not allowed (scheme, private network)."""

    reason = "refused"


class ResponseTooLarge(FetchError):
    """The body grew past the configured limit (counted after decompression)."""

    reason = "too_large"


class FetchTimeout(Retryable):
    """The server did not answer in time."""

    reason = "timeout"


# --- stages -----------------------------------------------------------------------


class FeedError(PipelineError):
    """A feed could not be fetched or yielded no entries."""

    reason = "feed"


class ExtractionRejected(PipelineError):
    """A page gave no usable article text (too short, not HTML, paywalled...)."""

    reason = "extraction"


class RuleError(PipelineError):
    """A rule cannot be compiled or evaluated."""

    reason = "rule"


class DeliveryError(PipelineError):
    """An alert could not be delivered to a destination and retrying will not help."""

    reason = "delivery"


class DeliveryRetryable(Retryable):
    """A destination is down or throttling; delivery should be tried again."""

    reason = "delivery_retry"
