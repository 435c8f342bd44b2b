"""Alert -> chat (Apprise) and signed JSON webhooks (Standard Webhooks).

Pure parts: `format` (what people and machines receive), `signing`, `ratelimit`
and `retry` (when to try again). `adapters` talk to the destinations, `dispatch`
makes one attempt decision at a time, `scheduler` keeps waiting deliveries; the
Kafka worker (`stage`, `worker`) and the one-process mode (`local`) are thin hosts
around them.
"""
