"""`newsmon demo`: sample feeds and pages served on 127.0.0.1, so newsmon runs without internet."""
