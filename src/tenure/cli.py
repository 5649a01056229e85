"""The ``tenure`` command: a thin shell over the library.

Every command here calls a library function that does the work; this module
only parses arguments, shows progress and renders results (a Rich table or,
with ``--json``, a JSON document). Errors are one line plus a hint; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tenure import _cli_decide, _cli_pipeline
from tenure._cli_common import (
    JsonOption,
    ProjectOption,
    T,
    errors,
    out,
    print_json,
    progress,
    set_debug,
    to_jsonable,
)
from tenure._cli_common import project as project_at
from tenure._cli_decide import journeys_app, policies_app, review_app, templates_app
from tenure._cli_deliver import deliveries_app, worker
from tenure._cli_govern import apply_pending, erasures_app, report_lines
from tenure._cli_measure import loop, report_app
from tenure._cli_models import models_app
from tenure._cli_serve import keys_app, serve
from tenure._gc import use_throughput_thresholds
from tenure.errors import TenureError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tenure",
    help="Customer lifecycle intelligence: ingest, identity, scores, actions, measurement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
quarantine_app = typer.Typer(
    help="Records that could not be loaded, and why.", no_args_is_help=True
)
db_app = typer.Typer(help="The operational store's schema.", no_args_is_help=True)
identity_app = typer.Typer(
    help="Identity stitching: profiles, accounts, merges.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")
app.add_typer(identity_app, name="identity")
app.add_typer(models_app, name="models")
app.add_typer(review_app, name="review")
app.add_typer(policies_app, name="policies")
app.add_typer(journeys_app, name="journeys")
app.add_typer(templates_app, name="templates")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(keys_app, name="keys")
app.add_typer(report_app, name="report")
app.add_typer(erasures_app, name="erasures")


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    set_debug(debug or bool(os.environ.get("TENURE_DEBUG")))


# --------------------------------------------------------------------- init
@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project directory to create.")] = Path("."),
    examples: Annotated[
        bool, typer.Option(help="Write an example policy and its templates.")
    ] = True,
    json_out: JsonOption = False,
) -> None:
    """Create a project: tenure.yaml with commented defaults, the lake, and a migrated store."""
    from tenure.project import init_project

    with errors():
        project = init_project(directory, examples=examples)
        info = {
            "project": str(project.root),
            "config": str(project.config_path),
            "store": project.store_url,
            "lake": str(project.lake.root),
        }
        project.close()
    if json_out:
        print_json(info)
        return
    out.print(f"[green]created[/] {info['config']}")
    out.print(f"store  {info['store']}\nlake   {info['lake']}")


@db_app.command("upgrade")
def db_upgrade(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """Migrate the operational store to the newest schema."""
    from tenure.store import current_revision, upgrade

    with errors():
        project = project_at(project_dir)
        upgrade(project.store)
        revision = current_revision(project.store)
        project.close()
    if json_out:
        print_json({"revision": revision})
        return
    out.print(f"store at revision {revision}")


# ------------------------------------------------------------------- ingest
def _ingest_table(report: Any) -> Table:
    table = Table(title=f"ingest run {report.run_id}")
    for column in ("input", "format", "loaded", "duplicate", "quarantined"):
        table.add_column(column, justify="right" if column not in ("input", "format") else "left")
    for item in report.inputs:
        table.add_row(
            Path(item.path).name,
            item.format,
            f"{item.loaded:,}",
            f"{item.duplicates:,}",
            f"{item.quarantined:,}",
        )
    table.add_row(
        "[bold]total[/]",
        "",
        f"[bold]{report.loaded:,}[/]",
        f"[bold]{report.duplicates:,}[/]",
        f"[bold]{report.quarantined:,}[/]",
    )
    return table


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories.")] = None,
    mapping: Annotated[
        str | None,
        typer.Option(help="Mapping for CSV/Parquet exports (built-in name or YAML path)."),
    ] = None,
    list_mappings: Annotated[
        bool, typer.Option("--list-mappings", help="List the built-in mappings and exit.")
    ] = False,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Load Segment JSON/JSONL/Parquet events and CSV/Parquet exports into the lake."""
    from tenure.collect import builtin_mappings
    from tenure.collect import ingest as run_ingest

    with errors():
        if list_mappings:
            mappings = builtin_mappings()
            if json_out:
                print_json(
                    {
                        name: {"source": m.source, "entity": m.entity, "detect": list(m.detect)}
                        for name, m in mappings.items()
                    }
                )
                return
            table = Table("mapping", "source", "entity", "detected by columns")
            for name, m in sorted(mappings.items()):
                table.add_row(name, m.source, m.entity, ", ".join(m.detect))
            out.print(table)
            return
        if not paths:
            raise TenureError("nothing to ingest", hint="tenure ingest FILE_OR_DIR …")
        project = project_at(project_dir)
        bar, advance = progress()
        with bar:
            report = run_ingest(project, paths, mapping=mapping, progress=advance)
        project.close()
    if json_out:
        print_json(_ingest_json(report))
        return
    out.print(_ingest_table(report))
    out.print(
        f"loaded {report.loaded:,} · duplicate {report.duplicates:,} · "
        f"quarantined {report.quarantined:,}"
        + (f" · suppressed (erased people) {report.suppressed:,}" if report.suppressed else "")
    )
    if report.quarantined:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.quarantined_by_reason.items()))
        out.print(f"[yellow]quarantined by reason:[/] {reasons} — see `tenure quarantine list`")


def _ingest_json(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(report)
    data.update(
        loaded=report.loaded,
        duplicates=report.duplicates,
        quarantined=report.quarantined,
        suppressed=report.suppressed,
    )
    return data


# --------------------------------------------------------------- quarantine
@quarantine_app.command("list")
def quarantine_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    run: Annotated[str | None, typer.Option(help="Only this ingest run.")] = None,
    status: Annotated[
        str, typer.Option(help="open, loaded, requarantined, discarded or all.")
    ] = "open",
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 50,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """List quarantined records with their reasons."""
    from tenure.store import QuarantineStatus, list_quarantined

    with errors():
        wanted = None if status == "all" else _status(status, QuarantineStatus)
        project = project_at(project_dir)
        with project.store.connect() as connection:
            records = list_quarantined(
                connection, status=wanted, reason_code=reason, run_id=run, limit=limit
            )
        project.close()
    if json_out:
        print_json(records)
        return
    table = Table("id", "file", "record", "reason code", "reason", "status")
    for r in records:
        table.add_row(
            str(r.id),
            Path(r.source_file).name,
            str(r.record_number),
            r.reason_code,
            r.reason,
            r.status.value,
        )
    out.print(table)
    if not records:
        out.print("no quarantined records match")


def _status(value: str, enum_type: type[T]) -> T:
    try:
        return enum_type(value)  # type: ignore[call-arg]
    except ValueError:
        options = ", ".join(m.value for m in enum_type)  # type: ignore[attr-defined]
        raise TenureError(f"--status {value!r} is not one of: {options}, all") from None


@quarantine_app.command("show")
def quarantine_show(
    record_id: Annotated[int, typer.Argument(help="Record id from `tenure quarantine list`.")],
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one quarantined record: where it came from, why, and the raw text."""
    from tenure.store import get_quarantined

    with errors():
        project = project_at(project_dir)
        with project.store.connect() as connection:
            record = get_quarantined(connection, record_id)
        project.close()
    if json_out:
        print_json(record)
        return
    out.print(f"[bold]record {record.id}[/] ({record.status.value})")
    out.print(f"file    {record.source_file}, record {record.record_number}")
    out.print(
        f"source  {record.source}   run {record.run_id}   at {record.created_at:%Y-%m-%d %H:%M:%S}"
    )
    out.print(f"reason  [red]{record.reason_code}[/]: {record.reason}", highlight=False)
    out.print("raw:")
    out.print(record.raw, markup=False, highlight=False)


@quarantine_app.command("retry")
def quarantine_retry(
    record_ids: Annotated[
        list[int] | None, typer.Argument(help="Record ids (default: all open).")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Only open records with this reason code.")
    ] = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Validate quarantined records again (after fixing config, mapping or catalog)."""
    from tenure.collect import retry_quarantined
    from tenure.store import QuarantineStatus, get_quarantined, list_quarantined

    with errors():
        project = project_at(project_dir)
        with project.store.connect() as connection:
            if record_ids:
                records = [get_quarantined(connection, i) for i in record_ids]
                closed = [r.id for r in records if r.status is not QuarantineStatus.OPEN]
                if closed:
                    raise TenureError(
                        f"records {closed} are not open; only open records are retried"
                    )
            else:
                records = list_quarantined(connection, reason_code=reason, limit=None)
        report = retry_quarantined(project, records)
        project.close()
    if json_out:
        print_json(_ingest_json(report))
        return
    out.print(
        f"retried {len(records):,}: loaded {report.loaded:,} · duplicate {report.duplicates:,}"
        f" · quarantined again {report.quarantined:,}"
    )


# ------------------------------------------------------------------ status
@app.command()
def status(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """Row counts per table, the last ingest, and where the stores are."""
    from tenure.status import project_status

    with errors():
        project = project_at(project_dir)
        info = project_status(project)
        project.close()
    if json_out:
        print_json(info)
        return
    out.print(f"[bold]project[/] {info.project}")
    out.print(f"store      {info.store_url} (revision {info.store_revision})")
    out.print(f"warehouse  {info.warehouse}")
    out.print(f"lake       {info.lake} ({info.lake_events:,} events in {info.lake_files:,} files)")
    if info.last_ingest is None:
        out.print("last ingest: never")
    else:
        run = info.last_ingest
        out.print(
            f"last ingest {run.id} at {run.started_at:%Y-%m-%d %H:%M:%S} UTC: {run.status}, "
            f"loaded {run.loaded:,}, duplicate {run.duplicates:,}, "
            f"quarantined {run.quarantined:,}"
        )
    table = Table("store", "table", "rows")
    for name, rows in info.warehouse_tables.items():
        table.add_row("warehouse", name, f"{rows:,}")
    for name, rows in info.store_tables.items():
        table.add_row("operational", name, f"{rows:,}")
    out.print(table)
    if info.open_quarantine:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(info.open_quarantine.items()))
        out.print(f"[yellow]open quarantine:[/] {reasons}")


# ---------------------------------------------------------------- identity
@identity_app.command("stitch")
def identity_stitch(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """Apply pending erasures, then merge identities of newly ingested events into profiles."""
    from tenure.identity import stitch

    with errors():
        project = project_at(project_dir)
        # the first warehouse step of a nightly run: erasures before anything is derived
        erasures = apply_pending(project)
        report = stitch(project)
        project.close()
    if json_out:
        print_json({**dataclasses.asdict(report), "erasures": erasures})
        return
    for line in report_lines(erasures):
        out.print(line, highlight=False)
    for field in dataclasses.fields(report):
        out.print(f"{field.name.replace('_', ' '):<22} {getattr(report, field.name)}")


@identity_app.command("split")
def identity_split(
    link_id: Annotated[str, typer.Argument(help="The link to undo (see `tenure profile ID`).")],
    reason: Annotated[str, typer.Option(help="Why the merge was wrong (kept in the audit log).")],
    actor: Annotated[str, typer.Option(help="Who is splitting.")] = os.environ.get("USER", "cli"),
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Undo a wrong merge: re-partition the profile without that link."""
    from tenure.identity import split_link

    with errors():
        project = project_at(project_dir)
        result = split_link(project, link_id, actor=actor, reason=reason)
        project.close()
    if json_out:
        print_json(result)
        return
    out.print(
        f"split {result.entity} link {result.link_id}: {result.profile_before} → "
        f"{', '.join(result.profiles_after)} (recorded in the audit log)"
    )


@app.command()
def profile(
    identifier: Annotated[
        str, typer.Argument(help="Profile id, user id, email, anonymous id or type:value.")
    ],
    events: Annotated[int, typer.Option(help="How many recent events to show.")] = 10,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """One customer: identities, traits, account, graph neighbours and recent events."""
    from tenure.identity import find_profile

    with errors():
        project = project_at(project_dir)
        view = find_profile(project.warehouse, identifier, recent=events)
        project.close()
    if json_out:
        print_json(view)
        return
    from tenure._render import render_profile

    render_profile(out, view)


# ---------------------------------------------------------------- simulate
def _simulation_lines(report: Any) -> list[str]:
    return [
        f"{report.accounts:,} accounts × {report.months} months from {report.start} "
        f"(seed {report.seed}): {report.events:,} events, {report.invoices:,} invoices, "
        f"{report.tickets:,} tickets, {report.opportunities:,} opportunities",
        f"monthly logo churn {report.monthly_logo_churn:.1%} · NRR {report.nrr:.0%} "
        f"(last {report.nrr_months} months) · win rate {report.win_rate:.0%} · "
        f"MRR {report.mrr_start:,.0f} → {report.mrr_end:,.0f}",
    ]


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Argument(help="Where to write events, exports and truth.")],
    accounts: Annotated[int | None, typer.Option(help="Customer accounts (default 2,000).")] = None,
    months: Annotated[int | None, typer.Option(help="Months simulated (default 24).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same files.")] = 42,
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding any simulation parameter.")
    ] = None,
    event_format: Annotated[
        str | None, typer.Option("--format", help="Events as parquet (default) or jsonl.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Simulate a SaaS company with known ground truth (events, exports, truth/)."""
    from tenure.simulate import load_simulation_config
    from tenure.simulate import simulate as run_simulation

    overrides: dict[str, Any] = {}
    for key, value in (("accounts", accounts), ("months", months), ("format", event_format)):
        if value is not None:
            overrides[key] = value
    with errors():
        settings = load_simulation_config(config, **overrides)
        bar, advance = progress()
        with bar:
            report = run_simulation(
                out_dir,
                settings,
                seed=seed,
                progress=lambda done, total: advance("simulating months", done, total),
            )
    if json_out:
        print_json(report)
        return
    for line in _simulation_lines(report):
        out.print(line)
    out.print(
        f"ingest with a clock at or after {report.end}: "
        f"tenure ingest {out_dir / 'events'} {out_dir / 'exports'} (never {out_dir / 'truth'})"
    )
    spend = out_dir / "finance" / "marketing_spend.csv"
    out.print(f"acquisition spend for CAC payback (measure.spend): {spend}", highlight=False)


# -------------------------------------------------------------------- demo
# ------------------------------------------------- features, build, train, score
app.command("features")(_cli_pipeline.features)
app.command("build")(_cli_pipeline.build)
app.command("train")(_cli_pipeline.train)
app.command("retrain")(_cli_pipeline.retrain)
app.command("score")(_cli_pipeline.score)
app.command("stages")(_cli_pipeline.stages)
app.command("decide")(_cli_decide.decide)
app.command("explain")(_cli_decide.explain)
app.command("worker")(worker)
app.command("serve")(serve)
app.command("loop")(loop)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to create the demo project.")] = Path(
        "tenure-demo"
    ),
    accounts: Annotated[int, typer.Option(help="Accounts of the simulated company.")] = 2000,
    months: Annotated[int, typer.Option(help="Months simulated.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 42,
    sample: Annotated[
        bool, typer.Option("--sample", help="Load the small bundled sample company instead.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Simulate a company, ingest it, stitch identities and report (or --sample)."""
    from tenure.demo import run_demo

    with errors():
        bar, advance = progress()
        with bar:
            result = run_demo(
                directory,
                accounts=accounts,
                months=months,
                seed=seed,
                sample=sample,
                progress=advance,
            )
    if json_out:
        print_json(result)
        return
    out.print(f"[bold green]demo project[/] {result.project}")
    if result.simulation is not None:
        for line in _simulation_lines(result.simulation):
            out.print(line)
    out.print(_ingest_table(result.ingest))
    out.print(
        f"identities: {result.stitch.profiles:,} profiles, {result.stitch.accounts:,} accounts, "
        f"{result.stitch.merges:,} merges, "
        f"{sum(result.stitch.refused.values()):,} links refused"
    )
    if result.training is not None and result.scoring is not None:
        metrics = result.training.validation
        out.print(
            f"churn model: out-of-time ROC-AUC {metrics.roc_auc:.3f}, "
            f"ECE {metrics.ece:.3f}, top-decile lift {metrics.top_decile_lift:.1f}; "
            f"{result.scoring.rows:,} customers scored"
        )
        out.print(_cli_pipeline.at_risk_table(result.at_risk))
    elif result.models_skipped:
        out.print(f"[yellow]models not trained:[/] {result.models_skipped}")
    if result.delivery is not None:
        _print_delivery(result.delivery)
    out.print(
        f"\nnext: [bold]tenure status -p {result.project}[/] · "
        f"[bold]tenure profile -p {result.project} {result.example_profile}[/] · "
        f"[bold]tenure quarantine list -p {result.project}[/] · "
        f"[bold]tenure serve -p {result.project}[/] (the HTTP API; keys: tenure keys create)"
    )


def _print_delivery(delivery: Any) -> None:
    report = delivery.decisions
    if report.already_decided:
        out.print(
            "\ndecisions: this cycle was decided in an earlier run; nothing new was queued",
            highlight=False,
        )
        return
    statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(report.by_status.items()))
    out.print(
        f"\ndecisions: {report.customers:,} customers, {statuses or 'no action'} "
        f"({report.seconds:.1f} s); delivered to the demo's local SMTP server and CRM sink: "
        f"{delivery.emails_received:,} emails, {delivery.tasks_received:,} CSM tasks, "
        f"{delivery.delivered.sent:,} sent in all",
        highlight=False,
    )
    journeys = delivery.journeys
    if journeys.entered or journeys.advanced:
        out.print(
            f"journeys: {journeys.entered:,} customers entered, {journeys.sent:,} messages "
            f"queued by their steps, {journeys.blocked:,} blocked by a guardrail "
            f"(`tenure journeys list`)",
            highlight=False,
        )
    if delivery.waiting_for_review or delivery.deferred:
        out.print(
            f"{delivery.waiting_for_review:,} wait for review (`tenure review list`), "
            f"{delivery.deferred:,} for quiet hours to end in the customer's time zone",
            highlight=False,
        )
    shown: dict[str, int] = {}
    if delivery.sent:
        out.print("[bold]sent[/] (a few per channel; `tenure explain DECISION` tells the rest):")
    for message in delivery.sent:
        if shown.get(message.channel, 0) >= 3:
            continue
        shown[message.channel] = shown.get(message.channel, 0) + 1
        out.print(
            f"  {message.channel:<8} → {message.to}  “{message.summary}”  [{message.rule}]\n"
            f"           {message.why}",
            markup=False,
            highlight=False,
        )


def main() -> None:
    """Entry point of the ``tenure`` console script."""
    use_throughput_thresholds()
    app()
