"""``tenure report …``: a shell over :mod:`tenure.measure`'s reports."""

from __future__ import annotations

import math

import typer
from rich.table import Table

from tenure._cli_common import JsonOption, ProjectOption, errors, out, print_json
from tenure._cli_common import project as project_at
from tenure._cli_pipeline import AsOfOption, parse_as_of

__all__ = ["report_app"]

report_app = typer.Typer(
    help="Reports on what the actions changed: holdouts and experiments.", no_args_is_help=True
)


def _summary(summary: object, *, percent: bool) -> str:
    from tenure.measure.experiments import ArmSummary

    if not isinstance(summary, ArmSummary):
        return "—"
    if percent:
        return f"{summary.mean:.1%} [{summary.ci_low:.1%}, {summary.ci_high:.1%}]"
    return f"{summary.mean:,.2f} [{summary.ci_low:,.2f}, {summary.ci_high:,.2f}]"


def _lift(lift: object, *, percent: bool) -> str:
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
    return f"{text}, p={lift.p_value:.3g}"


@report_app.command("experiments")
def experiments(
    as_of: AsOfOption = None,
    project_dir: ProjectOption = None,
    json_out: JsonOption = False,
) -> None:
    """Treated against held out, per holdout group: conversion, retention, revenue, lift, SRM."""
    from tenure.measure._report import experiment_report

    with errors(), project_at(project_dir) as opened:
        report = experiment_report(opened, as_of=parse_as_of(as_of, opened.clock()))
    if json_out:
        print_json(report.as_dict())
        return
    days = report.window.total_seconds() / 86400
    out.print(
        f"[bold]holdouts[/] as of {report.as_of:%Y-%m-%d %H:%M} UTC, "
        f"outcomes within {days:g} days of each customer's first decision"
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
        table = Table(
            "arm",
            "customers",
            "conversion [95 % CI]",
            "retention [95 % CI]",
            "revenue/customer [95 % CI]",
            title=f"{group.group}: {group.percent:g} % held out",
            caption=(
                f"SRM {flag}; {group.pending:,} pending (window not over), "
                f"{group.repeats:,} repeat decisions left out"
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
        table.add_row(
            "lift",
            "",
            _lift(group.lift("conversion"), percent=True),
            _lift(group.lift("retention"), percent=True),
            _lift(group.lift("revenue"), percent=False),
            style="bold",
        )
        out.print(table)
        for note in group.notes:
            out.print(f"  [dim]{note}[/]", highlight=False)
    for note in report.notes:
        out.print(note, highlight=False)
