"""``/sync``: one module per stream (tokens, rooms, account data, filters) and the handler."""
