"""`siyu accounts ...`"""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from worker.cli.common import console, emit_json, engine, parse_pairs
from worker.config import get_settings
from worker.services import accounts as svc

app = typer.Typer(no_args_is_help=True)


@app.command("add")
def add(
    name: str,
    channel: str = typer.Option(..., "--channel", help="Channel name, e.g. mock, memory."),
    policy: str | None = typer.Option(None, "--policy", help="Rate-limit policy name."),
    tz: str = typer.Option("Asia/Shanghai", "--tz", help="The account's IANA time zone."),
    config: list[str] = typer.Option(None, "--config", help="KEY=VALUE channel settings."),
) -> None:
    """Add a sender account (its channel config is validated now)."""
    account = svc.add_account(
        engine(),
        name,
        channel,
        policy=policy,
        tz=tz,
        config=parse_pairs(config, "--config"),
        rate_limits_dir=get_settings().rate_limits_dir,
    )
    console.print(f"added account {account.name} ({account.channel})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Accounts with their health: active / cooldown / paused / banned, sent today."""
    rows = svc.list_accounts(engine())
    if as_json:
        emit_json(rows)
        return
    table = Table(
        "name", "channel", "state", "sent today", "cooldown until", "rate", "policy", "tz"
    )
    for r in rows:
        state = r["state"] + (f" ({r['state_reason']})" if r["state_reason"] else "")
        table.add_row(
            r["name"],
            r["channel"],
            state,
            str(r["sent_today"]),
            r["cooldown_until"] or "",
            f"{r['rate_share']:.0%}",
            r["policy"] or "",
            r["tz"],
        )
    console.print(table)


@app.command("pause")
def pause(name: str) -> None:
    """Stop sending from an account (its lanes stop at the next batch)."""
    svc.set_paused(engine(), name, True)
    console.print(f"paused account {name}")


@app.command("resume")
def resume(name: str) -> None:
    """Let a paused (or banned, after you checked it) account send again."""
    svc.set_paused(engine(), name, False)
    console.print(f"resumed account {name}")


@app.command("remove")
def remove(name: str) -> None:
    """Remove an account no live campaign, open delivery or owned contact needs."""
    past = svc.remove_account(engine(), name)
    kept = f"; its {past} past deliveries stay in their campaigns' logs" if past else ""
    console.print(Text(f"removed account {name}{kept}"))
