"""`grader lti`: the tool's signing keys (list, rotate, retire) and the registered platforms
(list, add), for operators who work from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from grader.cli.app import CliError, State, app, handled, out
from grader.cli.queue import _factory

lti_app = typer.Typer(no_args_is_help=True, help="LTI 1.3: the tool's keys and the registered platforms.")
key_app = typer.Typer(no_args_is_help=True, help="The tool's signing keys (published at /lti/jwks).")
platform_app = typer.Typer(no_args_is_help=True, help="The LMSs that may launch the tool.")
lti_app.add_typer(key_app, name="key")
lti_app.add_typer(platform_app, name="platform")
app.add_typer(lti_app, name="lti")


@key_app.command("list")
@handled
def key_list(ctx: typer.Context) -> None:
    """The kept keys: the one that signs, and the older ones still published."""
    from grader.lti.keys import KeyStore, KeyStoreError

    state: State = ctx.obj
    store = KeyStore(state.settings.data_dir)
    try:
        current = store.current_kid()
        kids = store.kids()
    except KeyStoreError as exc:
        raise CliError(str(exc), 1) from None
    if not kids:
        out.print("no LTI key yet: one is made on first use, or now with `grader lti key rotate`")
        return
    for kid in [k for k in kids if k == current] + [k for k in kids if k != current]:
        out.print(f"{kid}  {'signing (published)' if kid == current else 'published, not signing'}")


@key_app.command("rotate")
@handled
def key_rotate(ctx: typer.Context) -> None:
    """Make a new key and sign with it from now on; the old keys stay published until retired."""
    from grader.lti.keys import KeyStore, KeyStoreError

    state: State = ctx.obj
    store = KeyStore(state.settings.data_dir)
    try:
        old = store.current_kid()
        key = store.rotate()
    except (KeyStoreError, OSError) as exc:
        raise CliError(f"the key could not be rotated: {exc}", 1) from None
    out.print(f"signing with {key.kid} now")
    if old:
        out.print(
            f"{old} stays published: retire it (`grader lti key retire {old}`) once platforms had time "
            "to fetch the new key set (a day is plenty)"
        )


@key_app.command("retire")
@handled
def key_retire(
    ctx: typer.Context, kid: Annotated[str, typer.Argument(help="The key id to stop publishing")]
) -> None:
    """Stop publishing (and delete) an old key. The signing key cannot be retired."""
    from grader.lti.keys import KeyStore, KeyStoreError

    state: State = ctx.obj
    try:
        KeyStore(state.settings.data_dir).retire(kid)
    except KeyStoreError as exc:
        raise CliError(str(exc), 2) from None
    out.print(f"retired {kid}: it is no longer published")


@platform_app.command("list")
@handled
def platform_list(ctx: typer.Context) -> None:
    """The registered platforms."""
    from grader.lti import registry

    state: State = ctx.obj
    rows = registry.platforms(_factory(state))
    if not rows:
        out.print("no platform is registered")
    for row in rows:
        status = "enabled" if row.enabled else "disabled"
        out.print(
            f"{row.id}  {row.name}  iss={row.issuer}  client_id={row.client_id}  "
            f"deployments={','.join(row.deployment_ids)}  {status}"
        )


@platform_app.command("add")
@handled
def platform_add(
    ctx: typer.Context,
    issuer: Annotated[str, typer.Option(help="The platform's issuer (iss)")],
    client_id: Annotated[str, typer.Option(help="The client id it gave this tool")],
    deployment_id: Annotated[list[str], typer.Option(help="A deployment id (repeat for several)")],
    auth_login_url: Annotated[str, typer.Option(help="Its OIDC authorization endpoint")],
    auth_token_url: Annotated[str, typer.Option(help="Its OAuth 2 token endpoint")],
    key_set_url: Annotated[str, typer.Option(help="Its public key set (JWKS) URL")],
    name: Annotated[str, typer.Option(help="A name for this page and the logs")] = "",
    auth_audience: Annotated[str, typer.Option(help="The token audience, if not the token URL")] = "",
) -> None:
    """Register a platform (the same checks as the instructors' LTI page)."""
    from grader.lti import registry

    state: State = ctx.obj
    form = registry.PlatformForm(
        name=name,
        issuer=issuer,
        client_id=client_id,
        deployment_ids="\n".join(deployment_id),
        auth_login_url=auth_login_url,
        auth_token_url=auth_token_url,
        key_set_url=key_set_url,
        auth_audience=auth_audience,
    )
    try:
        row = registry.add(_factory(state), form)
    except registry.RegistrationError as exc:
        raise CliError("; ".join(f"{k}: {v}" for k, v in exc.problems.items()), 2) from None
    out.print(f"registered {row.name} (id {row.id}): {row.issuer} client {row.client_id}")
