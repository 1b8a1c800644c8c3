"""`siyu inbox`, `siyu reply` and `siyu conversations show`: the conversations with learners,
what the reply assistant decided and why, and a person's answers."""

from __future__ import annotations

from typing import Any

import typer

from worker.cli.app import SiyuTyper
from worker.cli.common import emit_json, engine, say

conversations = SiyuTyper(
    help="""Conversations with learners, and each automatic decision's reason.

    Example:
    siyu conversations show u000042
    """
)


def inbox(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Conversations waiting for a person, with their last messages and why.

    Example:
    siyu inbox
    """
    from worker.replies.inbox import inbox as waiting

    found = waiting(engine())
    if as_json:
        emit_json(found)
        return
    if not found:
        say("nobody is waiting for a person")
    for item in found:
        who = f"{item['contact']} {item['name']}".strip()
        say(f"#{item['conversation']} {who} via {item['account']}, last {item['last_message_at']}")
        say(f"  why: {item['why']}")
        for message in item["last_messages"]:
            say(f"  {message['at']} {message['from']}: {message['text']}")


def reply(
    conversation: str = typer.Argument(
        ..., help="The conversation's number, as `siyu inbox` shows it (12 or #12)."
    ),
    text: str = typer.Argument(..., help="What to send, as one argument (quote it)."),
) -> None:
    """Answer a conversation through the account the learner wrote to, and close its handoff.

    It goes ahead of campaign sends, under the account's limits, exactly once.

    Example:
    siyu reply 12 "您好，早鸟价截止到 12 月 10 日，我把报名链接发给您"
    """
    from worker.replies.human import reply_as_person, reply_notes
    from worker.runtime import get_context

    sent = reply_as_person(get_context(), conversation, text)
    say(sent.summary())
    for note in reply_notes(sent):
        typer.echo(f"warning: {note}", err=True)


@conversations.command("show")
def show(
    external_id: str = typer.Argument(..., help="The learner's external id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The whole thread with a learner, each decision with its reason and sources.

    Example:
    siyu conversations show u000042 --json
    """
    from worker.replies.inbox import thread

    found = thread(engine(), external_id)
    if as_json:
        emit_json(found)
        return
    for item in found:
        waiting = f" (waiting for a person: {item['why']})" if item["why"] else ""
        say(f"#{item['conversation']} {item['channel']} via {item['account']}{waiting}")
        for message in item["messages"]:
            say(f"  {message['at']} {message['from']}: {message['text']}")
            for line in _explained(message):
                say(f"      {line}")


def _explained(message: dict[str, Any]) -> list[str]:
    if "decision" not in message:
        state = message["state"] or "not queued"
        if message.get("state_reason"):
            state += f" ({message['state_reason']})"
        if message.get("sent_at"):
            state += f" at {message['sent_at']}"
        return [f"delivery: {state}"]
    if message["decision"] is None:
        return ["not decided yet"]
    lines = [f"{message['decision']}: {message['reason']}"]
    if message["sources"]:
        lines.append("from " + ", ".join(message["sources"]))
    if message["withheld"]:
        lines.append(f"withheld: {message['withheld']}")
    return lines


def register(app: typer.Typer) -> None:
    app.command("inbox")(inbox)
    app.command("reply")(reply)
    app.add_typer(conversations, name="conversations")
