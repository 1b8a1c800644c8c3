"""`/v1/inbox` and `/v1/conversations`: conversations waiting for a person, whole threads,
and a person's reply (`siyu inbox`, `siyu conversations show`, `siyu reply`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from worker.api.operator.base import Operator, new_router
from worker.api.operator.errors import NAMED, STATEFUL
from worker.api.operator.schemas import Replied, ReplyRequest, Thread, Waiting
from worker.replies.human import reply_as_person, reply_notes
from worker.replies.inbox import inbox, thread


def router(ops: Operator) -> APIRouter:
    """The inbox routes over `ops`."""
    api = new_router("inbox")

    @api.get("/inbox", response_model=list[Waiting])
    def waiting() -> list[dict[str, Any]]:
        """Conversations waiting for a person, the one quiet the longest first."""
        return inbox(ops.engine)

    @api.get(
        "/conversations",
        response_model=list[Thread],
        response_model_exclude_unset=True,
        responses=NAMED,
    )
    def conversations(
        contact: Annotated[str, Query(description="The learner's external_id")],
    ) -> list[dict[str, Any]]:
        """Every conversation with the learner, each automatic decision with its reason."""
        return thread(ops.engine, contact)

    @api.post("/conversations/{conversation}/reply", response_model=Replied, responses=STATEFUL)
    def reply(conversation: str, body: ReplyRequest) -> Replied:
        """Answer through the account the learner wrote to, ahead of campaign sends, once;
        the handoff is closed. `conversation` is the number the inbox gives (12 or #12)."""
        sent = reply_as_person(ops.context(), conversation, body.text)
        return Replied(
            conversation=sent.conversation_id,
            message_id=sent.message_id,
            contact=sent.contact,
            account=sent.account,
            handoff_closed=sent.was_waiting,
            message=sent.summary(),
            warnings=reply_notes(sent),
        )

    return api
