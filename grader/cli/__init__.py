"""The `grader` command."""

from grader.cli import queue as _queue  # noqa: F401 - registers the queue's commands
from grader.cli.app import app, main

__all__ = ["app", "main"]
