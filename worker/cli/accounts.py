"""`siyu accounts ...`"""

from __future__ import annotations

from typing import Any

import typer

from worker.campaigns.timeparse import local_text, zone
from worker.cli.app import SiyuTyper
from worker.cli.common import emit_json, engine, say
from worker.cli.tables import Col, print_table
from worker.config import get_settings
from worker.pairs import parse_pairs
from worker.services import accounts as svc

app = SiyuTyper(
    help="""Sender accounts and their health.

    Example:
    siyu accounts list
    """
)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="A unique name for the account."),
    channel: str = typer.Option(..., "--channel", help="Channel name, e.g. mock, memory."),
    policy: str | None = typer.Option(None, "--policy", help="Rate-limit policy name."),
    tz: str = typer.Option("Asia/Shanghai", "--tz", help="The account's IANA time zone."),
    config: list[str] = typer.Option(
        None, "--config", metavar="KEY=VALUE", help="A channel setting (repeat for more)."
    ),
) -> None:
    """Add a sender account (its channel config is validated now).

    Example:
    siyu accounts add a1 --channel mock --config url=http://127.0.0.1:8900
    """
    account = svc.add_account(
        engine(),
        name,
        channel,
        policy=policy,
        tz=tz,
        config=parse_pairs(config, "--config", secret=True),
        rate_limits_dir=get_settings().rate_limits_dir,
    )
    policy_note = f", policy {account.policy}" if account.policy else ""
    say(f"added account {account.name} ({account.channel}{policy_note})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Accounts with their health: active / cooldown / paused / banned, sent today.

    Times are in each account's time zone; "sent today" counts its local calendar day.

    Example:
    siyu accounts list
    """
    rows = svc.list_accounts(engine())
    if as_json:
        emit_json(rows)
        return
    columns = [
        Col("name", "name"),
        Col("channel\npolicy"),
        Col("state"),
        Col("sent\ntoday", "number"),
        Col("rate", "number"),
        Col("tz", "name"),
    ]
    print_table(columns, [_cells(r) for r in rows])


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    state = [r["state"], f"({r['state_reason']})" if r["state_reason"] else ""]
    if r["cooldown_until"]:
        state.append(f"until {local_text(r['cooldown_until'], zone(r['tz']))}")
    return (
        r["name"],
        f"{r['channel']}\n{r['policy'] or ''}".rstrip(),
        "\n".join(filter(None, state)),
        str(r["sent_today"]),
        f"{r['rate_share']:.0%}",
        r["tz"],
    )


@app.command("pause")
def pause(name: str = typer.Argument(..., help="The account's name.")) -> None:
    """Stop sending from an account (its lanes stop at the next batch).

    Example:
    siyu accounts pause a1
    """
    svc.set_paused(engine(), name, True)
    say(f"paused account {name}")


@app.command("resume")
def resume(name: str = typer.Argument(..., help="The account's name.")) -> None:
    """Let a paused (or banned, after you checked it) account send again.

    Example:
    siyu accounts resume a1
    """
    svc.set_paused(engine(), name, False)
    say(f"resumed account {name}")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The account's name.")) -> None:
    """Remove an account no live campaign, open delivery or owned contact needs.

    Example:
    siyu accounts remove a1
    """
    past = svc.remove_account(engine(), name)
    kept = f"; its {past} past deliveries stay in their campaigns' logs" if past else ""
    say(f"removed account {name}{kept}")
