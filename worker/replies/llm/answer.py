"""The model's answer: exactly `{"action": "reply" | "handoff", "text": "..."}`, nothing else."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from worker.replies.llm.client import LLMBadAnswer

# The persona asks for `[HANDOFF]` on its own line; a model may write it inside a reply too.
HANDOFF_MARKER = re.compile(r"\[\s*handoff\s*\]", re.IGNORECASE)
# Some servers without JSON mode wrap the object in a Markdown code block: that one wrapper goes.
_CODE_BLOCK = re.compile(r"\A```(?:json)?\s*\n?(?P<body>.*?)\n?```\Z", re.DOTALL)


class Answer(BaseModel):
    """What the model decided; strict: no other keys, no other actions, text is a string."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["reply", "handoff"]
    text: str

    @property
    def hands_off(self) -> bool:
        """The model asked for a person, by its action or by the marker in its text."""
        return self.action == "handoff" or HANDOFF_MARKER.search(self.text) is not None

    @property
    def clean_text(self) -> str:
        """The text without the handoff marker and surrounding blank space."""
        return HANDOFF_MARKER.sub("", self.text).strip()


def parse_answer(content: str) -> Answer:
    """The answer in `content`; `LLMBadAnswer` naming what is wrong with it otherwise."""
    stripped = content.strip()
    if block := _CODE_BLOCK.match(stripped):
        stripped = block.group("body").strip()
    try:
        return Answer.model_validate_json(stripped)
    except ValidationError as exc:
        raise LLMBadAnswer(f"the answer is not the JSON object asked for ({_first(exc)})") from exc


def _first(exc: ValidationError) -> str:
    """The first problem, without echoing the model's text."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
