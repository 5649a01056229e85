"""``tenure serve`` and ``tenure keys …``: the HTTP API and the keys that open it.

``tenure.cli`` registers ``serve`` as a top-level command and ``keys_app`` as
the ``keys`` group.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, err, errors, out, print_json
from tenure._cli_common import project as project_at
from tenure.govern.keys import Role

__all__ = ["keys_app", "serve"]

keys_app = typer.Typer(
    help="API keys: create (shown once), list, rotate, revoke.", no_args_is_help=True
)

_CLI_ACTOR = "cli"
KeyArgument = Annotated[str, typer.Argument(help="Key id (see `tenure keys list`).")]


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (serve.port).")] = None,
    no_loader: Annotated[
        bool,
        typer.Option("--no-loader", help="Do not move the inbox to the lake in the background."),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Server processes (use the cores; best on PostgreSQL)."
        ),
    ] = 1,
    project_dir: ProjectOption = None,
) -> None:
    """Run the HTTP API: Segment-compatible collection, read and act, metrics.

    Acknowledged events are loaded into the lake in the background every
    serve.loader_interval (by one process at a time). Stop with Ctrl-C or SIGTERM.
    """
    import uvicorn

    from tenure.api import create_app
    from tenure.api._workers import serve_workers

    with errors(), project_at(project_dir) as opened:
        settings = opened.config.serve
        bind_host = host or settings.host
        bind_port = settings.port if port is None else port
        where = f"http://{bind_host}:{bind_port}"
        err.print(f"tenure serving {opened.root} on {where}", highlight=False)
        options: dict[str, Any] = {"log_level": "warning", "access_log": False}
        if workers == 1:
            app = create_app(opened, loader=False if no_loader else None, server_process=True)
            uvicorn.run(app, host=bind_host, port=bind_port, **options)
            return
        serve_workers(
            opened.root,
            host=bind_host,
            port=bind_port,
            workers=workers,
            loader=False if no_loader else None,
        )


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    name: Annotated[str, typer.Option("--name", help="Who or what uses it.")],
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", min=1, help="Expire after this many days.")
    ] = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a key. Its secret is printed this once; only a hash is stored."""
    from tenure.govern.keys import create_key

    with errors(), project_at(project_dir) as opened:
        at = opened.clock()
        expires = at + dt.timedelta(days=expires_days) if expires_days else None
        with opened.store.begin() as connection:
            new = create_key(
                connection, name=name, role=role, at=at, actor=_CLI_ACTOR, expires_at=expires
            )
    if json_out:
        print_json(
            {"id": new.key.id, "role": new.key.role, "name": new.key.name, "key": new.secret}
        )
        return
    out.print(new.secret, highlight=False)
    err.print(
        f"key {new.key.id} ({new.key.role.value}, {new.key.name}): copy it now, "
        "it is not shown again",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """The keys, their roles and state (never their secrets)."""
    from tenure.govern.keys import list_keys

    with errors(), project_at(project_dir) as opened:
        with opened.store.connect() as connection:
            keys = list_keys(connection)
        at = opened.clock()
    if json_out:
        print_json([{**_key_dict(k), "active": k.active(at)} for k in keys])
        return
    table = Table("id", "role", "name", "created", "state", "last used")
    for key in keys:
        if key.revoked_at is not None:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        elif key.expires_at is not None:
            state = (
                "expires " if key.active(at) else "expired "
            ) + f"{key.expires_at:%Y-%m-%d %H:%M}"
        else:
            state = "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        table.add_row(key.id, key.role.value, key.name, f"{key.created_at:%Y-%m-%d}", state, used)
    out.print(table)


def _key_dict(key: object) -> dict[str, object]:
    import dataclasses

    return dataclasses.asdict(key)  # type: ignore[call-overload, no-any-return]


@keys_app.command("revoke")
def keys_revoke(key_id: KeyArgument, project_dir: ProjectOption = None) -> None:
    """End a key now."""
    from tenure.govern.keys import revoke_key

    with errors(), project_at(project_dir) as opened, opened.store.begin() as connection:
        revoke_key(connection, key_id, at=opened.clock(), actor=_CLI_ACTOR)
    out.print(f"key {key_id} revoked", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: KeyArgument,
    grace_hours: Annotated[
        float, typer.Option("--grace-hours", min=0, help="How long the old key keeps working.")
    ] = 24.0,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Replace a key: a new one with the same role; the old one works for the grace period."""
    from tenure.govern.keys import rotate_key

    with errors(), project_at(project_dir) as opened, opened.store.begin() as connection:
        new = rotate_key(
            connection,
            key_id,
            at=opened.clock(),
            actor=_CLI_ACTOR,
            grace=dt.timedelta(hours=grace_hours),
        )
    if json_out:
        print_json({"id": new.key.id, "replaces": key_id, "key": new.secret})
        return
    out.print(new.secret, highlight=False)
    err.print(
        f"key {new.key.id} replaces {key_id}, which stops working in {grace_hours:g} h",
        highlight=False,
    )
