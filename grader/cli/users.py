"""`grader user`: accounts from the command line (the first instructor of a new server, a role
changed without the web page)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from grader.cli.app import CliError, State, app, handled, out
from grader.cli.queue import _factory

user_app = typer.Typer(no_args_is_help=True, help="Create accounts and change their roles.")
app.add_typer(user_app, name="user")
ROLES = ("student", "instructor", "admin")


def _role(value: str) -> str:
    if value not in ROLES:
        raise CliError(f"unknown role {value!r}: choose one of {', '.join(ROLES)}", 2)
    return value


@user_app.command("create")
@handled
def create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The login email")],
    name: Annotated[str, typer.Option(help="Display name (unique; a number is added if taken)")],
    role: Annotated[str, typer.Option(help="student, instructor or admin")] = "student",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts)")
    ] = False,
) -> None:
    """Create an account that logs in with EMAIL; asks for its password unless --password-stdin."""
    from grader.store import Role
    from web.accounts import AccountError, create_user

    state: State = ctx.obj
    chosen = Role(_role(role))
    factory = _factory(state)  # a database that is not ready is said before any password is asked
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(factory, email, password, name, role=chosen)
    except AccountError as exc:
        raise CliError(str(exc), 2) from None
    out.print(f"created {user.role} {user.name} <{user.email}> (id {user.id})")


@user_app.command("role")
@handled
def set_role(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email")],
    role: Annotated[str, typer.Argument(help="student, instructor or admin")],
) -> None:
    """Give the account with EMAIL a new role (it applies at its next request)."""
    from sqlalchemy import select

    from grader.store import Role, User, transaction
    from web.accounts import normalise_email

    state: State = ctx.obj
    chosen = Role(_role(role))
    with transaction(_factory(state)) as session:
        user = session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            raise CliError(f"no account has the email {email!r}", 2)
        before, user.role = user.role, chosen
        out.print(f"{user.name} <{user.email}>: {before} -> {chosen}")
