"""The D1 database binding (SQLite locally) and its migrations."""

from d1.database import D1Database, D1Error, D1Result, PreparedStatement
from d1.migrations import apply_migrations

__all__ = ["D1Database", "D1Error", "D1Result", "PreparedStatement", "apply_migrations"]
