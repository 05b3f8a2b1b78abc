"""Federation endpoints that serve rooms to other servers: transactions, events and state,
backfill, and the membership handshakes (join, leave, knock, invite)."""
