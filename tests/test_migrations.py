"""Schema migrations (issue 11, item 2): Alembic's scripts agree with the models; `siyu init`
applies them to an empty database, to one an older siyu made (keeping every row), and to one
several revisions behind; it refuses one a newer siyu migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from tests.support.schema import as_made_before_migrations, snapshot
from tests.support.world import add_accounts, add_campaign, add_contacts, make_context, start
from worker.campaigns.materialise import materialise
from worker.errors import UserError
from worker.store import migrate
from worker.store.db import init_db, make_engine


@pytest.fixture
def bare(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database: nothing created yet."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list[object]:
    """What `alembic revision --autogenerate` would write: models against the database."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current(conn)


def test_the_migrations_of_an_empty_database_match_the_models(bare: Engine) -> None:
    init_db(bare)
    assert revision(bare) == migrate.head()
    assert differences(bare) == []


def test_init_twice_changes_nothing_the_second_time(bare: Engine) -> None:
    init_db(bare)
    before = snapshot(bare)
    init_db(bare)
    assert snapshot(bare) == before and revision(bare) == migrate.head()


def test_every_migration_goes_down_and_up_again(bare: Engine) -> None:
    init_db(bare)
    with bare.begin() as conn:
        command.downgrade(migrate.config(conn), "base")
    assert set(inspect(bare).get_table_names()) <= {"alembic_version"}
    init_db(bare)
    assert differences(bare) == []


def fill(db_url: str, redis_url: str, tmp_path: Path) -> Engine:
    """A database with a bit of everything: accounts, contacts, a started campaign whose
    deliveries exist (materialised)."""
    ctx = make_context(db_url, redis_url, tmp_path)
    add_accounts(ctx.engine, ["a1", "a2"])
    add_contacts(ctx.engine, 30)
    add_campaign(ctx, "c1", ["a1", "a2"])
    run = start(ctx, "c1")
    materialise(ctx, run.id)  # type: ignore[arg-type]
    return ctx.engine


def test_a_database_an_older_siyu_made_is_upgraded_with_its_data_intact(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Today's schema before Alembic, with data: `siyu init` adopts it (adds what that siyu
    lacked: a column, an index), migrates it to the head, and every row is still there."""
    engine = fill(db_url, redis_url, tmp_path)
    with engine.begin() as conn:
        as_made_before_migrations(
            conn,
            "ALTER TABLE accounts DROP COLUMN next_send_at",
            "DROP INDEX ix_delivery_awaiting",
        )
    before = snapshot(engine)
    assert revision(engine) is None and len(before["deliveries"]) == 30
    init_db(engine)
    assert revision(engine) == migrate.head()
    assert differences(engine) == []
    after = snapshot(engine)
    assert set(after) > set(before), "the tables of later revisions were added"
    for table, rows in before.items():
        kept = [row._mapping for row in after[table]]
        assert [dict(r) for r in kept] == [
            {**r._mapping, **({"next_send_at": None} if table == "accounts" else {})} for r in rows
        ], table


def test_a_database_at_an_earlier_revision_is_brought_to_the_head(
    db_url: str, redis_url: str, tmp_path: Path
) -> None:
    engine = fill(db_url, redis_url, tmp_path)
    with engine.begin() as conn:
        command.downgrade(migrate.config(conn), migrate.BASELINE)
    before = snapshot(engine)
    init_db(engine)
    assert revision(engine) == migrate.head() and differences(engine) == []
    after = snapshot(engine)
    assert {table: after[table] for table in before} == before


def test_init_refuses_a_database_a_newer_siyu_migrated(bare: Engine) -> None:
    init_db(bare)
    with bare.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(UserError, match="revision f00d, which this siyu does not know"):
        init_db(bare)
    assert revision(bare) == "f00d"
