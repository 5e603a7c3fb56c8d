"""Alembic migrations of the record store (run by store.migrate; `alembic` CLI not needed)."""
