"""Bring tables an older siyu made up to a frozen schema, additively.

Before Alembic, `siyu init` created tables straight from the models and grew them by adding
what was missing. The baseline migration adopts such a database with the same rules, against
the schema frozen in that migration (never today's models): create the tables it lacks, add
the nullable columns and the indexes it lacks, and drop NOT NULL where a column became
optional. Later changes are ordinary migrations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, inspect, text
from sqlalchemy.schema import CreateTable


def adopt(conn: Connection, schema: MetaData) -> None:
    """Make the database hold at least `schema`: what exists stays, with its rows."""
    schema.create_all(conn)  # only the tables that do not exist
    inspector = inspect(conn)
    for table in schema.sorted_tables:
        found = {column["name"]: column for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in found and column.nullable:
                conn.execute(
                    text(f'ALTER TABLE "{table.name}" ADD COLUMN {_column_sql(conn, column)}')
                )
        relaxed = [
            column.name
            for column in table.columns
            if column.nullable and column.name in found and not found[column.name]["nullable"]
        ]
        if relaxed:
            _drop_not_null(conn, table, relaxed, list(found))
    inspector = inspect(conn)
    for table in schema.sorted_tables:
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)


def _column_sql(conn: Connection, column: Column[Any]) -> str:
    """`"name" TYPE [REFERENCES "table" ("column")]` for ALTER TABLE ... ADD COLUMN."""
    sql = f'"{column.name}" {column.type.compile(dialect=conn.dialect)}'
    for fk in column.foreign_keys:
        sql += f' REFERENCES "{fk.column.table.name}" ("{fk.column.name}")'
    return sql


def _drop_not_null(conn: Connection, table: Table, columns: list[str], present: list[str]) -> None:
    """Make `columns` nullable. PostgreSQL alters them; SQLite cannot, so the table is built
    anew from the schema and its rows copied over (its indexes are made again afterwards).

    Only for tables no other table references: SQLite checks foreign keys on DROP TABLE.
    """
    if conn.dialect.name != "sqlite":
        for name in columns:
            conn.execute(text(f'ALTER TABLE "{table.name}" ALTER COLUMN "{name}" DROP NOT NULL'))
        return
    fresh = f"{table.name}__upgrade"
    ddl = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
    header = f"CREATE TABLE {table.name} "
    if not ddl.startswith(header):
        raise RuntimeError(f"cannot rebuild table {table.name}: unexpected DDL {ddl[:60]!r}")
    conn.execute(text(f'CREATE TABLE "{fresh}" ' + ddl[len(header) :]))
    kept = ", ".join(f'"{name}"' for name in present if name in table.columns)
    conn.execute(text(f'INSERT INTO "{fresh}" ({kept}) SELECT {kept} FROM "{table.name}"'))  # noqa: S608  (our names)
    conn.execute(text(f'DROP TABLE "{table.name}"'))
    conn.execute(text(f'ALTER TABLE "{fresh}" RENAME TO "{table.name}"'))
