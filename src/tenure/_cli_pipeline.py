"""``tenure features | build | train | score``: the intelligence steps from the command line.

Thin shells over :mod:`tenure.features` and :mod:`tenure.models.pipeline`;
``tenure.cli`` registers them as top-level commands.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json, project
from tenure.errors import TenureError

if TYPE_CHECKING:
    from tenure.models.pipeline import AtRisk

__all__ = ["at_risk_table", "build", "features", "parse_as_of", "score", "stages", "train"]

AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Run as of this UTC date or time (ISO 8601); events from then on are ignored. "
        "Default: now.",
    ),
]
PromoteOption = Annotated[
    bool | None,
    typer.Option(
        "--promote/--no-promote",
        help="Make the new versions production (default: only when none is).",
    ),
]


def parse_as_of(text: str | None, default: dt.datetime) -> dt.datetime:
    """An ISO date or time, read as UTC when it names no zone."""
    if text is None:
        return default
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise TenureError(
            f"--as-of {text!r} is not an ISO date or time", hint="e.g. --as-of 2025-06-01"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def features(project_dir: ProjectOption = None, json_out: JsonOption = False) -> None:
    """List the features the build computes, with their windows and hashes."""
    from tenure.features import definition_hash, project_features

    with errors(), project(project_dir) as opened:
        chosen = project_features(opened)
    rows: list[dict[str, Any]] = [
        {
            "name": d.name,
            "entity": d.entity.value,
            "aggregation": d.aggregation.value,
            "events": d.events,
            "window": d.window,
            "hash": definition_hash(d),
            "description": d.description,
        }
        for d in chosen.definitions
    ]
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} features")
    for column in ("name", "entity", "aggregation", "window", "events", "hash", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["entity"],
            row["aggregation"],
            row["window"],
            ", ".join(row["events"]),
            row["hash"],
            row["description"],
        )
    out.print(table)


def build(
    project_dir: ProjectOption = None, as_of: AsOfOption = None, json_out: JsonOption = False
) -> None:
    """Build features (and text sentiment) as of a time."""
    from tenure.models.pipeline import build as build_step

    with errors(), project(project_dir) as opened:
        report = build_step(opened, as_of=parse_as_of(as_of, opened.clock()))
    if json_out:
        print_json(report)
        return
    out.print(f"[bold]build[/] as of {report.as_of:%Y-%m-%d %H:%M} UTC")
    out.print(f"  text scored for sentiment: {report.sentiment_scored:,} events")
    for item in report.features:
        out.print(
            f"  features_{item.entity.value}: {item.rows:,} rows × {item.features} features "
            f"in {item.seconds:.1f} s → {item.snapshot}"
        )
    counts = ", ".join(f"{stage.value} {n:,}" for stage, n in report.stages.counts.items())
    out.print(f"  stages of {report.stages.accounts:,} accounts: {counts}")
    bands = ", ".join(f"{band.value} {n:,}" for band, n in report.health.bands.items())
    mean = report.health.mean_health
    shown = "—" if mean is None else f"{mean:.0f}"
    out.print(f"  health of {report.health.accounts:,} customers: mean {shown} ({bands})")


def train(
    project_dir: ProjectOption = None,
    as_of: AsOfOption = None,
    horizon_days: Annotated[int, typer.Option(help="Churn within this many days.")] = 90,
    history_months: Annotated[int, typer.Option(help="Monthly cutoffs to learn from.")] = 12,
    promote: PromoteOption = None,
    actor: Annotated[str | None, typer.Option(help="Who trains (audit log).")] = None,
    from_outcomes: Annotated[
        bool,
        typer.Option(
            "--from-outcomes",
            help="Also learn uplift models from the decision log's randomized outcomes "
            "(campaigns with a holdout).",
        ),
    ] = False,
    window: Annotated[
        str | None,
        typer.Option(
            help="Outcomes within this long after a decision (default: "
            "decide.attribution_window), e.g. 30d.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Train churn, survival and retention models; register them as new versions."""
    from tenure._config_decide import parse_duration
    from tenure.measure.feedback import train_uplift
    from tenure.models.pipeline import TrainingSettings
    from tenure.models.pipeline import train as train_step

    settings = TrainingSettings(horizon_days=horizon_days, history_months=history_months)
    feedback = None
    with errors(), project(project_dir) as opened:
        at = parse_as_of(as_of, opened.clock())
        who = actor or getpass.getuser()
        report = train_step(opened, as_of=at, settings=settings, actor=who, promote=promote)
        if from_outcomes:
            feedback = train_uplift(
                opened,
                as_of=at,
                window=None if window is None else parse_duration(window),
                actor=who,
                promote=promote,
            )
    if json_out:
        print_json(report if feedback is None else {"churn": report, "uplift": feedback})
        return
    metrics = report.validation
    out.print(
        f"[bold]trained[/] on {report.rows:,} customer-months "
        f"({report.churn_rate:.1%} churned within {horizon_days} days)"
    )
    out.print(
        f"  out-of-time validation: ROC-AUC {metrics.roc_auc:.3f} · PR-AUC {metrics.pr_auc:.3f} · "
        f"Brier {metrics.brier:.4f} · ECE {metrics.ece:.4f} · "
        f"top-decile lift {metrics.top_decile_lift:.2f}"
    )
    for name, version in report.versions.items():
        state = "production" if name in report.promoted else version.status.value
        out.print(f"  {version.label} ({state})")
    if feedback is not None:
        days = feedback.window.total_seconds() / 86_400
        out.print(
            f"[bold]uplift[/] from {feedback.rows:,} randomized decisions with {days:g} days "
            f"of outcomes ({feedback.pending:,} still within their window)"
        )
        for trained in feedback.trained.values():
            qini = "—" if trained.qini is None else f"{trained.qini:.3f}"
            state = "production" if trained.promoted else trained.version.status.value
            out.print(
                f"  {trained.version.label} ({state}): {trained.treated:,} treated, "
                f"{trained.control:,} held out; churned {trained.churn_treated:.1%} vs "
                f"{trained.churn_control:.1%}; out-of-time Qini {qini}"
            )
        for treatment, why in feedback.skipped.items():
            out.print(f"  [yellow]{treatment}: not trained[/] — {why}", highlight=False)


def retrain(
    project_dir: ProjectOption = None,
    as_of: AsOfOption = None,
    every: Annotated[
        str, typer.Option(help="Retrain when the model's data is older than this (e.g. 30d).")
    ] = "30d",
    drift: Annotated[
        float, typer.Option(help="Retrain when an input's PSI since training exceeds this.")
    ] = 0.25,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if not due.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say whether retraining is due, and why.")
    ] = False,
    promote: PromoteOption = None,
    actor: Annotated[str | None, typer.Option(help="Who retrains (audit log).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Retrain the churn and uplift models if due: by cadence, or when inputs drifted."""
    from tenure._config_decide import parse_duration
    from tenure.measure.feedback import retrain as retrain_step
    from tenure.measure.feedback import retrain_check

    with errors(), project(project_dir) as opened:
        at = parse_as_of(as_of, opened.clock())
        period = parse_duration(every)
        if dry_run:
            check = retrain_check(opened, as_of=at, every=period, drift=drift)
            report = None
        else:
            report = retrain_step(
                opened, as_of=at, every=period, drift=drift, force=force,
                actor=actor or getpass.getuser(), promote=promote,
            )  # fmt: skip
            check = report.check
    if json_out:
        found: dict[str, object] = {"check": check.as_dict()}
        if report is not None:
            found |= {"churn": report.churn, "uplift": report.uplift, "notes": report.notes}
        print_json(found)
        return
    state = "[bold]due[/]" if check.due else "not due"
    out.print(
        f"retraining is {state} as of {at:%Y-%m-%d}" + (f" ({check.model})" if check.model else "")
    )
    for reason in check.reasons:
        out.print(f"  {reason}", highlight=False)
    if check.drift:
        top = ", ".join(f"{d.feature} {d.psi:.2f}" for d in check.drift[:5])
        out.print(f"  [dim]largest input PSI since {check.reference}: {top}[/]", highlight=False)
    if report is not None and (report.churn or report.uplift):
        trained = [*(report.churn.versions.values() if report.churn else [])]
        trained += [u.version for u in (report.uplift.trained.values() if report.uplift else [])]
        out.print("[bold]trained[/] " + ", ".join(v.label for v in trained))
        for note in report.notes:
            out.print(f"  [yellow]{note}[/]", highlight=False)


def score(
    project_dir: ProjectOption = None,
    as_of: AsOfOption = None,
    top: Annotated[int, typer.Option(help="At-risk accounts to show.")] = 10,
    json_out: JsonOption = False,
) -> None:
    """Score every customer: churn risk with reasons, renewal probability, CLV, uplift."""
    from tenure.measure.feedback import score_uplift
    from tenure.models.pipeline import at_risk
    from tenure.models.pipeline import score as score_step

    with errors(), project(project_dir) as opened:
        at = parse_as_of(as_of, opened.clock())
        report = score_step(opened, as_of=at)
        uplift = score_uplift(opened, as_of=at)
        riskiest = at_risk(opened, top)
    if json_out:
        print_json({"report": report, "uplift": uplift, "at_risk": riskiest})
        return
    versions = ", ".join([*report.versions.values(), *uplift.versions.values()])
    out.print(
        f"[bold]scored[/] {report.rows:,} customers as of {report.as_of:%Y-%m-%d} ({versions})"
    )
    for label, agreement in report.shadows.items():
        out.print(
            f"  shadow {label}: Spearman {agreement.spearman:.3f}, "
            f"top-decile overlap {agreement.top_overlap:.0%}"
        )
    out.print(at_risk_table(riskiest))


def at_risk_table(rows: Sequence[AtRisk]) -> Table:
    table = Table(title="accounts most at risk")
    for column, justify in (
        ("account", "left"),
        ("churn 90d", "right"),
        ("renews", "right"),
        ("MRR", "right"),
        ("CLV", "right"),
        ("why", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        renews = row.renewal_probability
        table.add_row(
            row.name or row.account_id,
            f"{row.churn_probability:.0%}",
            "—" if renews is None else f"{renews:.0%}",
            f"{row.mrr or 0:,.0f}",
            f"{row.clv or 0:,.0f}",
            "; ".join(row.reasons),
        )
    return table


def stages(
    project_dir: ProjectOption = None,
    as_of: AsOfOption = None,
    period_days: Annotated[int, typer.Option(help="The KPIs' period, in days.")] = 365,
    json_out: JsonOption = False,
) -> None:
    """Lifecycle stages: counts, durations, conversion, transitions and stage KPIs."""
    from tenure.lifecycle import stage_report

    with errors(), project(project_dir) as opened:
        report = stage_report(
            opened.warehouse,
            opened.config.lifecycle,
            as_of=parse_as_of(as_of, opened.clock()),
            period_days=period_days,
        )
    if json_out:
        print_json(report)
        return
    out.print(stage_table(report))
    out.print(transition_table(report))
    for line in kpi_lines(report):
        out.print(line)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def stage_table(report: Any) -> Table:
    table = Table(title=f"{report.accounts:,} accounts as of {report.as_of:%Y-%m-%d}")
    for column in (
        "stage",
        "now",
        "entered",
        "mean days",
        "median days",
        "→ next",
        "health",
        "features 90d",
    ):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in report.stages:
        table.add_row(
            s.stage.value,
            f"{s.current:,}",
            f"{s.entered:,}",
            _num(s.mean_days),
            _num(s.median_days),
            _pct(s.conversion),
            _num(s.health),
            _num(s.feature_breadth, ".1f"),
        )
    return table


def transition_table(report: Any) -> Table:
    order = [s.stage for s in report.stages]
    table = Table(title="transitions (from row to column)")
    table.add_column("from")
    for stage in order:
        table.add_column(stage.value[:11], justify="right")
    for source in order:
        counts = [report.transition(source, target) for target in order]
        if any(counts):
            table.add_row(source.value, *[f"{n:,}" if n else "" for n in counts])
    return table


def kpi_lines(report: Any) -> list[str]:
    leads, sales, onboarding, retention = (
        report.leads,
        report.sales,
        report.onboarding,
        report.retention,
    )
    milestones = onboarding.milestone_completion
    shown = _pct(milestones) if isinstance(milestones, float) else f"n/a ({milestones.reason})"
    return [
        f"[bold]leads[/] {leads.leads:,}: qualified {_pct(leads.qualification_rate)}, "
        f"median {_num(leads.median_days_to_qualify, '.0f')} days to qualify",
        f"[bold]sales[/] {sales.opportunities:,} opportunities: win rate {_pct(sales.win_rate)}, "
        f"median cycle {_num(sales.median_cycle_days)} days, "
        f"deal velocity {_num(sales.deal_velocity)} per day",
        f"[bold]onboarding[/] {onboarding.new_customers:,} new customers: median time to value "
        f"{_num(onboarding.median_time_to_value_days, '.0f')} days; milestones {shown}",
        f"[bold]retention[/] expansion {_pct(retention.expansion_rate)}, renewal rate "
        f"{_pct(retention.renewal_rate)} of {retention.renewals_due:,} due, "
        f"GRR {_pct(retention.grr)}, NRR {_pct(retention.nrr)}",
    ]
