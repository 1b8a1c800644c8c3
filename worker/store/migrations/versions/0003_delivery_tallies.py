"""Delivery tallies: counts by (run, account, state) and sends per minute, kept by triggers.

Every writer of `deliveries` is counted, whatever statement it runs, so status pages and
the Prometheus gauges read a few rows instead of counting millions (`worker.store.tallies`).

- SQLite (one writer at a time): row triggers add to `delivery_counts` and `sent_minutes`.
- PostgreSQL: statement triggers append one row per (run, account, state) a statement
  changed to `delivery_count_deltas` (and per minute to `sent_minute_deltas`); the tick folds
  them in. Appending takes no lock another lane waits on, as a shared counter row would.

Existing deliveries are counted once, under a lock that holds writers off meanwhile.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 21:19:40.455587
"""

# ruff: noqa: S608  (trigger DDL assembled from this file's own constants; no input reaches it)
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Sends per minute are kept this long (the chart shows the last hour; the ETA, minutes).
KEEP_MINUTES_DAYS = 2

KEY = "coalesce(run_id, 0), coalesce(account_id, 0)"

PG_FUNCTIONS = {
    "siyu_tally_inserted_deliveries": f"""
        INSERT INTO delivery_count_deltas (run_id, account_id, state, n)
        SELECT {KEY}, state, count(*) FROM new_rows GROUP BY 1, 2, 3;
        INSERT INTO sent_minute_deltas (run_id, account_id, minute, n)
        SELECT {KEY}, date_trunc('minute', sent_at), count(*) FROM new_rows
        WHERE state = 'sent' AND sent_at IS NOT NULL GROUP BY 1, 2, 3;""",
    "siyu_tally_updated_deliveries": f"""
        INSERT INTO delivery_count_deltas (run_id, account_id, state, n)
        SELECT run_id, account_id, state, sum(n) FROM (
            SELECT {KEY}, state, -1 FROM old_rows
            UNION ALL SELECT {KEY}, state, 1 FROM new_rows
        ) AS changed (run_id, account_id, state, n)
        GROUP BY run_id, account_id, state HAVING sum(n) <> 0;
        INSERT INTO sent_minute_deltas (run_id, account_id, minute, n)
        SELECT coalesce(n.run_id, 0), coalesce(n.account_id, 0),
               date_trunc('minute', n.sent_at), count(*)
        FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.state = 'sent' AND o.state <> 'sent' AND n.sent_at IS NOT NULL
        GROUP BY 1, 2, 3;""",
    "siyu_tally_deleted_deliveries": f"""
        INSERT INTO delivery_count_deltas (run_id, account_id, state, n)
        SELECT {KEY}, state, -count(*) FROM old_rows GROUP BY 1, 2, 3;""",
}
PG_TRIGGERS = {
    "deliveries_tally_insert": ("INSERT", "NEW TABLE AS new_rows", "inserted"),
    "deliveries_tally_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "updated"),
    "deliveries_tally_delete": ("DELETE", "OLD TABLE AS old_rows", "deleted"),
}


def _count(row: str, sign: str) -> str:
    return f"""
        INSERT INTO delivery_counts (run_id, account_id, state, n)
        VALUES (coalesce({row}.run_id, 0), coalesce({row}.account_id, 0), {row}.state, {sign}1)
        ON CONFLICT (run_id, account_id, state) DO UPDATE SET n = n {sign} 1;"""


SENT_MINUTE = """
        INSERT INTO sent_minutes (run_id, account_id, minute, n)
        VALUES (coalesce(NEW.run_id, 0), coalesce(NEW.account_id, 0),
                strftime('%Y-%m-%d %H:%M:00.000000', NEW.sent_at), 1)
        ON CONFLICT (run_id, account_id, minute) DO UPDATE SET n = n + 1;"""
CHANGED = (
    "OLD.state IS NOT NEW.state OR OLD.account_id IS NOT NEW.account_id "
    "OR OLD.run_id IS NOT NEW.run_id"
)
SQLITE_TRIGGERS = {
    "deliveries_count_insert": ("AFTER INSERT ON deliveries", _count("NEW", "+")),
    "deliveries_sent_insert": (
        "AFTER INSERT ON deliveries WHEN NEW.state = 'sent' AND NEW.sent_at IS NOT NULL",
        SENT_MINUTE,
    ),
    "deliveries_count_update": (
        f"AFTER UPDATE OF state, account_id, run_id ON deliveries WHEN {CHANGED}",
        _count("OLD", "-") + _count("NEW", "+"),
    ),
    "deliveries_sent_update": (
        "AFTER UPDATE OF state ON deliveries "
        "WHEN NEW.state = 'sent' AND OLD.state <> 'sent' AND NEW.sent_at IS NOT NULL",
        SENT_MINUTE,
    ),
    "deliveries_count_delete": ("AFTER DELETE ON deliveries", _count("OLD", "-")),
}


def upgrade() -> None:
    _create_tables()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE")
        _count_existing("date_trunc('minute', sent_at)", _pg_since())
        for name, body in PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN{body}\n        RETURN NULL;\nEND $$"
            )
        for name, (event, tables, verb) in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON deliveries REFERENCING {tables} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION siyu_tally_{verb}_deliveries()"
            )
    else:  # SQLite: `siyu init` holds the write lock (BEGIN IMMEDIATE)
        _count_existing(
            "strftime('%Y-%m-%d %H:%M:00.000000', sent_at)",
            f"datetime('now', '-{KEEP_MINUTES_DAYS} days')",
        )
        for name, (when, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN{body}\nEND")


def _pg_since() -> str:
    return f"(now() AT TIME ZONE 'utc') - interval '{KEEP_MINUTES_DAYS} days'"


def _count_existing(minute: str, since: str) -> None:
    op.execute(
        "INSERT INTO delivery_counts (run_id, account_id, state, n) "
        f"SELECT {KEY}, state, count(*) FROM deliveries GROUP BY 1, 2, 3"
    )
    op.execute(
        "INSERT INTO sent_minutes (run_id, account_id, minute, n) "
        f"SELECT {KEY}, {minute}, count(*) FROM deliveries "
        f"WHERE state = 'sent' AND sent_at >= {since} GROUP BY 1, 2, 3"
    )


def _create_tables() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "delivery_counts",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", string(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id", "state"),
    )
    op.create_table(
        "delivery_count_deltas",
        sa.Column("id", big_id, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("state", string(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sent_minutes",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "account_id", "minute"),
    )
    op.create_table(
        "sent_minute_deltas",
        sa.Column("id", big_id, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON deliveries")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for table in ("sent_minute_deltas", "sent_minutes", "delivery_count_deltas", "delivery_counts"):
        op.drop_table(table)
