"""Alembic environment: runs on the engine handed over by `grader.store.db.upgrade`."""

from __future__ import annotations

from alembic import context

from grader.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    )
    context.run_migrations()
