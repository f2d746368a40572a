"""Where kernel checks can be measured, and how the runner's compile reports are read."""

from __future__ import annotations

import pytest

from grader.harness.perf import _build_figures
from grader.measurement.protocol import measurable_on


@pytest.mark.parametrize(
    ("metric", "device", "expected"),
    [
        ("device_time", "cpu", False),
        ("device_time", "cuda:0", True),
        ("traffic", "cpu", True),
        ("dram", "cuda:1", False),
        ("launches", "cuda:0", False),
        ("time", "cuda:0", True),
        ("allocation", "cpu", True),
    ],
)
def test_each_check_is_measured_where_it_can_be(metric: str, device: str, expected: bool) -> None:
    assert measurable_on(metric, device) is expected


def test_a_compile_report_is_read_as_plain_typed_values() -> None:
    good = {
        "kernel": "k",
        "registers": 40,
        "spill_bytes": 0,
        "shared_bytes": 512,
        "tensor_cores": True,
        "error": "",
    }
    assert _build_figures(good) == good
    forged = {"kernel": "k" * 500, "registers": -3, "spill_bytes": 1.5, "tensor_cores": "yes", "error": 7}
    read = _build_figures(forged)
    assert read["kernel"] == "k" * 100 and read["registers"] == 0 and read["spill_bytes"] == 0
    assert read["tensor_cores"] is False and read["error"] == "7"
    assert _build_figures(["not", "a", "dict"])["error"] == "no report"
