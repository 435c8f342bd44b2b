"""The Kafka transport: the only code in newsmon that imports kafka."""
