"""Databases as an older siyu left them, for the migration and doctor tests."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.engine import Row

from worker.store import migrate


def as_made_before_migrations(conn: Connection, *statements: str) -> None:
    """Turn a current database into one the last siyu before Alembic made: the baseline's
    tables, no `alembic_version`; then run `statements` (drop what that siyu lacked)."""
    command.downgrade(migrate.config(conn), migrate.BASELINE)
    conn.execute(text("DROP TABLE alembic_version"))
    for statement in statements:
        conn.execute(text(statement))


def snapshot(engine: Engine) -> dict[str, list[Row[tuple[object, ...]]]]:
    """Every row of every table, ordered by its primary key (alembic's own table left out)."""
    schema = MetaData()
    schema.reflect(engine)
    rows = {}
    with engine.connect() as conn:
        for table in schema.sorted_tables:
            if table.name != "alembic_version":
                query = table.select().order_by(*table.primary_key.columns)
                rows[table.name] = list(conn.execute(query).all())
    return rows
