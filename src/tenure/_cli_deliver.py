"""``tenure worker`` and ``tenure deliveries …``: the deliver stage from the command line.

A thin shell over :mod:`tenure.deliver`; ``tenure.cli`` registers ``worker``
as a top-level command and ``deliveries_app`` as the ``deliveries`` group.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, err, errors, out, print_json
from tenure._cli_common import project as project_at

__all__ = ["deliveries_app", "worker"]

deliveries_app = typer.Typer(
    help="The outbox: what was sent, what waits for a retry, what is dead.",
    no_args_is_help=True,
)

IdArgument = Annotated[int, typer.Argument(help="Delivery id (see `tenure deliveries list`).")]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set, so the worker finishes its current send and stops."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
    worker_id: Annotated[
        str | None,
        typer.Option("--worker-id", help="Name in leases and the attempt log (default: host-pid)."),
    ] = None,
    poll: Annotated[
        float, typer.Option("--poll", min=0.01, help="Seconds to wait when nothing is due.")
    ] = 1.0,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Deliveries claimed at a time.")
    ] = 10,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Send queued actions (email, webhooks, in-app, CSM tasks) until stopped.

    SIGTERM or Ctrl-C stops after the current send. On SQLite run one worker;
    on PostgreSQL run as many as you like.
    """
    from tenure._tracing import configure_tracing
    from tenure.deliver import run_worker

    with errors(), project_at(project_dir) as opened, _stop_on_signals() as stop:
        configure_tracing(opened.config.serve)
        # from here on SIGTERM finishes the current send and stops (before it, it just ends)
        err.print(f"worker started on {opened.root}", highlight=False)
        counts = run_worker(
            opened,
            worker_id=worker_id,
            once=once,
            poll_seconds=poll,
            stop_event=stop,
            batch_size=batch,
        )
    if json_out:
        print_json(counts)
        return
    out.print(
        f"sent {counts.sent}, retried {counts.retried}, dead {counts.dead}, "
        f"cancelled {counts.cancelled}, resent {counts.resent}",
        highlight=False,
    )


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: queued, sending, sent, retry, dead, cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """List deliveries, newest first."""
    from tenure.deliver import list_deliveries

    with errors(), project_at(project_dir) as opened, opened.store.connect() as connection:
        found = list_deliveries(connection, status=status, limit=limit)
    if json_out:
        print_json(found)
        return
    table = Table("id", "channel", "recipient", "status", "attempts", "resends", "next", "error")
    for d in found:
        table.add_row(
            str(d.id),
            d.channel,
            d.recipient,
            d.status.value,
            str(d.attempts),
            str(d.resends),
            _when(d.not_before) if d.status.value in ("queued", "retry") else "—",
            (d.last_error or "")[:60],
        )
    out.print(table)
    if not found:
        out.print("no deliveries" + (f" with status {status}" if status else ""))


@deliveries_app.command("show")
def deliveries_show(
    outbox_id: IdArgument, project_dir: ProjectOption = None, json_out: JsonOption = False
) -> None:
    """Show one delivery, its payload and every attempt."""
    from tenure.deliver import delivery_attempts_of, get_delivery

    with errors(), project_at(project_dir) as opened, opened.store.connect() as connection:
        found = get_delivery(connection, outbox_id)
        attempts = delivery_attempts_of(connection, outbox_id)
    if json_out:
        print_json({"delivery": found, "attempts": attempts})
        return
    out.print(
        f"[bold]delivery {found.id}[/] {found.channel} → {found.recipient} ({found.status.value})",
        highlight=False,
    )
    out.print(f"key        {found.idempotency_key}", highlight=False)
    out.print(f"account    {found.account_id}  decision {found.decision_id or '—'}")
    out.print(f"created    {_when(found.created_at)}  sent {_when(found.sent_at)}")
    out.print(f"attempts   {found.attempts}  resends {found.resends}")
    if found.last_error:
        out.print(f"error      {found.last_error}", markup=False, highlight=False)
    table = Table("#", "worker", "started", "finished", "outcome", "detail", title="attempts")
    for a in attempts:
        table.add_row(
            str(a.attempt),
            a.worker,
            _when(a.started_at),
            _when(a.finished_at),
            a.outcome,
            a.detail or "",
        )
    out.print(table)


@deliveries_app.command("retry")
def deliveries_retry(
    outbox_id: IdArgument, project_dir: ProjectOption = None, json_out: JsonOption = False
) -> None:
    """Queue a dead delivery again with a fresh set of attempts."""
    from tenure.deliver import retry_dead

    with errors(), project_at(project_dir) as opened, opened.store.begin() as connection:
        queued = retry_dead(connection, outbox_id, opened.clock())
    if json_out:
        print_json(queued)
        return
    out.print(
        f"delivery {queued.id} is queued again (a running `tenure worker` sends it)",
        highlight=False,
    )
