"""The history of stories and alerts: one store (`store.py`), two feeders (`feeder.py`)."""
