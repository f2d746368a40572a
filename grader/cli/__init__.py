"""The `grader` command."""

from grader.cli import ci as _ci  # noqa: F401 - registers `ci`
from grader.cli import client as _client  # noqa: F401 - registers `submit`
from grader.cli import lti as _lti  # noqa: F401 - registers `lti`
from grader.cli import notebook as _notebook  # noqa: F401 - registers `notebook` and `exercise import-notebook`
from grader.cli import queue as _queue  # noqa: F401 - registers the queue's commands
from grader.cli import serve as _serve  # noqa: F401 - registers `serve`
from grader.cli import users as _users  # noqa: F401 - registers `user`
from grader.cli.app import app, main

__all__ = ["app", "main"]
