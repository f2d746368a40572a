"""Test primitives for exercise authors: causality, invariance, dtype tolerances, shrinking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from grader.remote import remote_error
from grader.runner.messages import ErrorReport
from grader.testing import (
    GradingFailure,
    Seq,
    assert_causal,
    assert_invariant,
    dtype_params,
    expect,
    shrink,
    tolerance,
)

RNG = np.random.default_rng(0)


def causal_mean(x: torch.Tensor) -> torch.Tensor:
    counts = torch.arange(1, x.shape[-2] + 1).unsqueeze(-1)
    return x.cumsum(-2) / counts  # (T, d): position t averages positions 0..t


def test_a_causal_function_passes() -> None:
    assert_causal(causal_mean, [Seq(torch.randn(8, 3))], rng=RNG)


def test_a_function_that_peeks_ahead_fails_with_the_cut() -> None:
    def leaky(x: torch.Tensor) -> torch.Tensor:
        return causal_mean(x) + x.roll(-1, dims=-2) * 1e-3  # position t sees t + 1

    with pytest.raises(GradingFailure, match="the future leaks into the past") as info:
        assert_causal(leaky, [Seq(torch.randn(8, 3))], rng=RNG, cuts=[4], hint="look ahead?")
    assert "positions up to 4" in info.value.detail and info.value.hint == "look ahead?"
    assert "4" not in info.value.message  # where it leaked depends on the output's length


def test_positions_line_up_across_inputs_of_different_lengths() -> None:
    keys = torch.randn(6, 2)

    def last_queries(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        # query i of 2 sits at absolute position 4 + i and may use keys 0 .. 4 + i
        return torch.stack([q[i] + k[: 5 + i].sum(0) for i in range(q.shape[0])])

    assert_causal(last_queries, [Seq(torch.randn(2, 2), start=4), Seq(keys)], rng=RNG, out_start=4, cuts=[4])
    with pytest.raises(GradingFailure):  # claiming the queries start at 0 exposes the keys they use
        assert_causal(last_queries, [Seq(torch.randn(2, 2)), Seq(keys)], rng=RNG, out_start=0, cuts=[0])


def blockwise_sum(x: torch.Tensor, *, block: int, bug: bool = False) -> torch.Tensor:
    parts = [x[i : i + block].sum(0) for i in range(0, x.shape[0] - (1 if bug else 0), block)]
    return torch.stack(parts).sum(0)


def test_invariance_across_block_sizes() -> None:
    x = torch.arange(10.0).unsqueeze(-1)
    variants = {f"block={b}": {"block": b} for b in (1, 3, 10, 16)}
    assert_invariant(blockwise_sum, [x], variants, expected=x.sum(0))
    with pytest.raises(GradingFailure, match="with block=1 differs from the expected value"):
        assert_invariant(
            blockwise_sum, [x], {k: {**v, "bug": True} for k, v in variants.items()}, expected=x.sum(0)
        )


def test_invariance_without_an_expected_value_compares_with_the_first_variant() -> None:
    with pytest.raises(GradingFailure, match="with b differs from a"):
        assert_invariant(lambda *, v: v, [], {"a": {"v": 1}, "b": {"v": 2}})


def test_dtype_sweeps() -> None:
    params = dtype_params()
    assert [p.id for p in params] == ["float32", "float16", "bfloat16"]
    assert [p.values[0] for p in dtype_params("float64")] == [torch.float64]
    assert (
        tolerance(torch.bfloat16)["rtol"]
        > tolerance(torch.float16)["rtol"]
        > tolerance(torch.float32)["rtol"]
    )


def failing_from(n_at_least: int, odd_seeds_pass: bool = False) -> Any:
    calls: list[tuple[int, int]] = []

    def check(sizes: dict[str, int], seed: int) -> None:
        calls.append((sizes["n"], seed))
        if odd_seeds_pass and seed % 2:
            return
        expect(sizes["n"] < n_at_least or sizes["d"] < 2, f"wrong for n={sizes['n']}", hint="off by one?")

    check.calls = calls  # type: ignore[attr-defined]
    return check


def test_shrinking_finds_the_smallest_failing_case() -> None:
    with pytest.raises(GradingFailure) as info:
        shrink(failing_from(3), {"n": 64, "d": 16}, seed=7)
    message = info.value.message
    assert message.startswith("smallest failing case: n=3, d=2 (seed 0); first failed at n=64, d=16 (seed 7)")
    assert message.endswith("wrong for n=3") and info.value.hint == "off by one?"


def test_shrinking_honours_minimums_and_the_budget() -> None:
    check = failing_from(0)
    with pytest.raises(GradingFailure, match="n=5, d=4"):
        shrink(check, {"n": 40, "d": 9}, seed=3, minimum={"n": 5, "d": 4})
    budgeted = failing_from(0)
    with pytest.raises(GradingFailure):
        shrink(budgeted, {"n": 1000, "d": 1000}, seed=1, budget=5)
    assert len(budgeted.calls) == 6  # the first run and five attempts


def test_a_passing_check_is_run_once() -> None:
    check = failing_from(10**9)
    shrink(check, {"n": 4, "d": 4}, seed=0)
    assert check.calls == [(4, 0)]


def test_shrinking_moves_to_a_seed_that_fails_at_the_smaller_size() -> None:
    with pytest.raises(GradingFailure, match=r"smallest failing case: n=3, d=2 \(seed 0\)"):
        shrink(failing_from(3, odd_seeds_pass=True), {"n": 32, "d": 8}, seed=2)


def test_shrinking_reports_submission_exceptions_with_the_case() -> None:
    def check(sizes: dict[str, int], seed: int) -> None:
        if sizes["n"] >= 2:
            raise remote_error(ErrorReport("IndexError", "boom", bases=("IndexError",)))

    with pytest.raises(IndexError) as info:
        shrink(check, {"n": 8}, seed=0)
    case = info.value.shrunk_case  # type: ignore[attr-defined]
    assert case == "smallest failing case: n=2 (seed 0); first failed at n=8 (seed 0)"


def test_local_gradients_through_the_reference_fixture_and_tuple_outputs(tmp_path: Any) -> None:
    import types

    from grader.harness.reference import LocalModule
    from grader.testing import compare, local_gradients

    module = types.ModuleType("m")
    module.f = lambda x: ((x * 2).sum(), x.detach())  # type: ignore[attr-defined]
    reference = LocalModule(module, tmp_path)
    x = torch.ones(3, requires_grad=True)
    out, grads, _ = local_gradients(reference.f, (x,), {}, torch.tensor(1.0))
    assert isinstance(out, tuple) and torch.equal(grads[0], torch.full((3,), 2.0))
    assert compare((torch.tensor(6.0), torch.ones(3)), out) is None


def test_comparing_with_an_all_nan_expected_value_is_quiet() -> None:
    import warnings

    from grader.testing import compare

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = compare(torch.tensor([1.0]), torch.tensor([float("nan")]))
    assert found is not None


def test_invariance_failures_say_where_inside_a_tuple() -> None:
    with pytest.raises(GradingFailure, match=r"the output with block=1 differs") as info:
        assert_invariant(
            lambda x, **k: (x, x + 1),
            [torch.zeros(2)],
            {"block=1": {}},
            expected=(torch.zeros(2), torch.zeros(2)),
        )
    assert info.value.detail.startswith("at [1]: ")


def test_shrinking_with_a_large_seed_ends() -> None:
    def check(sizes: dict[str, int], seed: int) -> None:
        if seed == 3_000_000_000:
            raise AssertionError("fails only for this seed")

    with pytest.raises(GradingFailure, match=r"n=8 \(seed 3000000000\)"):
        shrink(check, {"n": 8}, seed=3_000_000_000)


def test_pytest_fail_inside_a_check_is_shrunk_too() -> None:
    def check(sizes: dict[str, int], seed: int) -> None:
        if sizes["n"] > 2:
            pytest.fail("too big")

    with pytest.raises(GradingFailure, match=r"smallest failing case: n=3"):
        shrink(check, {"n": 40}, seed=0)


def test_the_local_reference_opens_files_like_the_runner(tmp_path: Any) -> None:
    import types

    from grader.harness.reference import LocalModule
    from grader.remote import File

    module = types.ModuleType("m")
    module.first = lambda f: next(iter(f))  # type: ignore[attr-defined]
    reference = LocalModule(module, tmp_path)
    assert reference.first(File(b"hello\nworld\n", "a.txt", open=True)) == "hello\n"
    reference.close()
