"""Rich tables of the closed loop's results for ``tenure loop``."""

from __future__ import annotations

import math

from rich.table import Table

from tenure.measure.loop import LoopReport

__all__ = ["comparison_table", "loop_table"]

_METRICS = (
    ("mrr_saved_expected", "MRR saved by the calls (truth)", "{:,.0f}"),
    ("saves_expected", "churns prevented (truth)", "{:,.2f}"),
    ("revenue", "MRR kept (sum of month ends)", "{:,.0f}"),
    ("churned", "logos churned", "{:,.1f}"),
    ("cost", "cost of calls", "{:,.0f}"),
)


def _cell(mean: float, low: float, high: float, spec: str) -> str:
    text = spec.format(mean)
    if math.isnan(low):
        return text
    return f"{text} [{spec.format(low)}, {spec.format(high)}]"


def loop_table(report: LoopReport) -> Table:
    settings = report.settings
    table = Table(
        "policy",
        *(label for _, label, _ in _METRICS),
        title=(
            f"{settings.eval_months} months, at most {settings.budget} calls a month, "
            f"{len(settings.seeds)} seeds: mean [95 % CI]"
        ),
    )
    for policy, metrics in report.summary().items():
        table.add_row(policy, *(_cell(*metrics[name], spec) for name, _, spec in _METRICS))
    return table


def comparison_table(report: LoopReport) -> Table:
    table = Table(
        "comparison",
        "MRR saved (truth)",
        "churns prevented (truth)",
        "MRR kept",
        "logos churned",
        title="paired differences per seed: mean [95 % CI]; * the interval excludes 0",
    )
    metrics = ("mrr_saved_expected", "saves_expected", "revenue", "churned")
    by_pair: dict[tuple[str, str], dict[str, str]] = {}
    for c in report.comparisons:
        if c.metric not in metrics:
            continue
        spec = "{:+,.2f}" if c.metric in ("churned", "saves_expected") else "{:+,.0f}"
        cell = _cell(c.mean, c.low, c.high, spec) + (" *" if c.excludes_zero else "")
        by_pair.setdefault((c.better, c.worse), {})[c.metric] = cell
    for (better, worse), cells in by_pair.items():
        table.add_row(f"{better} − {worse}", *(cells.get(m, "—") for m in metrics))
    return table
