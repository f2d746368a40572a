"""Hosts that differ are flagged against the others serving the same queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.fingerprint import Fingerprint, differences

ROOT = Path(__file__).resolve().parents[2]


def host(name: str, **fields: object) -> Fingerprint:
    base: dict[str, object] = {"host": name, "python": "3.11.7", "grader_version": "1", "torch": "2.13.0"}
    return Fingerprint.model_validate(base | fields)


def test_the_odd_one_out_of_a_queue_is_flagged_in_the_fields_it_differs() -> None:
    prints = {
        "a": host("a"),
        "b": host("b"),
        "c": host("c", torch="2.12.0", image_digest="sha256:1"),
        "g": host("g", gpu="NVIDIA H100", driver="570"),
    }
    queues = {"a": ["cpu"], "b": ["cpu"], "c": ["cpu"], "g": ["gpu"]}
    assert differences(prints, queues) == {"c": ["torch", "image_digest"]}


def test_a_tie_flags_both_sides_and_a_lone_worker_nothing() -> None:
    prints = {"a": host("a"), "b": host("b", driver="570"), "g": host("g", gpu="H100")}
    assert differences(prints, {"a": ["gpu"], "b": ["gpu"], "g": ["other"]}) == {
        "a": ["driver"],
        "b": ["driver"],
    }
    assert differences(prints, {"a": ["cpu"], "b": ["gpu"]}) == {}


def test_workers_without_a_heartbeat_are_left_out() -> None:
    prints = {"a": host("a"), "b": host("b")}
    assert differences(prints, {"a": ["cpu"], "b": ["cpu"], "gone": ["cpu"]}) == {}


def test_torchs_cuda_is_read_without_importing_torch(tmp_path: Path) -> None:
    # a torch that cannot be imported, with the version file torch's wheels carry
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('imported')\n")
    (tmp_path / "torch" / "version.py").write_text(
        "from typing import Optional\n__version__ = '2.13.0+cu128'\ncuda: Optional[str] = '12.8'\n"
    )
    probe = (
        "import sys; from grader.fingerprint import _torch_cuda; print(_torch_cuda(), 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["12.8", "False"]


def test_with_torch_imported_its_own_answer_is_taken() -> None:
    import torch

    from grader.fingerprint import _torch_cuda

    _torch_cuda.cache_clear()
    assert _torch_cuda() == torch.version.cuda
