"""The LLM responder: an OpenAI-compatible chat model answers from the retrieved entries.

client.py     ChatClient: httpx, timeouts, the deadline, tenacity retries, the error tree
answer.py     the model's answer, parsed strictly: `{"action": "reply" | "handoff", "text"}`
responder.py  LLMResponder: prompt -> client -> answer -> guardrails -> Decision

`llm_responder(settings)` returns the one responder of this process for `SIYU_LLM_*`, or None
when no LLM is set (replies are then retrieval-only).
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import SecretStr

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
    "new_llm_responder",
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


# The settings a responder is built from: the cache key (a Settings object is not hashable).
_RESPONDER_FIELDS = (
    "llm_base_url", "llm_model", "llm_api_key", "llm_timeout_s", "llm_deadline_s",
    "llm_max_attempts", "llm_temperature", "llm_history_turns", "reply_disclosure",
    "templates_dir",
)  # fmt: skip
_MAX_CACHED = 8  # configurations per process: one in production, a few in tests
_responders: dict[tuple[Any, ...], LLMResponder] = {}
_responders_lock = threading.Lock()


def llm_responder(settings: Settings) -> LLMResponder | None:
    """The LLM responder for these settings, or None when no LLM is configured.

    One per process and configuration, built on first use: every reply shares its HTTP client
    (and the connections it keeps) instead of building a client and checking the persona per
    message. The persona and knowledge are still read for each message, so edits to them take
    effect on the next reply.
    """
    if settings.llm_base_url is None:
        return None
    key = _responder_key(settings)
    with _responders_lock:
        responder = _responders.get(key)
        if responder is None:
            responder = new_llm_responder(settings)
            if responder is None:
                return None
            if len(_responders) >= _MAX_CACHED:
                _responders.pop(next(iter(_responders)))
            _responders[key] = responder
    return responder


def new_llm_responder(settings: Settings) -> LLMResponder | None:
    """A new LLM responder for these settings (uncached), or None when no LLM is configured."""
    client = chat_client(settings)
    if client is None:
        return None
    prompt = PromptBuilder(settings.templates_dir, history_turns=settings.llm_history_turns)
    return LLMResponder(client, prompt, disclosure=settings.reply_disclosure)


def _responder_key(settings: Settings) -> tuple[Any, ...]:
    values = (getattr(settings, name) for name in _RESPONDER_FIELDS)
    return tuple(v.get_secret_value() if isinstance(v, SecretStr) else v for v in values)
