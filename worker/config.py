"""One settings object for the whole process, read from `SIYU_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    api_token: str | None = None
    webhook_secret: str | None = None

    # Dispatch tuning. A lane works for `lane_slice_s` and then re-enqueues itself; the
    # broker's visibility timeout must stay well above it (DESIGN decision 2).
    lane_slice_s: float = Field(default=30.0, gt=0)
    lane_lease_ms: int = Field(default=15_000, ge=1000)
    claim_batch: int = Field(default=200, ge=1, le=5000)
    materialise_chunk: int = Field(default=5000, ge=100)
    max_attempts: int = Field(default=5, ge=1)
    tick_interval_s: float = Field(default=2.0, gt=0)
    # Every limiter window is widened by this much, so a send that leaves a little late (a
    # busy host, network jitter) still arrives inside the platform's limits.
    limit_margin_ms: int = Field(default=150, ge=0, le=10_000)
    tracking_secret: str = "siyu-tracking"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
