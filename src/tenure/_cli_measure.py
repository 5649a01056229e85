"""``tenure report …``: a shell over :mod:`tenure.measure`'s reports."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json
from tenure._cli_common import project as project_at
from tenure._cli_pipeline import AsOfOption, parse_as_of
from tenure._render_loop import comparison_table, loop_table

if TYPE_CHECKING:
    from tenure.measure._kpis import KPIReport

__all__ = ["loop", "report_app"]

report_app = typer.Typer(
    help="Reports: holdouts and experiments, and customer KPIs by cohort and stage.",
    no_args_is_help=True,
)


def _summary(summary: object, *, percent: bool) -> str:
    from tenure.measure.experiments import ArmSummary

    if not isinstance(summary, ArmSummary):
        return "—"
    if percent:
        return f"{summary.mean:.1%} [{summary.ci_low:.1%}, {summary.ci_high:.1%}]"
    return f"{summary.mean:,.2f} [{summary.ci_low:,.2f}, {summary.ci_high:,.2f}]"


def _lift(lift: object, *, percent: bool, holm: bool = False) -> str:
    """A lift with its interval, relative lift and p-value (with *holm*, also adjusted)."""
    from tenure.measure.experiments import Lift

    if not isinstance(lift, Lift):
        return "—"
    if percent:
        text = (
            f"{lift.absolute * 100:+.1f} pp "
            f"[{lift.absolute_ci_low * 100:+.1f}, {lift.absolute_ci_high * 100:+.1f}]"
        )
    else:
        text = (
            f"{lift.absolute:+,.2f} [{lift.absolute_ci_low:+,.2f}, {lift.absolute_ci_high:+,.2f}]"
        )
    if not math.isnan(lift.relative):
        text += f" ({lift.relative:+.0%})"
    if holm and lift.p_adjusted is not None:
        return f"{text}, p={lift.p_value:.3g}, Holm {lift.p_adjusted:.3g}"
    return f"{text}, p={lift.p_value:.3g}"


def _always_valid(monitoring: object, *, percent: bool) -> str:
    """An always-valid test's p-value and interval at the last look, and since when it
    has been significant."""
    from tenure.measure._report import Monitoring

    if not isinstance(monitoring, Monitoring):
        return "—"
    low, high = monitoring.ci_low, monitoring.ci_high
    if percent:
        text = f"[{low * 100:+.1f}, {high * 100:+.1f}] pp"
    else:
        text = f"[{low:+,.2f}, {high:+,.2f}]"
    text = text.replace("inf", "∞")
    text += f", p={monitoring.p_value:.3g}"
    if monitoring.p_adjusted is not None:
        text += f", Holm {monitoring.p_adjusted:.3g}"
    since = monitoring.significant_since
    return text + (f", since {since:%Y-%m-%d}" if since is not None else "")


@report_app.command("experiments")
def experiments(
    as_of: AsOfOption = None,
    project_dir: ProjectOption = None,
    cuped: Annotated[
        bool,
        typer.Option(
            "--cuped/--no-cuped",
            help="Adjust the lifts by the churn probability and MRR logged before each "
            "decision (CUPED).",
        ),
    ] = True,
    json_out: JsonOption = False,
) -> None:
    """Treated against held out per holdout group, and every experiment arm against its
    control: conversion, retention, revenue, lift, SRM."""
    from tenure.measure._report import experiment_report, save_report

    with errors(), project_at(project_dir) as opened:
        at = parse_as_of(as_of, opened.clock())
        report = experiment_report(opened, as_of=at, cuped=cuped)
        save_report(opened, report, computed_at=opened.clock())  # what the API serves
    if json_out:
        print_json(report.as_dict())
        return
    days = report.window.total_seconds() / 86400
    out.print(
        f"[bold]holdouts[/] as of {report.as_of:%Y-%m-%d %H:%M} UTC, "
        f"outcomes within {days:g} days of each customer's first decision"
    )
    if any(group.sequential for group in report.groups):
        out.print(
            "[dim]a lift's p-value holds if this report is read once; the always-valid "
            "one however often it is read (its interval is wider for that)[/]"
        )
    for group in report.groups:
        srm = group.srm
        flag = (
            "—"
            if srm is None
            else f"[bold red]MISMATCH[/] (p={srm.p_value:.2g})"
            if srm.flagged
            else f"ok (p={srm.p_value:.2g})"
        )
        title = f"{group.group}: {group.percent:g} % held out"
        if group.experiment is not None:
            shares = ", ".join(f"{a} {group.percents[a]:.3g} %" for a in group.percents)
            title = f"{group.group}: {shares or 'arms'}; lifts against {group.control}"
        table = Table(
            Column("arm", no_wrap=True),
            "customers",
            "conversion [95 % CI]",
            "retention [95 % CI]",
            "revenue/customer [95 % CI]",
            title=title,
            caption=(
                f"SRM {flag}; {group.pending:,} pending (window not over), "
                f"{group.repeats:,} repeat decisions left out" + _cuped_caption(group)
            ),
        )
        for row in group.rows():
            table.add_row(
                row.arm,
                f"{row.customers:,}",
                _summary(row.conversion, percent=True),
                _summary(row.retention, percent=True),
                _summary(row.revenue, percent=False),
            )
        if group.experiment is None:
            lifts: list[tuple[str, str | None]] = [("lift", None)]
        else:  # one row per treatment arm, p-values Holm-adjusted across the arms
            lifts = [(f"lift {arm}", arm) for arm in group.arms if arm != group.control]
        holm = group.experiment is not None
        for label, arm in lifts:
            table.add_row(
                label,
                "",
                _lift(group.lift("conversion", arm), percent=True, holm=holm),
                _lift(group.lift("retention", arm), percent=True, holm=holm),
                _lift(group.lift("revenue", arm), percent=False, holm=holm),
                style="bold",
            )
            if group.sequential:
                table.add_row(
                    "  always-valid" + (f" {arm}" if arm is not None else ""),
                    "",
                    _always_valid(group.monitoring("conversion", arm), percent=True),
                    _always_valid(group.monitoring("retention", arm), percent=True),
                    _always_valid(group.monitoring("revenue", arm), percent=False),
                )
        out.print(table)
        if group.segments:
            out.print(_stage_table(group.segments, arms=group.experiment is not None))
        for note in group.notes:
            out.print(f"  [dim]{note}[/]", highlight=False)
    for note in report.notes:
        out.print(note, highlight=False)


def _cuped_caption(group: object) -> str:
    """How much CUPED narrowed the lifts, per metric it adjusted."""
    metrics = getattr(group, "metrics", ())
    parts = [f"{m.metric} {m.cuped.variance_reduction:.0%}" for m in metrics if m.cuped is not None]
    return f"; CUPED variance cut: {', '.join(parts)}" if parts else ""


def _stage_table(segments: Mapping[str, object], *, arms: bool = False) -> Table:
    """Each metric's lift per stage (with *arms*, per stage and treatment arm), with its
    Holm-adjusted p-value."""
    from tenure.measure.experiments import SegmentBreakdown

    if arms:
        table = Table(
            "stage", "metric", "arm", "customers", "control", "lift [95 % CI]", "p (Holm)"
        )
    else:
        table = Table("stage", "metric", "treated", "held out", "lift [95 % CI]", "p (Holm)")
    table.title = "by stage at decision"
    for metric, breakdown in segments.items():
        if not isinstance(breakdown, SegmentBreakdown):
            continue
        percent = metric != "revenue"
        for row in breakdown.rows:
            adjusted = row.lift.p_adjusted
            table.add_row(
                str(row.segment),
                metric,
                *([row.lift.treatment] if arms else []),
                f"{row.n_treatment:,}",
                f"{row.n_control:,}",
                _lift(row.lift, percent=percent).split(", p=")[0],
                "—" if adjusted is None else f"{adjusted:.3g}",
            )
    return table


def _kpi(value: object, spec: str, unavailable: list[tuple[str, str, str]], where: str) -> str:
    """A KPI cell: "—" for an unavailable one, whose reason (*where* is ``row:column``) is
    kept for below the table."""
    from tenure.lifecycle import Unavailable

    if isinstance(value, Unavailable):
        row, column = where.split(":", 1)
        unavailable.append((row, column, value.reason))
        return "—"
    if value is None:
        return "—"
    assert isinstance(value, int | float)
    return format(value, spec)


def _reasons(unavailable: list[tuple[str, str, str]]) -> list[str]:
    """One line per KPI and reason, naming the rows it applies to."""
    rows: dict[tuple[str, str], list[str]] = {}
    for row, column, reason in unavailable:
        rows.setdefault((column, reason), []).append(row)
    return [
        f"  [dim]{column} — {', '.join(names)}: {reason}[/]"
        for (column, reason), names in rows.items()
    ]


def _blended(report: KPIReport) -> str:
    """The CAC and payback pooled over the cohorts with one, or why there are none."""
    from tenure.lifecycle import Unavailable

    cac, payback = report.cac, report.cac_payback_months
    if isinstance(cac, Unavailable):
        return f"blended CAC payback: — ({cac.reason})"
    pooled = sum(not isinstance(c.cac, Unavailable) for c in report.cohorts)
    months = (
        f"— ({payback.reason})" if isinstance(payback, Unavailable) else f"{payback:.1f} months"
    )
    return (
        f"blended over {pooled} cohort{'s' * (pooled != 1)} with spend: "
        f"CAC {cac:,.0f}, payback {months}"
    )


@report_app.command("kpis")
def kpis(
    as_of: AsOfOption = None,
    project_dir: ProjectOption = None,
    spend: Annotated[
        str | None,
        typer.Option(
            "--spend",
            metavar="FILE",
            help="Acquisition spend for CAC: a CSV (month, amount, optional channel) or a "
            "glob of several, instead of measure.spend.",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """KPIs by signup cohort and by stage: activation, churn, GRR/NRR, CLV, NPS, CAC
    payback, retention."""
    from tenure.measure._kpis import kpi_report
    from tenure.measure._spend import read_spend

    with errors(), project_at(project_dir) as opened:
        spent = None if spend is None else read_spend(spend, root=Path.cwd(), origin="--spend")
        report = kpi_report(opened, as_of=parse_as_of(as_of, opened.clock()), spend=spent)
    if json_out:
        print_json(report.as_dict())
        return
    missing: list[tuple[str, str, str]] = []
    cohorts = Table(
        Column("cohort", no_wrap=True, min_width=7),
        "accounts",
        "activation",
        "TTV days",
        "logo churn",
        "/ month",
        "revenue churn",
        "/ month",
        "GRR 12m",
        "NRR 12m",
        "CLV",
        "NPS",
        "CAC payback",
        title=f"signup cohorts as of {report.as_of:%Y-%m-%d %H:%M} UTC",
    )
    for c in report.cohorts:
        name = f"{c.cohort:%Y-%m}"
        cohorts.add_row(
            name,
            f"{c.accounts:,}",
            _kpi(c.activation_rate, ".0%", missing, f"{name}:activation"),
            _kpi(c.median_time_to_value_days, ".1f", missing, f"{name}:TTV"),
            _kpi(c.logo_churn, ".0%", missing, f"{name}:logo churn"),
            _kpi(c.logo_churn_monthly, ".1%", missing, f"{name}:logo churn / month"),
            _kpi(c.revenue_churn, ".0%", missing, f"{name}:revenue churn"),
            _kpi(c.revenue_churn_monthly, ".1%", missing, f"{name}:revenue churn / month"),
            _kpi(c.grr_12m, ".0%", missing, f"{name}:GRR 12m"),
            _kpi(c.nrr_12m, ".0%", missing, f"{name}:NRR 12m"),
            _kpi(c.mean_clv, ",.0f", missing, f"{name}:CLV"),
            _kpi(c.nps, "+.0f", missing, f"{name}:NPS"),
            _kpi(c.cac_payback_months, ".1f", missing, f"{name}:CAC payback"),
        )
    out.print(cohorts)
    for line in _reasons(missing):
        out.print(line, highlight=False)
    out.print(_blended(report), highlight=False)
    months = max((len(c.retention) for c in report.cohorts), default=0)
    curves = Table(
        "cohort", *[str(m) for m in range(months)], title="retention: % active at the end of month"
    )
    for c in report.cohorts:
        shown = [f"{share:.0%}" for share in c.retention]
        curves.add_row(f"{c.cohort:%Y-%m}", *shown, *[""] * (months - len(shown)))
    out.print(curves)
    missing = []
    stages = Table(
        "stage", "accounts", "MRR", "churn from stage", "CLV", "NPS", title="by stage now"
    )
    for s in report.stages:
        if not s.accounts and s.churn_rate is None:
            continue
        where = s.stage.value
        stages.add_row(
            where,
            f"{s.accounts:,}",
            f"{s.mrr:,.0f}",
            _kpi(s.churn_rate, ".0%", missing, f"{where}:churn"),
            _kpi(s.mean_clv, ",.0f", missing, f"{where}:CLV"),
            _kpi(s.nps, "+.0f", missing, f"{where}:NPS"),
        )
    out.print(stages)
    for line in _reasons(missing):
        out.print(line, highlight=False)
    for note in report.notes:
        out.print(note, highlight=False)


def loop(
    directory: Annotated[
        Path, typer.Argument(help="Where the runs go: one folder per seed and policy.")
    ] = Path("tenure-loop"),
    accounts: Annotated[int, typer.Option(help="Simulated accounts per seed.")] = 3000,
    warmup_months: Annotated[int, typer.Option(help="Months of history before acting.")] = 12,
    explore_months: Annotated[
        int, typer.Option(help="Months of randomized calls the uplift model learns from.")
    ] = 4,
    eval_months: Annotated[int, typer.Option(help="Months each policy is run for.")] = 6,
    budget: Annotated[int, typer.Option(help="CSM calls a month, for every policy.")] = 150,
    seeds: Annotated[str, typer.Option(help="Comma-separated simulation seeds.")] = "1,2,3,4,5",
    policies: Annotated[
        str, typer.Option(help="Comma-separated: none, random, risk, uplift.")
    ] = "none,random,risk,uplift",
    jobs: Annotated[int, typer.Option(help="Seeds run at once, in separate processes.")] = 1,
    json_out: JsonOption = False,
) -> None:
    """Close the loop in the simulator: compare targeting policies at equal budget."""
    from tenure.errors import TenureError
    from tenure.measure.loop import LoopPolicy, LoopSettings, run_loop

    with errors():
        try:
            chosen = tuple(LoopPolicy(p.strip()) for p in policies.split(",") if p.strip())
            seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError as error:
            raise TenureError(
                f"--policies takes none, random, risk, uplift and --seeds whole numbers: {error}"
            ) from error
        settings = LoopSettings(
            accounts=accounts,
            warmup_months=warmup_months,
            explore_months=explore_months,
            eval_months=eval_months,
            budget=budget,
            seeds=seed_list,
            policies=chosen,
        )
        say = None if json_out else (lambda m: out.print(f"[dim]{m}[/]", highlight=False))
        report = run_loop(directory, settings, progress=say, jobs=jobs)
        written = report.write(directory)
    if json_out:
        print_json(report.as_dict())
        return
    out.print(loop_table(report))
    out.print(comparison_table(report))
    out.print(f"per-month series: {written[0]}; everything: {written[1]}", highlight=False)
