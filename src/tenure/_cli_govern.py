"""``tenure erasures``: the batch side of erasure requests, from the command line.

Thin shells over :mod:`tenure.govern.lake_erasure` and the store's requests;
``tenure.cli`` registers the group and runs :func:`apply_pending` before
``tenure identity stitch``.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json, project
from tenure.errors import TenureError

if TYPE_CHECKING:
    from tenure.govern.lake_erasure import LakeErasureReport
    from tenure.project import Project

__all__ = ["apply_pending", "erasures_app", "report_lines"]

erasures_app = typer.Typer(
    help="Erasure requests: apply them to the lake and the warehouse, and list them.",
    no_args_is_help=True,
)

ActorOption = Annotated[str | None, typer.Option(help="Who applies them (audit log).")]


def apply_pending(opened: Project, actor: str | None = None) -> LakeErasureReport:
    """Apply pending erasure requests (the step every batch run starts with)."""
    from tenure.govern.lake_erasure import apply_erasures

    return apply_erasures(opened, actor=actor or getpass.getuser())


def report_lines(report: LakeErasureReport) -> list[str]:
    if not report.requests:
        return ["erasures: none pending"]
    tables = ", ".join(f"{k} {v:,}" for k, v in sorted(report.warehouse_rows_removed.items()))
    return [
        f"[bold]erasures[/] applied {len(report.requests):,} requests "
        f"({report.identifiers:,} identifiers, {report.profiles:,} profiles) "
        f"in {report.seconds:.1f} s",
        f"  lake: {report.events_removed:,} events removed and {report.events_redacted:,} "
        f"pseudonymized in {report.event_files:,} files; {report.snapshot_rows_removed:,} "
        f"export rows in {report.snapshot_files:,} snapshots; "
        f"{report.feature_rows_removed:,} feature rows",
        f"  warehouse rows removed: {tables or 'none'}",
        f"  store: {report.quarantine_removed:,} quarantined records removed, "
        f"{report.inbox_changed:,} loaded inbox rows removed or pseudonymized",
    ]


@erasures_app.command("apply")
def erasures_apply(
    project_dir: ProjectOption = None, actor: ActorOption = None, json_out: JsonOption = False
) -> None:
    """Remove the people of pending erasure requests from the lake and the warehouse."""
    with errors(), project(project_dir) as opened:
        report = apply_pending(opened, actor)
    if json_out:
        print_json(report)
        return
    for line in report_lines(report):
        out.print(line, highlight=False)


@erasures_app.command("list")
def erasures_list(
    status: Annotated[str, typer.Option(help="pending, done or all.")] = "all",
    limit: Annotated[int, typer.Option(help="At most this many requests.")] = 100,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Erasure requests, oldest first, with the state of their lake part."""
    from tenure.store._erasures import LakeStatus, list_erasure_requests

    with errors(), project(project_dir) as opened:
        try:
            wanted = None if status == "all" else LakeStatus(status)
        except ValueError:
            raise TenureError(f"--status {status!r} is not one of: pending, done, all") from None
        with opened.store.connect() as connection:
            requests = list_erasure_requests(connection, status=wanted, limit=limit)
    if json_out:  # identifiers stay out of the output: the requests hold them only for the step
        print_json(
            [
                {
                    "id": r.id,
                    "requested_at": r.requested_at,
                    "requested_by": r.requested_by,
                    "lake": r.lake_status.value,
                    "lake_done_at": r.lake_done_at,
                    "result": r.result,
                }
                for r in requests
            ]
        )
        return
    table = Table("id", "requested", "by", "lake", "done", "events removed")
    for r in requests:
        table.add_row(
            r.id,
            f"{r.requested_at:%Y-%m-%d %H:%M}",
            r.requested_by,
            r.lake_status.value,
            "" if r.lake_done_at is None else f"{r.lake_done_at:%Y-%m-%d %H:%M}",
            "" if not r.result else f"{r.result.get('events_removed', 0):,}",
        )
    out.print(table)
    if not requests:
        out.print("no erasure requests match")
