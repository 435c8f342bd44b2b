"""`newsmon console`: the web console (pages, login, rule editor) over the history store."""
