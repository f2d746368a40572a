"""Configuration from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.settings import PROJECT_ROOT, Settings


def test_an_empty_variable_is_unset_not_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_VALIDATION_CACHE", "")
    monkeypatch.setenv("GRADER_EXERCISES_DIR", "")
    settings = Settings()
    assert settings.validation_cache is None
    assert settings.exercises_dir == PROJECT_ROOT / "exercises"


def test_a_set_variable_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRADER_VALIDATION_CACHE", str(tmp_path))
    assert Settings().validation_cache == tmp_path
