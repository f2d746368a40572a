"""Static checks on submitted source, as a table of cases."""

from __future__ import annotations

import pytest

from grader.spec import ExerciseSpec
from grader.static import Rejected, check_source

SPEC = ExerciseSpec.model_validate(
    {
        "id": "ex",
        "title": "T",
        "summary": "S",
        "track": "t",
        "level": 1,
        "minutes": 5,
        "entrypoint": "attention",
        "source_kb": 1,
        "forbidden": {
            "imports": ["subprocess"],
            "calls": ["torch.nn.functional.scaled_dot_product_attention", "torch.nn.MultiheadAttention"],
            "reason": "Build it.",
        },
    }
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"x = 1\n" * 400, "is 2 KB; submissions are limited to 1 KB", id="too-large"),
        pytest.param(b"x = '\xff'\n", "not valid UTF-8 text (byte 0xff at offset 5)", id="not-utf8"),
        pytest.param(b"   \n\t\n", "is empty", id="empty"),
        pytest.param(b"def f(:\n    pass\n", "Syntax error in attention.py, line 1", id="syntax"),
        pytest.param(b"x = 1\x00\n", "NUL byte", id="nul"),
        pytest.param(
            b"import subprocess\n", "line 1: importing subprocess is not allowed here. Build it.", id="import"
        ),
        pytest.param(b"from subprocess import run\n", "importing subprocess", id="from-import"),
        pytest.param(b"x = __import__('subprocess')\n", "importing subprocess", id="dunder-import"),
        pytest.param(
            b"import torch.nn.functional as F\n\ny = F.scaled_dot_product_attention\n",
            "line 3: scaled_dot_product_attention is not allowed in this exercise (torch.nn.functional",
            id="attribute",
        ),
        pytest.param(
            b"from torch.nn.functional import scaled_dot_product_attention as s\n",
            "scaled_dot_product_attention is not allowed",
            id="imported-name",
        ),
        pytest.param(
            b"import torch\nf = getattr(torch.nn.functional, 'scaled_dot_product_attention')\n",
            "not allowed",
            id="getattr",
        ),
        pytest.param(
            b"import torch\nm = torch.nn.MultiheadAttention(4, 2)\n",
            "MultiheadAttention is not allowed",
            id="module",
        ),
        pytest.param(
            b"import torch\nf = torch._C._nn.scaled_dot_product_attention\n", "not allowed", id="private-path"
        ),
    ],
)
def test_rejections(raw: bytes, message: str) -> None:
    with pytest.raises(Rejected) as info:
        check_source(raw, SPEC)
    assert message in info.value.message


def test_syntax_errors_point_at_the_line() -> None:
    with pytest.raises(Rejected) as info:
        check_source(b"x = 1\ny = (2,\n", SPEC)
    assert info.value.line is not None


def test_size_is_judged_on_the_real_file_size() -> None:
    with pytest.raises(Rejected, match="is 50.0 MB"):
        check_source(b"x = 1\n", SPEC, size=50 * 1024 * 1024)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"def scaled_dot_product_attention(q, k, v):\n    return q\n", id="own-function-same-name"
        ),
        pytest.param(
            b"def f():\n    return scaled_dot_product_attention(1, 2, 3)\n", id="calls-own-function"
        ),
        pytest.param(b'"""Do not call F.scaled_dot_product_attention."""\n', id="docstring-mention"),
        pytest.param("\ufeffx = 'héllo'\n".encode(), id="bom-and-unicode"),
        pytest.param(b"import torch\n", id="allowed-import"),
    ],
)
def test_accepted(raw: bytes) -> None:
    assert check_source(raw, SPEC).lstrip("\ufeff")


KERNEL_SPEC = SPEC.model_copy(
    update={
        "forbidden": SPEC.forbidden.model_copy(update={"calls": ["torch.exp", "torch.softmax", "torch.dot"]})
    }
)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"import triton.language as tl\ny = tl.exp(x) / tl.sum(tl.exp(x))\n", id="tl-alias"),
        pytest.param(b"from triton import language as tl\nacc = tl.dot(a, b)\n", id="from-triton-import"),
        pytest.param(b"import triton\ny = triton.language.exp(x)\n", id="dotted"),
        pytest.param(b"import triton.language as tl\ny = tl.math.exp(x)\n", id="submodule"),
        pytest.param(b"from triton.language import exp\n", id="imported-from-the-language"),
    ],
)
def test_a_kernels_own_operations_are_not_torchs(raw: bytes) -> None:
    """`tl.exp` in a Triton kernel is Triton's, not the `torch.exp` an exercise forbids."""
    assert check_source(raw, KERNEL_SPEC)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"import torch\ny = torch.exp(x)\n", id="torch"),
        pytest.param(b"import triton.language as tl\nimport torch\ny = tl.exp(x) + x.exp()\n", id="method"),
        pytest.param(b"import triton\ny = triton.exp(x)\n", id="not-the-language"),
        pytest.param(b"import torch as tl\ny = tl.exp(x)\n", id="torch-named-tl"),
    ],
)
def test_torchs_forbidden_calls_stay_forbidden_beside_a_kernel(raw: bytes) -> None:
    with pytest.raises(Rejected, match="exp is not allowed"):
        check_source(raw, KERNEL_SPEC)
