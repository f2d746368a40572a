"""What hidden and public tests import: assertions, remote-call helpers and check primitives."""

from grader.remote import File, MissingName, RemoteError
from grader.testing.asserts import GradingFailure, assert_close, expect
from grader.testing.calls import Call
from grader.testing.compare import Mismatch, compare, default_tolerance

__all__ = [
    "Call",
    "File",
    "GradingFailure",
    "Mismatch",
    "MissingName",
    "RemoteError",
    "assert_close",
    "compare",
    "default_tolerance",
    "expect",
]
