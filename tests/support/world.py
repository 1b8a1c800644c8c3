"""Build a small world (accounts, contacts, segment, campaign) directly in the database."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from worker.campaigns.lifecycle import CampaignSpec, create_campaign, start_campaign
from worker.config import Settings
from worker.runtime import Context, configure_celery, connect_redis
from worker.store.models import Account, CampaignRun, Contact, Segment, utcnow

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATE = (
    "{{ contact.name }}，{{ course_name }} 开课啦：{{ track(course_url) }} 群：{{ group_url }}"
)
VARS = {
    "course_name": "Python 入门",
    "course_url": "https://edu.example.com/py",
    "group_url": "https://g.example.com/1",
}


def write_policies(directory: Path, policies: dict[str, str]) -> Path:
    """A rate-limits directory holding the given `name -> TOML text` policies."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in policies.items():
        (directory / f"{name}.toml").write_text(text, encoding="utf-8")
    return directory


def make_context(db_url: str, redis_url: str, tmp_path: Path, **overrides: Any) -> Context:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "invite.j2").write_text(TEMPLATE, encoding="utf-8")
    settings = Settings(
        database_url=db_url,
        redis_url=redis_url,
        templates_dir=templates,
        state_dir=tmp_path / ".siyu",
        **overrides,
    )
    from worker.store.db import init_db, make_engine

    engine = make_engine(db_url)
    init_db(engine)
    configure_celery(redis_url, visibility_timeout_s=300)
    return Context(settings=settings, engine=engine, redis=connect_redis(redis_url))


def make_reply_context(db_url: str, redis_url: str, tmp_path: Path, **overrides: Any) -> Context:
    """`make_context` with the shipped reply persona and knowledge (`templates/replies`)."""
    ctx = make_context(db_url, redis_url, tmp_path, **overrides)
    shutil.copytree(REPO_TEMPLATES / "replies", ctx.settings.templates_dir / "replies")
    return ctx


def add_accounts(
    engine: Engine, names: Sequence[str], channel: str = "memory", **config: Any
) -> dict[str, int]:
    with Session(engine) as session:
        for name in names:
            session.add(Account(name=name, channel=channel, config=dict(config)))
        session.commit()
        rows = session.exec(select(Account.id, Account.name)).all()  # type: ignore[call-overload]
    return {name: id_ for id_, name in rows}


def add_contacts(
    engine: Engine,
    count: int,
    *,
    channel: str = "memory",
    tags: Sequence[str] = ("python",),
    owner_of: dict[int, int] | None = None,
    start: int = 1,
) -> None:
    if count <= 0:
        return
    now = utcnow()
    rows = [
        {
            "channel": channel,
            "external_id": f"u{i:06d}",
            "name": f"学员{i}",
            "tags": list(tags),
            "attrs": {"city": "上海"},
            "owner_id": (owner_of or {}).get(i),
            "created_at": now,
            "updated_at": now,
        }
        for i in range(start, start + count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Contact), rows)


def add_campaign(
    ctx: Context, name: str, accounts: Sequence[str], *, where: str = "tag = python", **spec: Any
) -> None:
    with Session(ctx.engine) as session:
        if session.exec(select(Segment).where(Segment.name == name)).first() is None:  # type: ignore[call-overload]
            session.add(Segment(name=name, expression=where))
            session.commit()
    create_campaign(
        ctx.engine,
        ctx.settings.templates_dir,
        CampaignSpec(
            name=name,
            segment=name,
            template="invite",
            accounts=list(accounts),
            variables=dict(VARS),
            **spec,
        ),
    )


def start(ctx: Context, name: str, *, force: bool = False) -> CampaignRun:
    return start_campaign(ctx, name, force=force).run
