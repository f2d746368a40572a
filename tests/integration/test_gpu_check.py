"""scripts/gpu-check.sh, dry run: every step of the GPU host's check, on the CPU."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_dry_on_the_cpu_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    done = subprocess.run(
        [
            "scripts/gpu-check.sh",
            "--dry-run",
            "--exercises",
            "triton-softmax",
            "--report",
            str(report),
            "--budget",
            "600",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert "# GPU check (dry run on the CPU)" in text and "Result: **pass**" in text
    assert "- triton: 3.7.1" in text and "- gpu: none visible to torch" in text
    assert "test(s) not run: no NVIDIA GPU on this host" in text  # the GPU tests, skipped and said so
    found = json.loads(report.with_suffix(".json").read_text())
    gradings = {g["subject"]: g for g in found["gradings"]}
    assert gradings["reference"]["status"] == "passed"
    wrongs = [g for s, g in gradings.items() if s.startswith("wrong/")]
    assert len(wrongs) >= 5 and all(g["status"] not in ("passed", "not run", "error") for g in wrongs)
    assert found["ok"] is True


def test_the_gpu_check_refuses_an_unknown_exercise(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            "scripts/gpu-check.sh",
            "--dry-run",
            "--exercises",
            "triton-sofmax",
            "--report",
            str(tmp_path / "r.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert "no exercise called 'triton-sofmax'" in done.stderr and "triton-softmax" in done.stderr
    assert "Traceback" not in done.stderr
