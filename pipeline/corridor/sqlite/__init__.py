"""The embedded transport of `newsmon run`: SQLite queues in place of Kafka topics."""
