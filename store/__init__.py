"""Persistence: SQLAlchemy 2 (async) tables, sessions and the transactions the activities run."""
