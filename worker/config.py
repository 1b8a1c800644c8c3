"""One settings object for the whole process, read from `SIYU_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import UserError

MIN_SECRET_LEN = 16


class Settings(BaseSettings):
    """Everything configurable; every field is optional (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", extra="ignore")

    database_url: str = "sqlite:///./siyu.db"
    redis_url: str | None = None
    templates_dir: Path = Path("./templates")
    rate_limits_dir: Path = Path("./rate_limits")
    state_dir: Path = Path("./.siyu")
    # The time zone of times that belong to no campaign or account (suppressions): shown in
    # it with the offset. Campaign times are shown in the campaign's zone, account times in
    # the account's.
    tz: str = "Asia/Shanghai"

    # The reply assistant's LLM (issue 9): any OpenAI-compatible server. The base URL ends in
    # the API version (`https://api.openai.com/v1`); unset, replies are retrieval-only.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    # One attempt waits up to `llm_timeout_s` for its answer; all attempts and the waits between
    # them end within `llm_deadline_s`, after which a person takes the conversation over.
    llm_timeout_s: float = Field(default=20.0, gt=0, le=600)
    llm_deadline_s: float = Field(default=45.0, gt=0, le=3600)
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    llm_history_turns: int = Field(default=6, ge=0, le=50)  # earlier messages the model sees
    # A line appended to every reply the LLM writes, e.g. "（本回复由 AI 助手生成）"; empty: none.
    reply_disclosure: str = Field(default="", max_length=200)
    # An automatic reply waits as long as a person would take to read the message and type
    # the answer: min + len(message) / read_cps + len(answer) / typing_cps, at most max
    # (max 0: at once). It then goes ahead of campaign sends, under the account's limits.
    reply_delay_min_s: float = Field(default=2.0, ge=0, le=300)
    reply_delay_max_s: float = Field(default=20.0, ge=0, le=300)
    reply_read_cps: float = Field(default=20.0, gt=0, le=1000)
    reply_typing_cps: float = Field(default=6.0, gt=0, le=1000)
    api_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # Conversations quiet for longer are deleted with their messages by the tick (hourly).
    conversation_retention_days: int = Field(default=180, ge=1, le=36_500)
    # Logging of every siyu process (`worker.observability.logs`): `text` lines, or `json`, one
    # object per line for a log collector. The level applies where a command's own option
    # (`siyu worker --loglevel`) does not set one; unset: WARNING.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None

    # Dispatch tuning. A lane works for `lane_slice_s` and then re-enqueues itself; the
    # broker's visibility timeout must stay well above it (DESIGN decision 2).
    lane_slice_s: float = Field(default=30.0, gt=0)
    lane_lease_ms: int = Field(default=15_000, ge=1000)
    claim_batch: int = Field(default=200, ge=1, le=5000)
    materialise_chunk: int = Field(default=5000, ge=100)
    max_attempts: int = Field(default=5, ge=1)
    tick_interval_s: float = Field(default=2.0, gt=0)
    # `siyu beat` (cron campaigns): a due time found later than this after it passed (beat was
    # down or busy) is skipped and recorded, never fired late; beat looks every `beat_poll_s`.
    beat_grace_s: float = Field(default=300.0, gt=0, le=86_400)
    beat_poll_s: float = Field(default=1.0, gt=0, le=60)
    # How often the tick asks platforms about sends a person must confirm (WeCom customer
    # mass-send) and records what became of each recipient.
    confirmation_sync_s: float = Field(default=60.0, gt=0, le=86_400)
    # Every limiter window is widened by this much, so a send that leaves a little late (a
    # busy host, network jitter) still arrives inside the platform's limits.
    limit_margin_ms: int = Field(default=150, ge=0, le=10_000)
    # Signs the recipient tokens of tracked links. Unset: the secret `siyu init` generated for
    # this database (`store.db.tracking_secret`); set it to keep tokens that an older
    # installation made (before 0.2 every installation used "siyu-tracking").
    tracking_secret: SecretStr | None = None
    # One-click unsubscribe links in e-mail (RFC 8058): the base URL where recipients reach
    # `siyu api` (e.g. https://mail.example.com) and the secret that signs each link. Without
    # both, mail carries only the mailto: unsubscribe.
    public_url: str | None = None
    unsubscribe_secret: SecretStr | None = None

    @field_validator(
        "llm_base_url",
        "llm_model",
        "llm_api_key",
        "public_url",
        "unsubscribe_secret",
        "api_token",
        "webhook_secret",
        "tracking_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`SIYU_LLM_MODEL=` (set but empty) means unset, as leaving it out does."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        """`SIYU_LOG_FORMAT=JSON` is meant as written; blank is the default."""
        return (value.strip().lower() or "text") if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        """`SIYU_LOG_LEVEL=info` is meant as written; blank is unset."""
        return (value.strip().upper() or None) if isinstance(value, str) else value

    @field_validator("llm_base_url")
    @classmethod
    def _llm_base_url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_llm_base_url(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_public_url(value)

    @field_validator("unsubscribe_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """A short secret could be found from one's own link, then used to forge others'."""
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LEN:
            # A UserError, not a ValueError: pydantic would quote the secret in its message.
            raise UserError(
                f"SIYU_UNSUBSCRIBE_SECRET must be at least {MIN_SECRET_LEN} characters, e.g. "
                "the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @model_validator(mode="after")
    def _reply_delay_bounds(self) -> Settings:
        if 0 < self.reply_delay_max_s < self.reply_delay_min_s:
            raise ValueError(
                f"SIYU_REPLY_DELAY_MIN_S ({self.reply_delay_min_s:g}) is above "
                f"SIYU_REPLY_DELAY_MAX_S ({self.reply_delay_max_s:g})"
            )
        return self

    @field_validator("reply_disclosure")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())


def normalise_llm_base_url(value: str) -> str:
    """An OpenAI-style base URL (`https://api.openai.com/v1`), without a trailing `/`; a pasted
    `.../chat/completions` is cut back to its base. `ValueError` unless http(s) with a host."""
    url = value.strip().rstrip("/").removesuffix("/chat/completions")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, a malformed IPv6 host
        valid = False
    if not valid or parts.query or parts.fragment:
        raise ValueError(f"must be an http(s) URL such as https://api.openai.com/v1, got {value!r}")
    return url


def normalise_public_url(value: str) -> str:
    """The base URL recipients reach `siyu api` at, without a trailing `/`; `ValueError`
    unless http(s) with a host and neither query nor fragment."""
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid or parts.query or parts.fragment:
        raise ValueError(f"must be an http(s) URL such as https://mail.example.com, got {value!r}")
    return url


def revealed(secret: SecretStr | None) -> str | None:
    """The value of an optional secret setting, for the one place that uses it."""
    return None if secret is None else secret.get_secret_value()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
