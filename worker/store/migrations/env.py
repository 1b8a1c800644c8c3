"""Alembic's environment: migrate the connection `siyu init` hands over, or the database of
the settings when a developer runs `alembic` (`alembic revision --autogenerate -m ...`).

The target is the models' metadata: `tests/test_migrations.py` checks that the migrations
and the models agree. SQLite alters tables in batch mode (copy and move), as it must.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import worker.store.models  # noqa: F401  (fills SQLModel.metadata)


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("siyu's migrations run online only: `siyu init`, or `alembic upgrade`")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from worker.config import get_settings
    from worker.store.db import make_engine

    engine = make_engine(get_settings().database_url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


main()
