"""Feeds -> RawStory: poll RSS/Atom feeds and publish each new story once.

Pure parts: `schedule` (when a feed is due: adaptive interval, publisher hints,
backoff), `parse` (feed bytes -> entries) and `normalise` (entry -> RawStory with a
stable id). `state` keeps per-feed validators, health and recently seen story ids;
`feedlist` is the list as a user edits it (OPML import, health table). The poll
loop and its Kafka host (state in a compacted topic, feeds shared by partition)
sit around them, and `commands` is the CLI. Fetching goes through the one safe
fetcher, `pipeline.http`.
"""
