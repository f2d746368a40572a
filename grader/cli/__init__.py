"""The `grader` command."""

from grader.cli.app import app, main

__all__ = ["app", "main"]
