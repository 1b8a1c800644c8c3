"""The database: reachable, at this siyu's schema revision, every table and column the models
define, an installation id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from worker.config import Settings
from worker.errors import UserError
from worker.services.doctor.report import INIT, Finding
from worker.store import migrate, models
from worker.store.db import check_connection, describe, installation_id, make_engine


def check_database(settings: Settings, findings: list[Finding]) -> tuple[Engine | None, bool]:
    """Reachable, every table and column the models define, an installation id.

    Returns the engine when it has an installation id (else None), and whether the schema
    is complete (the checks that read accounts need it).
    """
    try:
        engine = make_engine(settings.database_url)
    except UserError as exc:
        findings.append(Finding("database", False, str(exc), "correct SIYU_DATABASE_URL"))
        return None, False
    where = describe(engine)
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:" and not Path(path).exists():
        findings.append(Finding("database", False, f"no database file at {path}", INIT))
        return None, False
    try:
        check_connection(engine)
        with engine.connect() as conn:
            revision = migrate.current(conn)
        gaps = _schema_gaps(engine)
        has_uid = gaps is None or not gaps.touches(models.Installation.__tablename__)
        uid = installation_id(engine) if has_uid else None
    except UserError as exc:  # unreachable, or reachable without an installation id
        findings.append(Finding("database", False, str(exc), _database_fix(exc)))
        return None, False
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        findings.append(Finding("database", False, f"{where}: {reason}", "check the database"))
        return None, False
    behind = _revision_problem(revision)
    if behind is not None:
        message, fix = behind
        if gaps is not None:
            message += f"; {gaps.message()}"
            fix = fix if not gaps.required else gaps.fix()
        findings.append(Finding("database", False, f"{where}: {message}", fix))
    elif gaps is not None:
        findings.append(Finding("database", False, f"{where}: {gaps.message()}", HAND_CHANGED))
    if uid is None:
        return None, False
    current = behind is None and gaps is None
    if current:
        message = f"{where}: schema current (revision {revision}), installation {uid}"
        findings.append(Finding("database", True, message))
    return engine, current


HAND_CHANGED = (
    "the schema is at this siyu's revision yet differs from it (changed by hand?): "
    "restore the database from a backup"
)


def _revision_problem(revision: str | None) -> tuple[str, str] | None:
    """(message, fix) when the database's schema revision is not this siyu's; else None."""
    head = migrate.head()
    if revision == head:
        return None
    if revision is None:
        return f"schema made before migrations, this siyu needs revision {head}", INIT
    if not migrate.is_known(revision):
        return (
            f"schema revision {revision} is newer than this siyu (it knows up to {head})",
            "run the siyu version that migrated it",
        )
    return f"schema at revision {revision}, behind this siyu's {head}", INIT


def _database_fix(exc: UserError) -> str:
    if "installation id" in str(exc):
        return INIT
    return "start the database server or correct SIYU_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class SchemaGaps:
    """What `init_db` would still have to create: tables, and columns by whether it can.

    `init_db` creates missing tables and adds missing nullable columns; a missing NOT NULL
    column it cannot add, so that one needs a person.
    """

    tables: list[str]
    nullable: list[str]
    required: list[str]

    def touches(self, table: str) -> bool:
        columns = self.nullable + self.required
        return table in self.tables or any(c.startswith(f"{table}.") for c in columns)

    def message(self) -> str:
        parts = []
        if self.tables:
            parts.append(f"missing tables: {', '.join(self.tables)}")
        if self.nullable or self.required:
            parts.append(f"missing columns: {', '.join(self.nullable + self.required)}")
        return "; ".join(parts)

    def fix(self) -> str:
        if not self.required:
            return INIT
        return (
            f"`siyu init` cannot add NOT NULL columns ({', '.join(self.required)}): this "
            "database was made by another siyu version; add them by hand or start a new one"
        )


def _schema_gaps(engine: Engine) -> SchemaGaps | None:
    """Every table and column the models define that the database lacks; None if none."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    gaps = SchemaGaps([], [], [])
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in present:
            gaps.tables.append(table.name)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                missing = gaps.nullable if column.nullable else gaps.required
                missing.append(f"{table.name}.{column.name}")
    return gaps if gaps.message() else None
