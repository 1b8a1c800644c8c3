"""A client for any OpenAI-compatible `POST {base_url}/chat/completions` server.

`base_url` follows OpenAI's convention: it ends in the API version (`https://api.openai.com/v1`,
`http://127.0.0.1:11434/v1`, `https://open.bigmodel.cn/api/paas/v4`); nothing is appended but
`/chat/completions`. (Appending `/v1` ourselves would break servers whose version is another.)

Failures, and what is retried (with tenacity):

    LLMError
    ├── LLMUnavailable   408, 429, 5xx, connection failures: retried with exponential backoff
    │                    and jitter, or after the server's `Retry-After` (seconds or an HTTP
    │                    date; or `retry-after-ms`), while attempts and the deadline allow
    ├── LLMRejected      any other 4xx (400 bad request, 401 key, 402 credit, 403, 404 URL or
    │                    model): the same request would fail again, so never retried
    ├── LLMTimeout       no answer within the attempt's timeout, or an answer after the deadline
    └── LLMBadAnswer     a 200 that is not a usable completion: garbage, a refusal, cut off

Every attempt and every wait ends within one overall deadline. `response_format` (JSON mode)
and `temperature` are sent when possible: a server that rejects one of them with a 400 naming
it (some do not implement JSON mode; reasoning models accept no temperature) gets the same
request again without it, and this client never sends it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from worker.config import normalise_llm_base_url
from worker.errors import SiyuError, UserError
from worker.httpwait import retry_after_s

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
MIN_ATTEMPT_S = 1.0  # an attempt with less time than this left before the deadline is not made
RETRIED_STATUSES = frozenset({408, 429})  # and every 5xx
_DETAIL_CHARS = 160
_backoff = wait_random_exponential(multiplier=0.5, max=8)

Message = dict[str, str]


class LLMError(SiyuError):
    """The LLM gave no usable answer; `str(exc)` says why, for the operator."""


class LLMUnavailable(LLMError):
    """Overloaded, rate limited or unreachable: worth another attempt."""

    def __init__(self, what: str, retry_after_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after_s = retry_after_s


class LLMRejected(LLMError):
    """The server refused the request itself (key, credit, model, URL, parameters)."""


class LLMTimeout(LLMError):
    """No answer in time."""


class LLMBadAnswer(LLMError):
    """An answer that cannot be used: not a chat completion, refused, cut off, wrong format."""


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Completion(BaseModel):
    choices: list[_Choice] = Field(min_length=1)


class ChatClient:
    """One model on one OpenAI-compatible server; `complete()` returns the assistant's text.

    `sleep`, `clock` (monotonic seconds) and `now` (wall time, for `Retry-After` dates) are
    injectable, so tests can check every wait without waiting.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 20.0,
        deadline_s: float = 45.0,
        max_attempts: int = 3,
        temperature: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not model.strip():
            raise UserError("SIYU_LLM_MODEL must name a model")
        if timeout_s <= 0 or deadline_s <= 0 or max_attempts < 1:
            raise ValueError("timeout_s and deadline_s must be positive, max_attempts >= 1")
        try:
            self.base_url = normalise_llm_base_url(base_url)
        except ValueError as exc:
            raise UserError(f"SIYU_LLM_BASE_URL {exc}") from None
        self.model = model.strip()
        self.timeout_s, self.deadline_s, self.max_attempts = timeout_s, deadline_s, max_attempts
        self._sleep, self._clock, self._now = sleep, clock, now
        self._optional: dict[str, Any] = {
            "temperature": temperature,
            "response_format": {"type": "json_object"},
        }
        headers = {"User-Agent": "siyu"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, transport=transport)

    def __repr__(self) -> str:  # never the key
        return f"ChatClient({self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[Message]) -> str:
        """The assistant's answer to `messages`; raises an `LLMError` saying why not."""
        deadline = self._clock() + self.deadline_s
        attempts = 0

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return self._post(messages, deadline)

        retrying = Retrying(
            retry=retry_if_exception_type(LLMUnavailable),
            stop=lambda state: self._stop(state, attempts, deadline),
            wait=lambda state: self._wait(state, deadline),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except LLMUnavailable as exc:
            raise LLMUnavailable(
                self._given_up(exc, attempts, deadline), exc.retry_after_s
            ) from exc
        if self._clock() > deadline:
            raise LLMTimeout(f"answered after the {self.deadline_s:g} s deadline")
        return completion_text(response)

    def _stop(self, state: RetryCallState, attempts: int, deadline: float) -> bool:
        """Stop after the last attempt, or when the next would not fit before the deadline."""
        if attempts >= self.max_attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        asked_s = exc.retry_after_s if isinstance(exc, LLMUnavailable) else None
        return deadline - self._clock() - (asked_s or 0.0) < MIN_ATTEMPT_S

    def _wait(self, state: RetryCallState, deadline: float) -> float:
        """The server's `Retry-After` if it gave one, else jittered backoff; within the deadline."""
        exc = state.outcome.exception() if state.outcome else None
        asked_s = exc.retry_after_s if isinstance(exc, LLMUnavailable) else None
        wait_s = asked_s if asked_s is not None else _backoff(state)
        return max(0.0, min(wait_s, deadline - self._clock() - MIN_ATTEMPT_S))

    def _given_up(self, exc: LLMUnavailable, attempts: int, deadline: float) -> str:
        tried = f"{exc.what} after {attempts} attempt{'s' if attempts != 1 else ''}"
        left_s = deadline - self._clock()
        if exc.retry_after_s is not None and exc.retry_after_s > left_s - MIN_ATTEMPT_S:
            tried += (
                f"; the server asked to wait {exc.retry_after_s:g} s, "
                f"past the {self.deadline_s:g} s deadline"
            )
        return tried

    def _post(self, messages: Sequence[Message], deadline: float) -> httpx.Response:
        """One attempt; resent without an optional parameter the server rejects by name."""
        while True:
            body = {"model": self.model, "messages": list(messages), **self._optional}
            response = self._send(body, deadline)
            rejected = self._rejected_option(response)
            if rejected is None:
                return _checked(response, self._now())
            log.warning("llm server rejects %r: not sending it again", rejected)
            self._optional.pop(rejected, None)

    def _send(self, body: dict[str, Any], deadline: float) -> httpx.Response:
        left_s = deadline - self._clock()
        if left_s <= 0:
            raise LLMTimeout(f"no answer within the {self.deadline_s:g} s deadline")
        read_s = min(self.timeout_s, left_s)
        timeout = httpx.Timeout(read_s, connect=min(CONNECT_TIMEOUT_S, read_s))
        try:
            return self._http.post("/chat/completions", json=body, timeout=timeout)
        except httpx.ConnectTimeout as exc:
            raise LLMUnavailable("could not connect (timeout)") from exc
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"no answer within {read_s:g} s") from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(f"connection failed ({type(exc).__name__})") from exc

    def _rejected_option(self, response: httpx.Response) -> str | None:
        if response.status_code != 400:
            return None
        text = response.text
        return next((name for name in self._optional if name in text), None)


def _checked(response: httpx.Response, now: datetime) -> httpx.Response:
    """The response if it is a 200; else the `LLMError` its status means."""
    status = response.status_code
    if status == 200:
        return response
    what = f"HTTP {status}"
    if status in RETRIED_STATUSES or status >= 500:
        raise LLMUnavailable(what, retry_after_s(response.headers, now))
    hint = {
        401: "the API key was refused (SIYU_LLM_API_KEY)",
        402: "the LLM account has no credit left",
        403: "the API key may not use this model or endpoint",
        404: f"nothing at {response.request.url}: check SIYU_LLM_BASE_URL (it usually ends in "
        "/v1) and SIYU_LLM_MODEL",
    }.get(status)
    detail = _error_message(response)
    raise LLMRejected("; ".join(part for part in (what, hint, detail) if part))


def _error_message(response: httpx.Response) -> str | None:
    """The server's own error message (OpenAI's `{"error": {"message"}}`), shortened."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        return None
    one_line = " ".join(message.split())
    return one_line[:_DETAIL_CHARS] + ("…" if len(one_line) > _DETAIL_CHARS else "")


def completion_text(response: httpx.Response) -> str:
    """The first choice's text; `LLMBadAnswer` for garbage, a refusal, a cut-off or no text."""
    try:
        choice = _Completion.model_validate_json(response.content).choices[0]
    except ValidationError as exc:
        raise LLMBadAnswer("the server's answer is not a chat completion") from exc
    if choice.message.refusal:
        raise LLMBadAnswer(f"the model refused: {choice.message.refusal[:_DETAIL_CHARS]}")
    if choice.finish_reason == "content_filter":
        raise LLMBadAnswer("the provider's content filter stopped the answer")
    if choice.finish_reason == "length":
        raise LLMBadAnswer("the answer was cut off (finish_reason=length)")
    if not (choice.message.content or "").strip():
        raise LLMBadAnswer("the answer is empty")
    return choice.message.content or ""
