"""Shared parts of the ``tenure`` command: consoles, options, errors, JSON, progress.

The command modules (``tenure.cli`` and the ``_cli_*`` modules it registers)
import these, so every command renders errors, JSON and progress the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from tenure.errors import ConfigError, TenureError

__all__ = [
    "JsonOption",
    "ProjectOption",
    "T",
    "err",
    "errors",
    "out",
    "print_json",
    "progress",
    "project",
    "set_debug",
    "to_jsonable",
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project directory (default: current directory).",
        envvar="TENURE_PROJECT",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

_state = {"debug": False}


def set_debug(on: bool) -> None:
    _state["debug"] = on


T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def _fail(error: BaseException) -> None:
    if _state["debug"]:
        err.print_exception()
    if isinstance(error, ConfigError):
        err.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    else:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    hint = getattr(error, "hint", None)
    if hint:
        err.print(f"[dim]hint:[/] {hint}", highlight=False)
    if not isinstance(error, TenureError) and not _state["debug"]:
        err.print("[dim]run with --debug for the traceback[/]")


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except TenureError as error:
        _fail(error)
        raise typer.Exit(1) from None
    except Exception as error:  # an unexpected error still gets one clear line
        _fail(error)
        raise typer.Exit(1) from None


def project(path: Path | None) -> Any:
    from tenure.project import Project

    return Project.open(path or Path.cwd())


def progress() -> tuple[Progress, Callable[[str, int, int | None], None]]:
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def advance(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(Path(label).name, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return bar, advance
