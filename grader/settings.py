"""Configuration from the environment (`GRADER_*`), built by `get_settings()`, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADER_", extra="ignore")

    exercises_dir: Path = Field(default=PROJECT_ROOT / "exercises")
    solutions_dir: Path = Field(default=PROJECT_ROOT / "solutions")
    data_dir: Path = Field(default=Path("var"))
    sandbox: str = "auto"
    device: str = "cpu"


def get_settings() -> Settings:
    return Settings()
