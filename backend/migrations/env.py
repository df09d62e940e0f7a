"""Alembic environment: migrations run through the same engine setup as the service."""

from __future__ import annotations

from alembic import context

from backend import models  # noqa: F401  (registers every table on Base.metadata)
from backend.db import Base, create_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("alembic: sqlalchemy.url is not set (use backend.db.migrate)")

engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
