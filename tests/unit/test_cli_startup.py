"""The `grader` command starts without loading what only some of its commands need: a command
that lists exercises must not pay for the database, Redis, pytest or the tensor libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "redis", "rq", "pytest", "numpy", "torch", "fastapi", "uvicorn")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(run.stdout.strip().splitlines()[-1]))


def test_importing_the_command_loads_none_of_the_heavy_libraries() -> None:
    assert loaded_after("import grader.cli") == []


@pytest.mark.parametrize("argv", [["--help"], ["exercise", "list"], ["worker", "--help"]])
def test_light_commands_stay_light(argv: list[str]) -> None:
    code = (
        "import sys\nfrom grader.cli import main\n"
        f"sys.argv = ['grader', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code) == []
