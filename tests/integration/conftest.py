"""Fixtures of the web tests: the people and database made once per module, and a fresh copy of
them (with its own data directory and Redis database) for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.web_fixtures import People, World, make_people, open_world


@pytest.fixture(scope="module")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, People]:
    folder = tmp_path_factory.mktemp("web-template")
    return folder, make_people(folder)


@pytest.fixture
def world(web_template: tuple[Path, People], tmp_path: Path, redis_url: str) -> Iterator[World]:
    opened = open_world(*web_template, tmp_path / "data", redis_url)
    yield opened
    opened.close()
