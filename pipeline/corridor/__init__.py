"""The corridor: how a record between two stages is settled, written once.

`settle.py` holds the policy (decode failure and `PipelineError` -> dead letter,
`Retryable` -> retried with backoff up to `kafka.max_attempts`, success -> publish,
then acknowledge) and `runner.py` the loop that keeps chunks in flight. The two
transports under it, `kafka/` (the Kafka workers) and `sqlite/` (`newsmon run`), only
poll, publish and acknowledge. See docs/architecture.md.
"""
