"""The LLM responder: an OpenAI-compatible chat model answers from the retrieved entries.

client.py     ChatClient: httpx, timeouts, the deadline, tenacity retries, the error tree
answer.py     the model's answer, parsed strictly: `{"action": "reply" | "handoff", "text"}`
responder.py  LLMResponder: prompt -> client -> answer -> guardrails -> Decision

`llm_responder(settings)` builds one from `SIYU_LLM_*`, or returns None when no LLM is set
(replies are then retrieval-only).
"""

from __future__ import annotations

from worker.config import Settings
from worker.errors import UserError
from worker.replies.llm.answer import Answer, parse_answer
from worker.replies.llm.client import (
    ChatClient,
    LLMBadAnswer,
    LLMError,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
)
from worker.replies.llm.responder import HOLDING_REPLY, LLMResponder
from worker.replies.prompt import PromptBuilder

__all__ = [
    "HOLDING_REPLY",
    "Answer",
    "ChatClient",
    "LLMBadAnswer",
    "LLMError",
    "LLMRejected",
    "LLMResponder",
    "LLMTimeout",
    "LLMUnavailable",
    "chat_client",
    "llm_responder",
    "parse_answer",
]


def chat_client(settings: Settings) -> ChatClient | None:
    """The client `SIYU_LLM_*` describe; None without a base URL; `UserError` without a model."""
    if settings.llm_base_url is None:
        return None
    if settings.llm_model is None:
        raise UserError("SIYU_LLM_BASE_URL is set but SIYU_LLM_MODEL is not: name the model")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return ChatClient(
        settings.llm_base_url,
        settings.llm_model,
        key,
        timeout_s=settings.llm_timeout_s,
        deadline_s=settings.llm_deadline_s,
        max_attempts=settings.llm_max_attempts,
        temperature=settings.llm_temperature,
    )


def llm_responder(settings: Settings) -> LLMResponder | None:
    """The LLM responder for these settings, or None when no LLM is configured."""
    client = chat_client(settings)
    if client is None:
        return None
    prompt = PromptBuilder(settings.templates_dir, history_turns=settings.llm_history_turns)
    return LLMResponder(client, prompt, disclosure=settings.reply_disclosure)
