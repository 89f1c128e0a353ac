"""Alembic's environment: run on the connection the store hands over (never a URL of its own)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tinymlaas.store.tables import Base

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
