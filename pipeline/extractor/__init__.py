"""RawStory -> EnrichedStory: the article's text, its named entities and its topics.

Pure parts: `text*` (page HTML -> article text and metadata), `entities` (spaCy
NER, folded per story), `terms` and `topics` (topic tags scored against the
taxonomy the config loaded). `enrich` puts them together for a batch of stories;
`pages` fetches article pages through `pipeline.http`; `pool` runs enrichment on
every core; the Kafka host, `offline` (`newsmon enrich`) and `commands` (the CLI)
sit around them.
"""
