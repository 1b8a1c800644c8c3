"""Which account messages which member, as SQL: materialisation runs it in the database.

Owner-bound contacts only go to their owner (DESIGN 9); free contacts are spread over the
campaign's senders of their channel in proportion to capacity weights, by a deterministic
hash of the contact id, so a repeat of a chunk assigns exactly as the first attempt did:
with `slot = (id * HASH_MULTIPLIER) % sum(weights)`, a contact goes to the first sender
whose running total of weights exceeds `slot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    false,
    literal,
    not_,
    null,
    or_,
    select,
)

from worker.store import tables

CT = tables.contacts.c
SP = tables.suppressions.c
WEIGHT_TOTAL = 1_000_000  # see normalised
HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: spreads consecutive ids


@dataclass(frozen=True)
class Sender:
    """A sender account of the campaign, as assignment sees it."""

    id: int
    channel: str
    active: bool


def normalised(weights: dict[int, int]) -> dict[int, int]:
    """The same proportions with a total of at most `WEIGHT_TOTAL` (each weight >= 1).

    Keeps the assignment arithmetic in SQL far from 64-bit overflow on every database.
    """
    total = sum(weights.values())
    if total <= WEIGHT_TOTAL:
        return dict(weights)
    return {k: max(1, w * WEIGHT_TOTAL // total) for k, w in weights.items()}


def pooled_account(senders: list[Sender], weights: dict[int, int]) -> ColumnElement[Any]:
    """SQL for the weighted hash (module docstring) over one channel's senders.

    Active senders take the contacts; when none is active, all of them do (they wait).
    `(id * K) % total` is computed as `((id % total) * (K % total)) % total`, the same value,
    in 64-bit integers: both factors are below `WEIGHT_TOTAL`, so the product fits in BIGINT
    but not in PostgreSQL's 4-byte INTEGER that contact ids and small literals have.
    """
    candidates = [s.id for s in senders if s.active] or [s.id for s in senders]
    shares = [weights.get(c, 1) for c in candidates]
    total = sum(shares)
    slot = ((cast(CT.id, BigInteger) % total) * (HASH_MULTIPLIER % total)) % total
    whens, bound = [], 0
    for candidate, share in zip(candidates[:-1], shares[:-1], strict=True):
        bound += share
        whens.append((slot < bound, literal(candidate)))
    if not whens:
        return literal(candidates[-1])
    return case(*whens, else_=literal(candidates[-1]))


def assigned_members(
    senders: Sequence[Sender], weights: dict[int, int], *, cancelled: bool, closed: bool
) -> Select[Any]:
    """Every contact with its account and skip reason (None: send), computed by the database.

    The caller adds the WHERE: the segment's condition and the chunk's id range.

    Owner-bound contacts only go to their owner, and only when the owner sends on the
    contact's channel (DESIGN 9); the others are spread by capacity (`pooled_account`).
    """
    by_channel: dict[str, list[Sender]] = {}
    for sender in senders:
        by_channel.setdefault(sender.channel, []).append(sender)
    weights = normalised(weights)
    owner_ok = or_(
        false(),
        *(
            and_(CT.channel == channel, CT.owner_id.in_([s.id for s in group]))
            for channel, group in by_channel.items()
        ),
    )
    pooled = case(
        *((CT.channel == ch, pooled_account(ss, weights)) for ch, ss in by_channel.items()),
        else_=null(),
    )
    account = case((CT.owner_id.is_(None), pooled), (owner_ok, CT.owner_id), else_=null())
    reason: ColumnElement[Any] = case(
        (SP.reason.is_not(None), SP.reason),
        (and_(CT.owner_id.is_not(None), not_(owner_ok)), literal("owner_not_in_campaign")),
        (
            and_(CT.owner_id.is_(None), CT.channel.not_in(list(by_channel))),
            literal("no_reachable_account"),
        ),
        else_=literal("window_closed") if closed else null(),
    )
    if cancelled:
        reason = literal("cancelled")
    return select(
        CT.id.label("contact_id"), account.label("account_id"), reason.label("reason")
    ).select_from(tables.contacts.outerjoin(tables.suppressions, SP.contact_id == CT.id))
