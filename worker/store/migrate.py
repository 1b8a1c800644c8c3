"""Schema migrations: Alembic's scripts in `worker/store/migrations`, applied by `init_db`.

`siyu init` (and each worker as it starts) runs `upgrade` inside the transaction that holds
the init lock, so two at once take turns and the second finds nothing left to do. A database
already at the head costs one query.
"""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from worker.errors import UserError

SCRIPTS = "worker.store:migrations"
BASELINE = "0001"  # the schema of the last siyu before migrations


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; with `connection`, its commands run on that connection."""
    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    if connection is not None:
        config.attributes["connection"] = connection  # env.py migrates this one
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this siyu's models correspond to."""
    found = _scripts().get_current_head()
    assert found is not None  # the baseline exists
    return found


def current(conn: Connection) -> str | None:
    """The database's revision; None for an empty database or one made before Alembic."""
    return MigrationContext.configure(conn).get_current_revision()


def is_known(revision: str) -> bool:
    """Whether this siyu has the migration `revision` (a newer siyu may have migrated past)."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(conn: Connection) -> None:
    """Apply, inside the caller's transaction, every migration the database lacks.

    A database a newer siyu migrated is refused: this code does not know its schema.
    """
    at = current(conn)
    if at == head():
        return
    if at is not None and not is_known(at):
        raise UserError(
            f"the database is at schema revision {at}, which this siyu does not know "
            f"(it expects {head()}): a newer siyu migrated it; run that version"
        )
    command.upgrade(config(conn), "head")
