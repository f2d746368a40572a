"""`grader user`: the first instructor of a new server, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.store import Role, make_engine, sessions
from web import accounts

GRADER = str(Path(sys.executable).with_name("grader"))


def run(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")} | {"DATABASE_URL": db}
    return subprocess.run(
        [GRADER, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_an_instructor_created_from_the_command_line_logs_in_and_roles_change(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/grader.db"
    not_yet = run(db, "user", "create", "ada@example.com", "--name", "Ada", stdin="long-password\n")
    assert not_yet.returncode == 1 and "grader db upgrade" in not_yet.stderr  # no schema: said so
    assert run(db, "db", "upgrade").returncode == 0
    done = run(
        db, "user", "create", "Ada@Example.com", "--name", "Ada", "--role", "instructor", "--password-stdin",
        stdin="long-password\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "created instructor Ada <ada@example.com>" in done.stdout
    factory = sessions(make_engine(db))
    user = accounts.authenticate(factory, "ada@example.com", "long-password")
    assert user is not None and user.role == Role.INSTRUCTOR

    again = run(
        db, "user", "create", "ada@example.com", "--name", "Ada", "--password-stdin", stdin="other-pass\n"
    )
    assert again.returncode == 2 and "exists already" in again.stderr and "Traceback" not in again.stderr
    short = run(db, "user", "create", "bo@example.com", "--name", "Bo", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password of 8 to 256 characters" in short.stderr
    bad_role = run(
        db, "user", "create", "bo@example.com", "--name", "Bo", "--role", "dean", "--password-stdin"
    )
    assert bad_role.returncode == 2 and "choose one of student, instructor, admin" in bad_role.stderr

    demoted = run(db, "user", "role", "ADA@example.com", "student")
    assert demoted.returncode == 0 and "Ada <ada@example.com>: instructor -> student" in demoted.stdout
    user = accounts.authenticate(factory, "ada@example.com", "long-password")
    assert user is not None and user.role == Role.STUDENT
    nobody = run(db, "user", "role", "nobody@example.com", "admin")
    assert nobody.returncode == 2 and "no account has the email" in nobody.stderr
