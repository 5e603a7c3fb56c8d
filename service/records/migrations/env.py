"""Alembic environment: always run from service.records.store.migrate with an open connection."""

from __future__ import annotations

from alembic import context

from service.records.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through service.records.store.migrate(url)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
