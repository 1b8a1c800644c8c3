"""`/v1/accounts`: sender accounts with their health; pause and resume (`siyu accounts`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from worker.api.operator.base import Operator, new_router
from worker.api.operator.errors import NAMED
from worker.api.operator.schemas import Account
from worker.services import accounts as svc


def router(ops: Operator) -> APIRouter:
    """The account routes over `ops`."""
    api = new_router("accounts")

    @api.get("/accounts", response_model=list[Account])
    def accounts() -> list[dict[str, Any]]:
        """Every account: state (active, cooldown, paused, banned), sent today, rate."""
        return svc.list_accounts(ops.engine)

    @api.get("/accounts/{name}", response_model=Account, responses=NAMED)
    def account(name: str) -> dict[str, Any]:
        """One account's health, as `accounts list` shows it."""
        return svc.show_account(ops.engine, name)

    @api.post("/accounts/{name}/pause", response_model=Account, responses=NAMED)
    def pause(name: str) -> dict[str, Any]:
        """Stop sending from the account (its lanes stop at the next batch)."""
        svc.set_paused(ops.engine, name, True)
        return svc.show_account(ops.engine, name)

    @api.post("/accounts/{name}/resume", response_model=Account, responses=NAMED)
    def resume(name: str) -> dict[str, Any]:
        """Let a paused (or banned, after you checked it) account send again."""
        svc.set_paused(ops.engine, name, False)
        return svc.show_account(ops.engine, name)

    return api
