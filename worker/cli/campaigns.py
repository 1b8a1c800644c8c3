"""`siyu campaigns ...`

Times are shown in the campaign's time zone with its offset, to the second
(`timeparse.local_text`); `--json` keeps ISO 8601 with an offset.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import typer

from worker.campaigns import lifecycle
from worker.campaigns.export import LogRow, delivery_csv, delivery_log
from worker.campaigns.status import campaign_status, iter_deliveries
from worker.campaigns.timeparse import local_text, zone
from worker.cli.app import SiyuTyper
from worker.cli.common import console, emit_json, engine, fail, say
from worker.cli.progress import status_lines, watch_status
from worker.cli.tables import Col, print_table
from worker.config import get_settings
from worker.pairs import parse_pairs

app = SiyuTyper(
    help="""Create, run and watch campaigns.

    Example:
    siyu campaigns status spring-sale
    """
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The new campaign's name."),
    segment: str = typer.Option(..., "--segment", help="The audience: a segment's name."),
    template: str = typer.Option(
        ..., "--template", help="Name of templates/<name>.j2 (without .j2)."
    ),
    accounts: str = typer.Option(
        ..., "--accounts", metavar="A[,B...]", help="Sender accounts, in order."
    ),
    var: list[str] = typer.Option(
        None, "--var", metavar="KEY=VALUE", help="A template variable (repeat for more)."
    ),
    start: str | None = typer.Option(
        None, "--start", metavar="ISO8601", help="Start time (without an offset: in --tz)."
    ),
    end: str | None = typer.Option(
        None, "--end", metavar="ISO8601", help="Planned end time (without an offset: in --tz)."
    ),
    cron: str | None = typer.Option(
        None,
        "--cron",
        metavar="EXPR",
        help="Recurring: a run at each due time (read in --tz) for members not yet "
        "messaged; --start/--end bound the schedule. siyu beat fires it.",
    ),
    tz: str = typer.Option(
        "Asia/Shanghai", "--tz", help="IANA time zone the campaign's times are read and shown in."
    ),
    kind: str = typer.Option("marketing", "--kind", help="marketing | service"),
    skip_unrenderable: bool = typer.Option(
        False,
        "--skip-unrenderable",
        help="Members the template cannot render are recorded as skipped (render_error) "
        "instead of refusing the campaign.",
    ),
) -> None:
    """Create a draft campaign; the template is rendered for every member first.

    Examples:
    siyu campaigns create sale --segment vip --template invite --accounts a1,a2
    siyu campaigns create sale --segment vip --template invite --accounts a1 \\
    --var course_name=Python --start 2026-12-01T09:00 --end 2026-12-01T21:00
    siyu campaigns create daily --segment trial --template invite --accounts a1 \\
    --cron "0 10 * * *" --tz Asia/Shanghai
    """
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
    say(f"created campaign {name} (draft); next: siyu campaigns start {name}")


@app.command("preview")
def preview(
    name: str = typer.Argument(..., help="The campaign's name."),
    limit: int = typer.Option(
        5, "--limit", min=1, max=1000, metavar="N", help="How many sample recipients."
    ),
) -> None:
    """Rendered messages for sample recipients; nothing is sent.

    Each message is printed exactly as it would be sent: nothing is wrapped or cut, so a
    link can be copied whole.

    Example:
    siyu campaigns preview spring-sale --limit 3
    """
    from worker.campaigns.preview import preview_campaign

    for item in preview_campaign(engine(), get_settings().templates_dir, name, limit):
        console.rule()
        say(f"to {item.external_id} {item.name} via {item.account or '-'}")
        say(item.text)


@app.command("start")
def start(
    name: str = typer.Argument(..., help="The campaign's name."),
    force: bool = typer.Option(
        False, "--force", help="Start even when the plan says nothing can be sent before the end."
    ),
) -> None:
    """Start now, or at the campaign's --start time, after rendering every member again.

    Refused when the plan says nothing can be sent before the end (unless --force); warns
    how many members will not be sent, and why, when only part fits. A cron campaign is
    armed (scheduled): siyu beat starts a run at each due time.

    Example:
    siyu campaigns start spring-sale
    """
    from worker.runtime import get_context
    from worker.services.doctor import worker_warning

    ctx = get_context()
    started = lifecycle.start_campaign(ctx, name, force=force)
    say(f"campaign {name} is {started.status}")
    for warning in (started.outlook.warning(), worker_warning(ctx.settings, ctx.engine)):
        if warning:
            typer.echo(f"warning: {warning}", err=True)


@app.command("pause")
def pause(name: str = typer.Argument(..., help="The campaign's name.")) -> None:
    """Pause a running campaign; nothing more is sent until it is resumed.

    Example:
    siyu campaigns pause spring-sale
    """
    lifecycle.pause_campaign(engine(), name)
    say(f"campaign {name} paused")


@app.command("resume")
def resume(name: str = typer.Argument(..., help="The campaign's name.")) -> None:
    """Resume a paused campaign where it stopped; no one is messaged twice.

    Example:
    siyu campaigns resume spring-sale
    """
    from worker.runtime import get_context

    status = lifecycle.resume_campaign(get_context(), name)
    say(f"campaign {name} is {status}")


@app.command("cancel")
def cancel(name: str = typer.Argument(..., help="The campaign's name.")) -> None:
    """Cancel a campaign for good; its unsent deliveries are skipped (cancelled).

    Example:
    siyu campaigns cancel spring-sale
    """
    from worker.runtime import get_context

    lifecycle.cancel_campaign(get_context(), name)
    say(f"campaign {name} cancelled; unsent deliveries are skipped (cancelled)")


@app.command("status")
def status(
    name: str = typer.Argument(..., help="The campaign's name."),
    as_json: bool = typer.Option(
        False, "--json", help="The status document (contract) as JSON; times in ISO 8601."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Live progress bars per account until the campaign ends."
    ),
) -> None:
    """Counts per state and per account, the window and the ETA.

    Times are in the campaign's time zone, with the offset.

    Examples:
    siyu campaigns status spring-sale
    siyu campaigns status spring-sale --watch
    """
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
    for line in status_lines(doc):
        say(line)
    print_table(
        [Col("account", "name"), Col("state"), Col("sent", "number"), Col("pending", "number")],
        [(a, e["state"], str(e["sent"]), str(e["pending"])) for a, e in doc["accounts"].items()],
    )


@app.command("deliveries")
def deliveries(
    name: str = typer.Argument(..., help="The campaign's name."),
    status_: str | None = typer.Option(
        None,
        "--status",
        metavar="STATE",
        help="Only this state (pending, sent, failed, skipped, unknown, ...).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON array; times in UTC."),
    as_csv: bool = typer.Option(
        False,
        "--csv",
        help="CSV on stdout for a spreadsheet: external_id, name, account, state, reason, "
        "last_error, attempts, sent_at (the campaign's local time with its offset). UTF-8 "
        "with a BOM, so Excel shows Chinese names as they are.",
    ),
    limit: int = typer.Option(0, "--limit", metavar="N", help="At most N rows (0: all)."),
) -> None:
    """The per-recipient log: state, reason and last error of every recipient.

    The table shows when each message was sent in the campaign's time zone; --csv has
    every column for a spreadsheet, --json every field for a script.

    Examples:
    siyu campaigns deliveries spring-sale --status failed
    siyu campaigns deliveries spring-sale --csv > spring-sale.csv
    """
    if as_json and as_csv:
        fail("--json and --csv are alternatives: give one of them")
    eng = engine()
    if as_csv:
        _stream_text(delivery_csv(eng, name, status_, limit or None))
        return
    if as_json:
        _stream_json(iter_deliveries(eng, name, status_, limit or None))
        return
    columns = [
        Col("external_id\nname\naccount", "name"),
        Col("state\nreason\nsent_at"),
        Col("last_error"),
    ]
    log = delivery_log(eng, name, status_, limit or None, when=local_text)
    print_table(columns, _delivery_cells(log))


def _delivery_cells(rows: Iterable[LogRow]) -> Iterator[tuple[str, str, str]]:
    """A log row in three columns, so that the names have room: who and through which
    account; what became of it, why, after how many attempts and when; the last error."""
    for external_id, name, account, state, reason, last_error, attempts, sent_at in rows:
        who = f"{external_id}\n{name or '-'}\n{account or '-'}"
        tries = f"{attempts} attempts" if int(attempts) > 1 else ""
        yield who, "\n".join(filter(None, (state, reason, tries, sent_at))), last_error


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
def plan(
    name: str = typer.Argument(..., help="The campaign's name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (times in UTC)."),
) -> None:
    """Capacity per account inside the window, whether it fits, and the ETA.

    Counts what will not be sent and why: capacity before the end, members at a recipient
    cap, members whose owner is not a sender, opt-outs. Times in the campaign's time zone.

    Example:
    siyu campaigns plan spring-sale
    """
    from worker.campaigns.outlook import verdict
    from worker.campaigns.plan import plan_campaign

    settings = get_settings()
    doc = plan_campaign(engine(), settings.rate_limits_dir, name, settings.limit_margin_ms)
    if as_json:
        emit_json(doc)
        return
    tz = zone(doc["window"]["tz"])
    end = local_text(doc["window"]["end"], tz) or "open-ended"
    say(f"{doc['name']}  {doc['members']:,} members")
    say(f"window {local_text(doc['window']['start'], tz)} .. {end}")
    columns = [
        Col("account", "name"),
        Col("state\npolicy"),
        Col("capacity\nother load", "number"),
        Col("assigned\ncapped", "number"),
        Col("fits"),
        Col("eta"),
    ]
    print_table(
        columns,
        [
            (
                a["account"],
                f"{a['state']}\n{a['policy']}",
                f"{'unlimited' if a['capacity'] is None else a['capacity']}\n{a['other_load']}",
                f"{a['assigned']}\n{a['capped']}",
                "yes" if a["fits"] else "NO",
                local_text(a["eta"], tz) or "-",
            )
            for a in doc["accounts"]
        ],
    )
    say(verdict(doc))
    say(f"ETA {local_text(doc['eta'], tz) or '-'}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every campaign: status, progress (sent/total) and window in its time zone.

    Example:
    siyu campaigns list
    """
    from worker.campaigns.overview import list_campaigns

    rows = list_campaigns(engine())
    if as_json:
        emit_json(rows)
        return
    print_table(
        [Col("name", "name"), Col("status"), Col("sent/\ntotal", "number"), Col("start\nend")],
        [(r["name"], r["status"], f"{r['sent']}/{r['total']}", _window(r["window"])) for r in rows],
    )


def _window(window: dict[str, Any]) -> str:
    tz = zone(window["tz"])
    start = local_text(window["start"], tz) or "when started"
    return f"{start}\n{local_text(window['end'], tz) or 'open-ended'}"


@app.command("show")
def show(
    name: str = typer.Argument(..., help="The campaign's name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The whole definition (segment, template, vars, accounts, window) and its runs.

    A cron campaign shows its next due time and each past one: its run, or why skipped.

    Example:
    siyu campaigns show spring-sale
    """
    from worker.campaigns.overview import show_campaign

    doc = show_campaign(engine(), name)
    if as_json:
        emit_json(doc)
        return
    tz = zone(doc["tz"])
    lines = [
        f"name: {doc['name']}",
        f"status: {doc['status']}  kind: {doc['kind']}",
        f"segment: {doc['segment']['name']}",
        f"where: {doc['segment']['where']}",
        f"template: {doc['template']}",
        f"accounts: {', '.join(doc['accounts']) or '-'}",
        "vars:" + ("" if doc["vars"] else " -"),
        *(f"  {key} = {value}" for key, value in doc["vars"].items()),
        f"start: {local_text(doc['start'], tz) or 'when started'}",
        f"end: {local_text(doc['end'], tz) or 'open-ended'}",
        f"tz: {doc['tz']}",
        f"created: {local_text(doc['created_at'], tz)}",
    ]
    if doc["cron"]:
        lines += [f"cron: {doc['cron']}", f"next due: {local_text(doc['next_due'], tz) or '-'}"]
    for line in lines:
        say(line)
    if doc["cron"]:
        _show_firings(doc["firings"], tz)
        return
    if not doc["runs"]:
        say("runs: none")
        return
    columns = [
        Col("run", "number"),
        Col("status"),
        Col("started\nfinished"),
        Col("sent/\ntotal", "number"),
        Col("counts"),
    ]
    print_table(columns, [_run_cells(run, tz) for run in doc["runs"]])


def _show_firings(firings: list[dict[str, Any]], tz: ZoneInfo) -> None:
    """A cron campaign's due times: the run each fired, or why it was skipped."""
    if not firings:
        say("runs: none yet")
        return
    columns = [Col("due"), Col("fired\nrun"), Col("sent/\ntotal", "number"), Col("counts")]
    print_table(columns, [_firing_cells(firing, tz) for firing in firings])


def _firing_cells(firing: dict[str, Any], tz: ZoneInfo) -> tuple[str, ...]:
    if firing["run"] is None:
        return (local_text(firing["due"], tz), f"skipped\n{firing['reason']}", "-", "-")
    counts = " ".join(f"{k} {v}" for k, v in firing["counts"].items() if v)
    return (
        local_text(firing["due"], tz),
        f"run {firing['run']}\n{firing['run_status']}",
        f"{firing['counts']['sent']}/{firing['total']}",
        counts or "-",
    )


def _run_cells(run: dict[str, Any], tz: ZoneInfo) -> tuple[str, ...]:
    counts = " ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    started = local_text(run["started_at"], tz) or "-"
    return (
        str(run["id"]),
        run["status"],
        f"{started}\n{local_text(run['finished_at'], tz) or '-'}",
        f"{run['counts']['sent']}/{run['total']}",
        counts or "-",
    )


@app.command("edit")
def edit(
    name: str = typer.Argument(..., help="The campaign's name."),
    segment: str | None = typer.Option(None, "--segment", help="Another segment's name."),
    template: str | None = typer.Option(
        None, "--template", help="Name of templates/<name>.j2 (without .j2)."
    ),
    accounts: str | None = typer.Option(
        None, "--accounts", metavar="A[,B...]", help="Sender accounts; replaces the list."
    ),
    var: list[str] = typer.Option(
        None, "--var", metavar="KEY=VALUE", help="Sets this template variable only."
    ),
    unset_var: list[str] = typer.Option(
        None, "--unset-var", metavar="KEY", help="Removes this template variable."
    ),
    start: str | None = typer.Option(
        None, "--start", metavar="ISO8601", help="Start time (without an offset: in --tz)."
    ),
    end: str | None = typer.Option(
        None, "--end", metavar="ISO8601", help="Planned end time (without an offset: in --tz)."
    ),
    cron: str | None = typer.Option(
        None, "--cron", metavar="EXPR", help="A new schedule for a recurring campaign."
    ),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="IANA time zone; new times without offset are read in it, stored times keep "
        "their instant.",
    ),
    kind: str | None = typer.Option(None, "--kind", help="marketing | service"),
    skip_unrenderable: bool = typer.Option(
        False,
        "--skip-unrenderable",
        help="From now on, record members the template cannot render as skipped.",
    ),
    refuse_unrenderable: bool = typer.Option(
        False,
        "--refuse-unrenderable",
        help="From now on, refuse to start while a member cannot be rendered (the default).",
    ),
) -> None:
    """Change a draft or scheduled campaign; options not given keep their values.

    Example:
    siyu campaigns edit spring-sale --end 2026-12-02T21:00 --var course_name=Go
    """
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
        skip_unrenderable=_skip_choice(skip_unrenderable, refuse_unrenderable),
    )
    if changes == CampaignChanges():
        fail("nothing to change; give at least one option (see 'siyu campaigns edit --help')")
    edit_campaign(engine(), get_settings().templates_dir, name, changes)
    say(f"campaign {name} updated")


def _skip_choice(skip: bool, refuse: bool) -> bool | None:
    """--skip-unrenderable / --refuse-unrenderable as a change: None keeps the stored one."""
    if skip and refuse:
        fail("--skip-unrenderable and --refuse-unrenderable are alternatives: give one of them")
    return True if skip else False if refuse else None


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The campaign's name.")) -> None:
    """Delete a draft campaign (anything started is kept for its history: cancel it).

    Example:
    siyu campaigns delete spring-sale
    """
    from worker.campaigns.manage import delete_campaign

    delete_campaign(engine(), name)
    say(f"campaign {name} deleted")
