"""`siyu campaigns ...`"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.table import Column, Table
from rich.text import Text

from worker.campaigns import lifecycle
from worker.campaigns.export import COLUMNS, delivery_csv, delivery_log
from worker.campaigns.status import campaign_status, iter_deliveries
from worker.cli.common import console, emit_json, engine, fail, parse_pairs
from worker.cli.progress import watch_status
from worker.config import get_settings

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    name: str,
    segment: str = typer.Option(..., "--segment"),
    template: str = typer.Option(..., "--template", help="Name of templates/<name>.j2"),
    accounts: str = typer.Option(..., "--accounts", help="A[,B...] sender accounts"),
    var: list[str] = typer.Option(None, "--var", help="KEY=VALUE template variable"),
    start: str | None = typer.Option(None, "--start", help="ISO 8601 start time"),
    end: str | None = typer.Option(None, "--end", help="ISO 8601 planned end time"),
    cron: str | None = typer.Option(None, "--cron", help="Cron expression (recurring)"),
    tz: str = typer.Option("Asia/Shanghai", "--tz"),
    kind: str = typer.Option("marketing", "--kind", help="marketing | service"),
    skip_unrenderable: bool = typer.Option(
        False,
        "--skip-unrenderable",
        help="Members the template cannot render are recorded as skipped (render_error) "
        "instead of refusing the campaign.",
    ),
) -> None:
    """Create a draft campaign; the template is rendered for every member first."""
    spec = lifecycle.CampaignSpec(
        name=name,
        segment=segment,
        template=template,
        accounts=[a.strip() for a in accounts.split(",") if a.strip()],
        variables=parse_pairs(var, "--var"),
        start=start,
        end=end,
        cron=cron,
        tz=tz,
        kind=kind,
        skip_unrenderable=skip_unrenderable,
    )
    lifecycle.create_campaign(engine(), get_settings().templates_dir, spec)
    console.print(f"created campaign {name} (draft); next: siyu campaigns start {name}")


@app.command("preview")
def preview(name: str, limit: int = typer.Option(5, "--limit", min=1, max=1000)) -> None:
    """Rendered messages for sample recipients; nothing is sent."""
    from worker.campaigns.preview import preview_campaign

    for item in preview_campaign(engine(), get_settings().templates_dir, name, limit):
        console.rule(f"{item.external_id} {item.name} via {item.account or '-'}")
        console.print(item.text, markup=False, highlight=False)


@app.command("start")
def start(
    name: str,
    force: bool = typer.Option(
        False, "--force", help="Start even when the plan says nothing can be sent before the end."
    ),
) -> None:
    """Start now, or at the campaign's --start time, after rendering every member again."""
    from worker.runtime import get_context
    from worker.services.doctor import worker_warning

    ctx = get_context()
    started = lifecycle.start_campaign(ctx, name, force=force)
    console.print(Text(f"campaign {name} is {started.run.status}"))
    for warning in (started.outlook.warning(), worker_warning(ctx.settings, ctx.engine)):
        if warning:
            typer.echo(f"warning: {warning}", err=True)


@app.command("pause")
def pause(name: str) -> None:
    lifecycle.pause_campaign(engine(), name)
    console.print(f"campaign {name} paused")


@app.command("resume")
def resume(name: str) -> None:
    from worker.runtime import get_context

    status = lifecycle.resume_campaign(get_context(), name)
    console.print(f"campaign {name} is {status}")


@app.command("cancel")
def cancel(name: str) -> None:
    from worker.runtime import get_context

    lifecycle.cancel_campaign(get_context(), name)
    console.print(f"campaign {name} cancelled; unsent deliveries are skipped (cancelled)")


@app.command("status")
def status(
    name: str,
    as_json: bool = typer.Option(False, "--json"),
    watch: bool = typer.Option(False, "--watch", help="Live progress bars per account."),
) -> None:
    """Counts per state and per account, and the ETA."""
    from worker.services.doctor import worker_warning

    eng = engine()
    doc = campaign_status(eng, name)
    if doc["status"] in ("scheduled", "running") and (
        warning := worker_warning(get_settings(), eng)
    ):
        typer.echo(f"warning: {warning}", err=True)
    if watch:
        watch_status(lambda: campaign_status(eng, name))
        return
    if as_json:
        emit_json(doc)
        return
    console.print(
        f"[bold]{doc['name']}[/bold]  {doc['status']}  total {doc['total']}  "
        f"eta {doc['eta'] or '-'}"
    )
    console.print("  ".join(f"{k} {v}" for k, v in doc["counts"].items()))
    table = Table("account", "state", "sent", "pending")
    for account, entry in doc["accounts"].items():
        table.add_row(account, entry["state"], str(entry["sent"]), str(entry["pending"]))
    console.print(table)


@app.command("deliveries")
def deliveries(
    name: str,
    status_: str | None = typer.Option(
        None, "--status", help="Only this state (pending, sent, failed, skipped, unknown, ...)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON array; times in UTC."),
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="CSV on stdout for a spreadsheet: external_id, name, account, state, reason, "
        "last_error, attempts, sent_at (the campaign's local time with its offset). UTF-8 "
        "with a BOM, so Excel shows Chinese names as they are.",
    ),
    limit: int = typer.Option(0, "--limit", help="At most N rows (0: all)."),
) -> None:
    """The per-recipient log: state, reason and last error of every recipient."""
    if as_json and as_csv:
        fail("--json and --csv are alternatives: give one of them")
    eng = engine()
    if as_csv:
        _stream_text(delivery_csv(eng, name, status_, limit or None))
        return
    if as_json:
        _stream_json(iter_deliveries(eng, name, status_, limit or None))
        return
    table = Table(*(Column(column, overflow="fold") for column in COLUMNS))  # hide nothing
    for row in delivery_log(eng, name, status_, limit or None):
        table.add_row(*(Text(cell) for cell in row))  # Text: a '[' in an error is not markup
    console.print(table)


def _stream_text(chunks: Iterable[str]) -> None:
    """Write `chunks` to stdout as UTF-8 whatever the locale, CSV line ends untouched."""
    sys.stdout.flush()
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    finally:
        out.detach()  # leave sys.stdout's buffer open


def _stream_json(rows: Iterable[dict[str, Any]]) -> None:
    """One JSON array, written row by row so a million rows need no memory."""
    import json

    out = sys.stdout
    out.write("[")
    for i, row in enumerate(rows):
        out.write(("," if i else "") + "\n  " + json.dumps(row, ensure_ascii=False))
    out.write("\n]\n")
    out.flush()


@app.command("plan")
def plan(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Capacity per account inside the window, whether it fits, and the ETA."""
    from worker.campaigns.outlook import Outlook
    from worker.campaigns.plan import plan_campaign

    settings = get_settings()
    doc = plan_campaign(engine(), settings.rate_limits_dir, name, settings.limit_margin_ms)
    if as_json:
        emit_json(doc)
        return
    window = doc["window"]
    console.print(
        f"[bold]{doc['name']}[/bold]  {doc['members']} members  "
        f"window {window['start']} .. {window['end'] or 'open-ended'}"
    )
    table = Table("account", "state", "policy", "capacity", "other load", "assigned", "fits", "eta")
    for a in doc["accounts"]:
        cap = "unlimited" if a["capacity"] is None else str(a["capacity"])
        table.add_row(
            a["account"],
            a["state"],
            a["policy"],
            cap,
            str(a["other_load"]),
            str(a["assigned"]),
            "yes" if a["fits"] else "NO",
            a["eta"] or "-",
        )
    console.print(table)
    outlook = Outlook.of(doc)
    if doc["fits"] and not outlook.not_sent:
        verdict = f"fits: all {doc['members']:,} members can be sent"
    elif doc["fits"]:
        verdict = f"fits; not sent: {outlook.reasons()}"
    else:
        missing = outlook.members - outlook.will_send
        verdict = f"does NOT fit: {missing:,} of {outlook.members:,} would not be sent: "
        verdict += outlook.reasons()
    console.print(Text(f"{verdict}; ETA {doc['eta'] or '-'}"))


def _window_cell(window: dict[str, Any]) -> Text:
    return Text(f"{window['start'] or 'when started'}\n{window['end'] or 'open-ended'}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every campaign: status, progress (sent/total) and window in its time zone."""
    from worker.campaigns.overview import list_campaigns

    rows = list_campaigns(engine())
    if as_json:
        emit_json(rows)
        return
    table = Table(
        Column("name", overflow="fold"),
        "status",
        Column("sent/total", justify="right"),
        "start\nend",
    )
    for r in rows:
        table.add_row(
            Text(r["name"]), r["status"], f"{r['sent']}/{r['total']}", _window_cell(r["window"])
        )
    console.print(table)


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The whole definition (segment, template, vars, accounts, window) and its runs."""
    from worker.campaigns.overview import show_campaign

    doc = show_campaign(engine(), name)
    if as_json:
        emit_json(doc)
        return
    lines = [
        f"name: {doc['name']}",
        f"status: {doc['status']}  kind: {doc['kind']}",
        f"segment: {doc['segment']['name']}  where: {doc['segment']['where']}",
        f"template: {doc['template']}",
        f"accounts: {', '.join(doc['accounts']) or '-'}",
        "vars:" + ("" if doc["vars"] else " -"),
        *(f"  {key} = {value}" for key, value in doc["vars"].items()),
        f"start: {doc['start'] or 'when started'}",
        f"end: {doc['end'] or 'open-ended'}",
        f"tz: {doc['tz']}",
    ]
    for line in lines:
        console.print(Text(line))
    if not doc["runs"]:
        console.print(Text("runs: none"))
        return
    table = Table("run", "status", "started\nfinished", "sent/total", "counts")
    for run in doc["runs"]:
        counts = " ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
        table.add_row(
            str(run["id"]),
            run["status"],
            Text(f"{run['started_at'] or '-'}\n{run['finished_at'] or '-'}"),
            f"{run['counts']['sent']}/{run['total']}",
            Text(counts or "-"),
        )
    console.print(table)


@app.command("edit")
def edit(
    name: str,
    segment: str | None = typer.Option(None, "--segment"),
    template: str | None = typer.Option(None, "--template", help="Name of templates/<name>.j2"),
    accounts: str | None = typer.Option(None, "--accounts", help="A[,B...]: replaces the list"),
    var: list[str] = typer.Option(None, "--var", help="KEY=VALUE: sets this variable only"),
    unset_var: list[str] = typer.Option(None, "--unset-var", help="KEY: removes this variable"),
    start: str | None = typer.Option(None, "--start", help="ISO 8601 start time"),
    end: str | None = typer.Option(None, "--end", help="ISO 8601 planned end time"),
    cron: str | None = typer.Option(None, "--cron", help="Not implemented yet (refused)"),
    tz: str | None = typer.Option(
        None, "--tz", help="Reads new times without offset; stored times keep their instant"
    ),
    kind: str | None = typer.Option(None, "--kind", help="marketing | service"),
    skip_unrenderable: bool | None = typer.Option(
        None,
        "--skip-unrenderable/--no-skip-unrenderable",
        help="Record members the template cannot render as skipped (render_error), or refuse.",
        show_default=False,
    ),
) -> None:
    """Change a draft or scheduled campaign; options not given keep their values."""
    from worker.campaigns.manage import CampaignChanges, edit_campaign

    changes = CampaignChanges(
        segment=segment,
        template=template,
        accounts=None
        if accounts is None
        else [a.strip() for a in accounts.split(",") if a.strip()],
        set_vars=parse_pairs(var, "--var"),
        unset_vars=[key.strip() for key in unset_var or []],
        start=start,
        end=end,
        cron=cron,
        tz=tz,
        kind=kind,
        skip_unrenderable=skip_unrenderable,
    )
    if changes == CampaignChanges():
        fail("nothing to change; give at least one option (see 'siyu campaigns edit --help')")
    edit_campaign(engine(), get_settings().templates_dir, name, changes)
    console.print(Text(f"campaign {name} updated"))


@app.command("delete")
def delete(name: str) -> None:
    """Delete a draft campaign (anything started is kept for its history: cancel it)."""
    from worker.campaigns.manage import delete_campaign

    delete_campaign(engine(), name)
    console.print(Text(f"campaign {name} deleted"))
