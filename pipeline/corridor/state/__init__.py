"""State that belongs to a partition: a local SQLite cache, a changelog as the truth.

A stage that must remember something to decide (the rules' alerted stories,
throttle windows and near-duplicate signatures; the notifier's delivery ledger;
spike counts) keeps it in `PartitionTables`: SQLite tables whose every row
belongs to one partition of the stage's input, each write mirrored to a
compacted changelog topic (`pipeline/corridor/kafka/changelog.py`). When a
partition is assigned, its rows are wiped from the cache and replayed from the
changelog before any of its records is handled; so a replica taking over finds
what the last owner wrote, as in Kafka Streams and Quix Streams. `newsmon run`
has no changelog (`NoChangelog`): its SQLite file is the truth.
"""

from pipeline.corridor.state.changelog import Changelog, NoChangelog
from pipeline.corridor.state.tables import PartitionTables, Table

__all__ = ["Changelog", "NoChangelog", "PartitionTables", "Table"]
