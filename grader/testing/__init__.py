"""What hidden and public tests import: assertions, remote-call helpers and check primitives."""

from grader.remote import File, Gradients, MissingName, RemoteError
from grader.testing.asserts import GradingFailure, assert_close, expect
from grader.testing.calls import Call, Setup
from grader.testing.causality import Seq, assert_causal
from grader.testing.compare import Mismatch, compare, default_tolerance
from grader.testing.dtypes import dtype_params, tolerance
from grader.testing.gradients import assert_gradients_close, local_gradients
from grader.testing.inputs import call_unchanged, kept_in_runner, kept_result, view_in_runner
from grader.testing.invariance import assert_invariant
from grader.testing.shrink import shrink

__all__ = [
    "Call",
    "File",
    "Gradients",
    "GradingFailure",
    "Mismatch",
    "MissingName",
    "RemoteError",
    "Seq",
    "Setup",
    "assert_causal",
    "assert_close",
    "assert_gradients_close",
    "assert_invariant",
    "call_unchanged",
    "kept_in_runner",
    "kept_result",
    "compare",
    "default_tolerance",
    "dtype_params",
    "expect",
    "local_gradients",
    "shrink",
    "tolerance",
    "view_in_runner",
]
