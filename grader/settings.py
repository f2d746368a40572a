"""Configuration from the environment (`GRADER_*`), built by `get_settings()`, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    # an empty variable (`GRADER_VALIDATION_CACHE=`) is unset, never the path "" (the current folder)
    model_config = SettingsConfigDict(env_prefix="GRADER_", extra="ignore", env_ignore_empty=True)

    exercises_dir: Path = Field(default=PROJECT_ROOT / "exercises")
    solutions_dir: Path = Field(default=PROJECT_ROOT / "solutions")
    data_dir: Path = Field(default=Path("var"))
    sandbox: str = "auto"
    device: str = "cpu"
    # Where validation reports of exercise versions are kept, to skip validating a version (same
    # files, same grader code, same sandbox) again; None: always validate.
    validation_cache: Path | None = None

    # The queue. DATABASE_URL and REDIS_URL are read without the prefix, as deployments name them.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "GRADER_DATABASE_URL")
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "GRADER_REDIS_URL"),
    )
    lease_s: float = 60.0  # a running submission whose worker stops renewing this is lost
    max_attempts: int = 3  # deliveries before a submission is given up as system_error
    reconcile_every_s: float = 10.0
    pool_size: int = 2  # warm runners kept ready per kind of sandbox (0: no pool)
    pool_keys: int = 2  # kinds of sandbox (limits, device, preload) kept warm at once
    fork_runners: bool = True  # bwrap runners forked from a fork server with torch imported
    requeue_after_s: float = 5.0  # a queued submission's job missing from Redis for this long is lost
    # queued submissions (all learners together) beyond which new ones are refused with a 503 and
    # Retry-After; 0: no cap
    queue_cap: int = Field(default=500, ge=0)

    # The web app
    secret_key: str | None = None  # signs session cookies; else one kept in <data_dir>/secret_key
    secure_cookies: bool = False  # set behind HTTPS: session cookies only over HTTPS
    signup_open: bool = True  # anyone may create a student account
    public_url: str | None = None  # the site's https:// address as LMSs reach it (LTI); else the request's
    metrics_token: str | None = None  # when set, /metrics wants `Authorization: Bearer <it>`

    def database(self) -> str:
        """The database URL: DATABASE_URL, else SQLite in the data directory."""
        from grader.store.db import default_url

        return self.database_url or default_url(self.data_dir)


def get_settings() -> Settings:
    return Settings()
