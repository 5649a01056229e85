"""``tenure models …``: the model registry from the command line.

A thin shell over :mod:`tenure.models.registry`, registered on the main app by
``tenure.cli``; consoles, options, errors and JSON come from ``_cli_common``.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json
from tenure._cli_common import project as project_at

__all__ = ["models_app"]

models_app = typer.Typer(
    help="The model registry: versions, promotion to shadow and production, rollback.",
    no_args_is_help=True,
)

ActorOption = Annotated[
    str | None,
    typer.Option(help="Who makes the change (kept in the audit log; default: the OS user)."),
]
NameArgument = Annotated[str, typer.Argument(help="Model name, e.g. churn.")]
VersionArgument = Annotated[int, typer.Argument(help="Version number (see `tenure models list`).")]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return "cli"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def _metrics(metrics: dict[str, Any]) -> str:
    shown = []
    for key, value in sorted(metrics.items()):
        shown.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(shown)


def _print_version(version: Any) -> None:
    out.print(
        f"[bold]{version.name} v{version.version}[/] ({version.status.value})", highlight=False
    )
    out.print(f"created    {_when(version.created_at)} by {version.created_by}")
    if version.training_start or version.training_end:
        out.print(
            f"training   {_when(version.training_start)} → {_when(version.training_end)}",
            highlight=False,
        )
    out.print(
        f"artifact   {version.artifact_path} ({version.artifact_bytes:,} bytes, "
        f"sha256 {version.artifact_hash})",
        highlight=False,
    )
    if version.promoted_at:
        out.print(f"promoted   {_when(version.promoted_at)}")
    if version.retired_at:
        out.print(f"retired    {_when(version.retired_at)}")
    if version.description:
        out.print(f"about      {version.description}", markup=False, highlight=False)
    for title, values in (
        ("metrics", version.metrics),
        ("params", version.params),
        ("features", version.feature_hashes),
    ):
        if values:
            table = Table("key", "value", title=title, title_justify="left")
            for key, value in sorted(values.items()):
                table.add_row(key, str(value))
            out.print(table)


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Option(help="Only versions of this model.")] = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """List registered model versions and their status."""
    from tenure.models.registry import registry_for

    with errors(), project_at(project_dir) as opened:
        versions = registry_for(opened).list(name)
    if json_out:
        print_json(versions)
        return
    table = Table("name", "version", "status", "created", "by", "sha256", "metrics")
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            v.status.value,
            _when(v.created_at),
            v.created_by,
            v.artifact_hash[:12],
            _metrics(v.metrics),
        )
    out.print(table)
    if not versions:
        out.print("no model versions registered" + (f" for {name!r}" if name else ""))


@models_app.command("show")
def models_show(
    name: NameArgument,
    version: VersionArgument,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one model version: artifact, training window, metrics and history."""
    from tenure.models.registry import registry_for

    with errors(), project_at(project_dir) as opened:
        registry = registry_for(opened)
        found = registry.get(name, version)
        history = registry.history(name, version)
    if json_out:
        print_json({"version": found, "history": history})
        return
    _print_version(found)
    table = Table("at", "action", "from", "to", "actor", title="history", title_justify="left")
    for event in history:
        table.add_row(
            _when(event.at),
            event.action,
            event.from_status.value if event.from_status else "—",
            event.to_status.value,
            event.actor,
        )
    out.print(table)


@models_app.command("promote")
def models_promote(
    name: NameArgument,
    version: VersionArgument,
    to: Annotated[str, typer.Option(help="shadow or production.")] = "production",
    actor: ActorOption = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Promote a version to shadow or production (production retires the one serving)."""
    from tenure.models.registry import registry_for

    with errors(), project_at(project_dir) as opened:
        registry = registry_for(opened)
        replaced = registry.production(name)
        promoted = registry.promote(name, version, to=to, actor=_actor(actor))
    if json_out:
        print_json(promoted)
        return
    line = f"{promoted.name} v{promoted.version} is now {promoted.status.value}"
    if promoted.status.value == "production" and replaced is not None:
        line += f"; v{replaced.version} retired (`tenure models rollback {name}` restores it)"
    out.print(line, highlight=False)


@models_app.command("retire")
def models_retire(
    name: NameArgument,
    version: VersionArgument,
    actor: ActorOption = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Retire a version (retiring the production version leaves none serving)."""
    from tenure.models.registry import registry_for

    with errors(), project_at(project_dir) as opened:
        retired = registry_for(opened).retire(name, version, actor=_actor(actor))
    if json_out:
        print_json(retired)
        return
    out.print(f"{retired.name} v{retired.version} is now retired", highlight=False)


@models_app.command("rollback")
def models_rollback(
    name: NameArgument,
    actor: ActorOption = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Retire the production version and restore the one it replaced."""
    from tenure.models.registry import registry_for

    with errors(), project_at(project_dir) as opened:
        registry = registry_for(opened)
        retired = registry.production(name)
        restored = registry.rollback(name, actor=_actor(actor))
    if json_out:
        print_json(restored)
        return
    was = f"v{retired.version} retired; " if retired is not None else ""
    out.print(f"{was}{restored.name} v{restored.version} is in production again", highlight=False)
