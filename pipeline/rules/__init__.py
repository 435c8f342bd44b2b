"""EnrichedStory -> Alert: watch terms compiled into one matcher, one alert per rule and story.

`compile.py` builds the matcher, `match.py` is the pure transform, `dedup.py`
and `store.py` remember what was raised, `engine.py` holds the live rule set,
`stage.py` is the Kafka runner and `commands.py` the CLI.
"""
