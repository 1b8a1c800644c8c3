"""Find entities by their unique names, with errors a person can act on."""

from __future__ import annotations

from sqlmodel import Session, col, select

from worker.errors import NotFound
from worker.store.models import Account, Campaign, CampaignAccount, CampaignRun, Segment


def _known(session: Session, model: type[Account] | type[Campaign] | type[Segment]) -> str:
    names = sorted(session.exec(select(model.name).limit(11)).all())
    if not names:
        return "none exist yet"
    return "known: " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def campaign_by_name(session: Session, name: str) -> Campaign:
    found = session.exec(select(Campaign).where(Campaign.name == name)).first()
    if found is None:
        raise NotFound(f"no campaign named {name!r} ({_known(session, Campaign)})")
    return found


def account_by_name(session: Session, name: str) -> Account:
    found = session.exec(select(Account).where(Account.name == name)).first()
    if found is None:
        raise NotFound(f"no account named {name!r} ({_known(session, Account)})")
    return found


def segment_by_name(session: Session, name: str) -> Segment:
    found = session.exec(select(Segment).where(Segment.name == name)).first()
    if found is None:
        raise NotFound(f"no segment named {name!r} ({_known(session, Segment)})")
    return found


def campaign_accounts(session: Session, campaign_id: int) -> list[Account]:
    stmt = (
        select(Account)
        .join(CampaignAccount, col(CampaignAccount.account_id) == col(Account.id))
        .where(CampaignAccount.campaign_id == campaign_id)
        .order_by(col(CampaignAccount.position))
    )
    return list(session.exec(stmt).all())


def latest_run(session: Session, campaign_id: int) -> CampaignRun | None:
    stmt = (
        select(CampaignRun)
        .where(CampaignRun.campaign_id == campaign_id)
        .order_by(col(CampaignRun.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def hold(session: Session, row: Account | Segment) -> None:
    """Keep `row` (an account or segment) until the transaction ends: its deletion waits.

    FOR KEY SHARE, so a lane may still update an account's state meanwhile. A row deleted
    since it was read is reported as gone, never left to fail a foreign key.
    """
    model = type(row)
    stmt = select(model.id).where(model.id == row.id).with_for_update(read=True, key_share=True)
    if session.exec(stmt).first() is None:
        kind = "account" if isinstance(row, Account) else "segment"
        raise NotFound(f"{kind} {row.name!r} was removed meanwhile; run the command again")
