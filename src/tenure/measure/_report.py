"""The holdout report: what the actions changed, read from the decision log and the lake.

Every holdout group the decision log shows (the global control, and each campaign
with a holdout; see ``docs/decide.md``) is an experiment with two arms, built from
the ``holdout`` check the decisions carry:

* **treated**: status ``queued``, ``deferred`` or ``review`` — or ``rejected`` or
  ``expired`` after review: intention to treat — with a ``holdout`` *pass* check
  of the group;
* **held out**: status ``holdout`` with the group's *hold* check.

A policy's experiment (a rule with ``experiment:``, see ``docs/decide.md``) is a
group ``experiment <id>`` with one arm per arm name, read from the check's
``arm``: its control arm (status ``holdout``, *hold* check) is what every other
arm is compared against, each treatment arm's p-values Holm-adjusted across the
arms. Its sample-ratio check uses the arms' weights in the loaded policies while
the experiment is there, else the percents the log names.

The global control's other arm is everyone *outside* it in a cycle in which it was
on (all of them while it is configured): the treated, and also those a campaign
holdout kept (their check names the campaign, not the global control). Leaving
those out would make the arm smaller than its 100 − p % share by however many the
campaigns held out, and the sample-ratio check would flag a split that is in
fact fair; keeping them measures the whole programme as run, holdouts included
(intention to treat), at the price of a slightly diluted effect.

One row per account: its **first** decision in the group up to *as_of* (later ones
are counted as repeats and left out, so a customer decided for every week weighs as
much as one decided for once). A row counts only when its attribution window
(``decide.attribution_window``) has fully elapsed by *as_of*: a customer decided
for yesterday has had no time to convert, and counting them would read as a
failure (they are counted as *pending*). Per account, within the window after the
decision (:func:`tenure.decide.decision_outcomes`):

* **conversion**: any ``converted`` outcome (Subscription Started, Opportunity
  Won, Order Completed);
* **retention**: no ``churned`` outcome (Subscription Canceled);
* **revenue per customer**: the sum of ``Invoice Paid`` amounts (0 without one),
  reported only when the lake holds some Invoice Paid event for these accounts.

The statistics are :func:`tenure.measure.experiments.analyze` (Wilson and
Student-t intervals, absolute and relative lift with p-values) and
:func:`~tenure.measure.experiments.srm_check` against the configured share.

**Looking early.** Those p-values hold for one reading; a report read every day
until it shows ``p < 0.05`` finds effects that are not there. Beside them each
lift carries an always-valid test (:func:`~tenure.measure.experiments.sequential_test`,
the mSPRT): its looks are the days on which some customer's window ended — what a
reader who ran the report every day would have seen — and its p-value and interval
hold at every one of them at once. It is computed on the raw outcomes (not
CUPED-adjusted), with τ per metric from ``measure.sequential``; an experiment's
arms are Holm-adjusted like the fixed-horizon ones.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import orjson
from sqlalchemy import Column, select

from tenure._config_decide import parse_duration
from tenure.decide._holdouts import CAMPAIGN_PREFIX, EXPERIMENT_PREFIX, GLOBAL
from tenure.decide._outcomes import decision_outcomes
from tenure.decide._policy import RuleExperiment, load_policies
from tenure.errors import ConfigError, NotFoundError, PolicyError
from tenure.features._attribute import attributed_events
from tenure.measure._segments import SegmentBreakdown, segment_breakdown
from tenure.measure._sequential import SequentialResult, sequential_test
from tenure.measure._stats import (
    ArmSummary,
    Correction,
    Lift,
    MetricKind,
    MetricReport,
    SRMResult,
    adjust_pvalues,
    analyze,
    srm_check,
)
from tenure.store._tables import decisions

if TYPE_CHECKING:
    from tenure.project import Project
    from tenure.warehouse import Warehouse

__all__ = [
    "HELD_OUT",
    "SAVED_REPORT",
    "TREATED",
    "ArmRow",
    "ExperimentReport",
    "GroupReport",
    "Monitoring",
    "experiment_report",
    "load_saved_report",
    "save_report",
]

TREATED = "treated"
HELD_OUT = "held out"
#: Assigned to the treatment: what became of the action afterwards (a reviewer rejected
#: it, its review expired) does not move the customer out of the arm (intention to
#: treat); leaving them out would let the reviewers' choices bias the comparison.
_TREATED_STATUSES = ("queued", "deferred", "review", "rejected", "expired")
_GLOBAL = "global control"
#: The name of a policy experiment's group in the report: ``experiment <id>``.
_EXPERIMENT = "experiment "

# The holdout check's wording, for decisions logged before checks carried their group.
_GLOBAL_HOLD = re.compile(r"^global control \((?P<percent>[\d.]+) %\)$")
_CAMPAIGN_HOLD = re.compile(r"^campaign (?P<campaign>.+) holdout \((?P<percent>[\d.]+) %\)$")
_GLOBAL_PASS = re.compile(r"^treated \(not in the global control\)$")
_CAMPAIGN_PASS = re.compile(
    r"^treated in campaign (?P<campaign>.+) \((?P<percent>[\d.]+) % held out\)$"
)
_NO_STAGE = (
    "no stage breakdown: some decisions were logged before the log kept the customer's "
    "stage; pass segments= (account → stage) to get one"
)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, enums their value."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, MetricKind | Correction):
        return value.value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class Monitoring:
    """One treatment arm's always-valid test of one metric against the control arm.

    The looks are the days on which some customer's attribution window ended, each
    with every customer whose window had ended by then: the p-value (the running
    minimum) and interval of the last look hold whenever the report was read.
    """

    metric: str
    result: SequentialResult
    #: Holm-adjusted across an experiment's treatment arms (None: one treatment arm).
    p_adjusted: float | None = None

    @property
    def treatment(self) -> str:
        return self.result.treatment

    @property
    def p_value(self) -> float:
        return self.result.looks[-1].p_value

    @property
    def ci_low(self) -> float:
        return self.result.looks[-1].ci_low

    @property
    def ci_high(self) -> float:
        return self.result.looks[-1].ci_high

    @property
    def significant_since(self) -> dt.date | None:
        """The first look at which the (adjusted) p-value fell below α (None: not yet)."""
        alpha, result = self.result.alpha, self.result
        if self.p_adjusted is None:
            found = result.first_rejection
            return found if isinstance(found, dt.date) else None
        if self.p_adjusted >= alpha:
            return None
        # Holm's adjusted p is at least the raw one: it crossed no earlier than this
        return next(
            (k.look for k in result.looks if isinstance(k.look, dt.date) and k.p_value < alpha),
            None,
        )

    def as_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "metric": self.metric,
            "treatment": result.treatment,
            "control": result.control,
            "alpha": result.alpha,
            "mixture_sd": result.mixture_sd,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "significant_since": _day(self.significant_since),
            "looks": [{**look.as_dict(), "look": _day(look.look)} for look in result.looks],
        }


def _day(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


@dataclass(frozen=True)
class ArmRow:
    """One arm of a group, as a table row: its size and each metric's summary."""

    arm: str
    customers: int
    conversion: ArmSummary | None
    retention: ArmSummary | None
    revenue: ArmSummary | None


@dataclass(frozen=True)
class GroupReport:
    """One holdout group: its arms (treated and held out, or an experiment's), their
    metrics and lifts against the control arm, and the SRM check."""

    group: str  # "global control" | "campaign save" | "experiment save-channel"
    campaign: str | None
    #: The share held out (an experiment's: its control arm's): the configured one, else
    #: the one the log names.
    percent: float
    customers: dict[str, int]
    #: conversion, retention and (when there is revenue) revenue; empty below 2 per arm.
    metrics: tuple[MetricReport, ...]
    srm: SRMResult | None
    #: Per metric, the lift in every segment (stage) with Holm-adjusted p-values.
    segments: dict[str, SegmentBreakdown] | None
    decisions: int  # the group's decisions up to as_of
    repeats: int  # later decisions of accounts already counted
    pending: int  # accounts whose first decision's window had not elapsed by as_of
    notes: tuple[str, ...] = ()
    #: The policy experiment's id (None: a holdout group).
    experiment: str | None = None
    #: The arms, treatments first (in the policy's order) and the control last.
    arms: tuple[str, ...] = (TREATED, HELD_OUT)
    #: The arm every other is compared against.
    control: str = HELD_OUT
    #: Each arm's expected share in percent (what the SRM check uses); empty when unknown.
    percents: dict[str, float] = field(default_factory=dict)
    #: Per metric with a configured τ, each treatment arm's always-valid test.
    sequential: tuple[Monitoring, ...] = ()

    def monitoring(self, name: str, arm: str | None = None) -> Monitoring | None:
        """Metric *name*'s always-valid test of *arm* (by default the first treatment arm)."""
        found = [m for m in self.sequential if m.metric == name]
        if arm is None:
            return found[0] if found else None
        return next((m for m in found if m.treatment == arm), None)

    def metric(self, name: str) -> MetricReport | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def lift(self, name: str, arm: str | None = None) -> Lift | None:
        """Metric *name*'s lift of *arm* (by default the first treatment arm) over the control."""
        found = self.metric(name)
        if found is None or not found.lifts:
            return None
        if arm is None:
            return found.lifts[0]
        return next((lift for lift in found.lifts if lift.treatment == arm), None)

    def rows(self) -> list[ArmRow]:
        """The treatment arms first, then the control (held out)."""

        def summary(metric: str, arm: str) -> ArmSummary | None:
            found = self.metric(metric)
            return next((a for a in found.arms if a.arm == arm), None) if found else None

        return [
            ArmRow(
                arm,
                self.customers.get(arm, 0),
                summary("conversion", arm),
                summary("retention", arm),
                summary("revenue", arm),
            )
            for arm in self.arms
        ]

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = _clean(
            {
                "group": self.group,
                "campaign": self.campaign,
                "percent": self.percent,
                "customers": self.customers,
                "metrics": [m.as_dict() for m in self.metrics],
                "srm": self.srm.as_dict() if self.srm else None,
                "segments": (
                    {k: v.as_dict() for k, v in self.segments.items()}
                    if self.segments is not None
                    else None
                ),
                "decisions": self.decisions,
                "repeats": self.repeats,
                "pending": self.pending,
                "notes": list(self.notes),
                "experiment": self.experiment,
                "arms": list(self.arms),
                "control": self.control,
                "percents": self.percents,
                "sequential": [m.as_dict() for m in self.sequential],
            }
        )
        return found


@dataclass(frozen=True)
class ExperimentReport:
    """Every holdout group in the decision log, as of a time."""

    as_of: dt.datetime
    window: dt.timedelta
    groups: tuple[GroupReport, ...]
    notes: tuple[str, ...] = field(default=())

    def group(self, name: str) -> GroupReport:
        found = next((g for g in self.groups if g.group == name), None)
        if found is None:
            raise KeyError(f"no holdout group {name!r}; groups: {[g.group for g in self.groups]}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": self.window.total_seconds() / 86400,
            "groups": [g.as_dict() for g in self.groups],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class _Logged:
    decision_id: str
    account_id: str
    decided_at: dt.datetime
    cycle_id: str
    arm: str
    group: str
    campaign: str | None
    percent: float | None
    #: In the global control's other arm because a campaign's check says so.
    implied: bool = False
    #: The customer's stage when decided for, from the logged assignment (None in
    #: logs written before decisions recorded it).
    stage: str | None = None
    #: A policy experiment's id (its arm is *arm*), and whether the arm was held out.
    experiment: str | None = None
    held: bool = False
    #: What the decision logged about the customer before it (CUPED's covariates):
    #: the churn probability and the MRR then.
    risk: float | None = None
    mrr: float | None = None


def _number(scores: Any, name: str) -> float | None:
    value = scores.get(name) if isinstance(scores, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _placements(row: Mapping[str, Any]) -> list[_Logged]:
    """The (group, arm) pairs one decision belongs to, from its holdout check."""
    checks = orjson.loads(row["guardrails"] or "[]")
    check = next((c for c in checks if c.get("guardrail") == "holdout"), None)
    if check is None:
        return []
    detail, verdict, status = str(check.get("detail", "")), check.get("verdict"), row["status"]

    assignment = orjson.loads(row["experiment"]) if row.get("experiment") else {}
    stage = assignment.get("stage") if isinstance(assignment, dict) else None
    scores = orjson.loads(row["scores"]) if row.get("scores") else {}
    risk, mrr = (_number(scores, "churn_probability"), _number(scores, "mrr"))

    def logged(
        arm: str,
        group: str,
        campaign: str | None,
        percent: str | None,
        implied: bool = False,
        experiment: str | None = None,
        held: bool = False,
    ) -> _Logged:
        return _Logged(
            row["id"], row["account_id"], row["decided_at"], row["cycle_id"], arm, group,
            campaign, float(percent) if percent is not None else None, implied,
            stage if isinstance(stage, str) else None, experiment, held, risk, mrr,
        )  # fmt: skip

    group = check.get("group")
    if isinstance(group, str):  # logged with its group (older logs: parsed from the wording)
        percent = check.get("percent")
        shown = None if percent is None else str(percent)
        if group.startswith(EXPERIMENT_PREFIX):
            name = group.removeprefix(EXPERIMENT_PREFIX)
            arm = check.get("arm")
            if arm is None and isinstance(assignment, dict):
                arm = assignment.get("arm")
            held = verdict == "hold" and status == "holdout"
            if not isinstance(arm, str) or not (
                held or (verdict == "pass" and status in _TREATED_STATUSES)
            ):
                return []
            return [
                logged(arm, f"{_EXPERIMENT}{name}", None, shown, experiment=name, held=held),
                # outside the global control: its treated arm (see the module doc)
                logged(TREATED, _GLOBAL, None, None, implied=True),
            ]
        if group == GLOBAL:
            if verdict == "hold" and status == "holdout":
                return [logged(HELD_OUT, _GLOBAL, None, shown)]
            if verdict == "pass" and status in _TREATED_STATUSES:
                return [logged(TREATED, _GLOBAL, None, None)]
            return []
        name = group.removeprefix(CAMPAIGN_PREFIX)
        if verdict == "hold" and status == "holdout":
            arm = HELD_OUT
        elif verdict == "pass" and status in _TREATED_STATUSES:
            arm = TREATED
        else:
            return []
        # outside the global control: its treated arm (see the module doc)
        return [
            logged(arm, f"campaign {name}", name, shown),
            logged(TREATED, _GLOBAL, None, None, implied=True),
        ]
    if verdict == "hold" and status == "holdout":
        if match := _GLOBAL_HOLD.match(detail):
            return [logged(HELD_OUT, _GLOBAL, None, match["percent"])]
        if match := _CAMPAIGN_HOLD.match(detail):
            name = match["campaign"]
            return [
                logged(HELD_OUT, f"campaign {name}", name, match["percent"]),
                # outside the global control: its other arm (see the module doc)
                logged(TREATED, _GLOBAL, None, None, implied=True),
            ]
    if verdict == "pass" and status in _TREATED_STATUSES:
        if _GLOBAL_PASS.match(detail):
            return [logged(TREATED, _GLOBAL, None, None)]
        if match := _CAMPAIGN_PASS.match(detail):
            name = match["campaign"]
            return [
                logged(TREATED, f"campaign {name}", name, match["percent"]),
                # outside the global control too, when that was on in this cycle
                logged(TREATED, _GLOBAL, None, None, implied=True),
            ]
    return []


def holdout_rows(
    project: Project, as_of: dt.datetime, *columns: Column[Any]
) -> list[dict[str, Any]]:
    """The logged decisions up to *as_of* that a holdout group placed (treated or held
    out), oldest first: what :func:`_placements` reads, and the other *columns* asked for."""
    query = (
        select(
            decisions.c.id,
            decisions.c.account_id,
            decisions.c.decided_at,
            decisions.c.cycle_id,
            decisions.c.status,
            decisions.c.guardrails,
            decisions.c.experiment,
            decisions.c.scores,
            *columns,
        )
        .where(decisions.c.status.in_([*_TREATED_STATUSES, "holdout"]))
        .where(decisions.c.decided_at <= as_of)
        .where(decisions.c.guardrails.contains("holdout"))
        .order_by(decisions.c.decided_at, decisions.c.id)
    )
    with project.store.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(query)]


def _read_log(project: Project, as_of: dt.datetime) -> list[_Logged]:
    rows = holdout_rows(project, as_of)
    placed = [p for row in rows for p in _placements(row)]
    if project.config.decide.holdouts.global_control_percent > 0:
        return placed
    # off now: a campaign's customers are in the global comparison only from the cycles
    # that show it was on then (an API call is a cycle of one, so this is not the default)
    global_cycles = {p.cycle_id for p in placed if p.group == _GLOBAL and not p.implied}
    return [p for p in placed if not p.implied or p.cycle_id in global_cycles]


def _revenue(
    warehouse: Warehouse, wanted: list[tuple[str, str, dt.datetime]], window: dt.timedelta
) -> dict[str, float] | None:
    """The Invoice Paid amounts in each decision's window; None when there are none at all."""
    if not wanted or not warehouse.lake.has_events():
        return None
    events = attributed_events(warehouse)
    start = min(at for _, _, at in wanted)
    end = max(at for _, _, at in wanted) + window
    events = events.filter(
        (events.event == "Invoice Paid")
        & events.account_id.isin(sorted({a for _, a, _ in wanted}))
        & (events.timestamp >= ibis.literal(start, "timestamp('UTC')"))
        & (events.timestamp < ibis.literal(end, "timestamp('UTC')"))
    )
    rows = warehouse.backend.to_pyarrow(
        events.select("account_id", "timestamp", "properties")
    ).to_pylist()
    if not rows:
        return None
    paid: dict[str, list[tuple[dt.datetime, float]]] = {}
    for row in rows:
        try:
            amount = float(json.loads(row["properties"] or "{}").get("amount") or 0.0)
        except (ValueError, AttributeError, TypeError):
            continue
        paid.setdefault(row["account_id"], []).append((row["timestamp"], amount))
    return {
        decision: sum(a for at, a in paid.get(account, []) if decided <= at < decided + window)
        for decision, account, decided in wanted
    }


def _configured_percent(project: Project, campaign: str | None) -> float | None:
    holdouts = project.config.decide.holdouts
    if campaign is None:
        return holdouts.global_control_percent or None
    found = holdouts.campaigns.get(campaign)
    return float(found) if found else None


def _first_ready(
    placed: list[_Logged], as_of: dt.datetime, window: dt.timedelta
) -> tuple[dict[str, _Logged], list[_Logged]]:
    """Each account's first placement, and those of them whose window elapsed by *as_of*."""
    first: dict[str, _Logged] = {}
    for p in placed:  # in time order: the first decision per account wins
        first.setdefault(p.account_id, p)
    return first, [p for p in first.values() if p.decided_at + window <= as_of]


@dataclass(frozen=True, slots=True)
class _Reading:
    """How every group of one report is read: outcomes up to *as_of* within *window*
    after each decision, broken down by *segments* (None: the logged stage), CUPED or not."""

    as_of: dt.datetime
    window: dt.timedelta
    segments: Mapping[str, str] | None
    cuped: bool


def _covariates(ready: list[_Logged], notes: list[str]) -> dict[str, np.ndarray]:
    """CUPED's pre-decision covariates: the churn probability the decision logged for
    retention and conversion, the MRR it logged for revenue — each only when every
    customer has it (the lifts are then adjusted; the arm summaries stay raw)."""
    found = {}
    for metrics, values in (
        (("retention", "conversion"), [p.risk for p in ready]),
        (("revenue",), [p.mrr for p in ready]),
    ):
        if ready and all(v is not None for v in values) and len(set(values)) > 1:
            for metric in metrics:
                found[metric] = np.array(values, np.float64)
    if not found and ready:
        notes.append(
            "no CUPED: the decisions logged no varying churn probability or MRR to adjust by"
        )
    return found


def _monitoring(
    project: Project,
    values: Mapping[str, np.ndarray],
    labels: np.ndarray,
    arms: tuple[str, ...],
    ready: list[_Logged],
    window: dt.timedelta,
    notes: list[str],
) -> tuple[Monitoring, ...]:
    """Each metric's always-valid test per treatment arm of *arms* (the control last),
    looked at on every day on which some customer's window ended (module doc)."""
    settings = project.config.measure.sequential
    looks = np.array([(p.decided_at + window).date() for p in ready], dtype=object)
    *treatments, control = arms
    kind = {"revenue": MetricKind.CONTINUOUS}
    found: list[Monitoring] = []
    for metric, y in values.items():
        tau = getattr(settings, metric)
        if tau is None:
            notes.append(
                f"no always-valid test of {metric}: set measure.sequential.{metric} to the "
                "effect worth detecting"
            )
            continue
        results = [
            sequential_test(
                y, labels, looks, mixture_sd=tau, control=control, treatment=arm,
                kind=kind.get(metric, MetricKind.BINARY), alpha=settings.alpha,
            )
            for arm in treatments
        ]  # fmt: skip
        adjusted: list[float | None] = [None] * len(results)
        if len(results) > 1:
            last = [r.looks[-1].p_value for r in results]
            adjusted = [float(p) for p in adjust_pvalues(last, Correction.HOLM)]
        found.extend(Monitoring(metric, r, a) for r, a in zip(results, adjusted, strict=True))
    return tuple(found)


def _metrics(
    project: Project,
    ready: list[_Logged],
    control: str,
    reading: _Reading,
    notes: list[str],
) -> tuple[tuple[MetricReport, ...], dict[str, SegmentBreakdown] | None, tuple[Monitoring, ...]]:
    """Every metric of *ready*'s arms against *control*, their always-valid tests, and
    their breakdown by stage."""
    labels = np.array([p.arm for p in ready], dtype=object)
    wanted = [(p.decision_id, p.account_id, p.decided_at) for p in ready]
    window, segments = reading.window, reading.segments
    outcomes = decision_outcomes(project.warehouse, wanted, window=window)
    kinds = [{o.kind for o in outcomes[p.decision_id]} for p in ready]
    values = {
        "conversion": np.array([float("converted" in k) for k in kinds]),
        "retention": np.array([float("churned" not in k) for k in kinds]),
    }
    revenue = _revenue(project.warehouse, wanted, window)
    if revenue is None:
        notes.append("no Invoice Paid events in any window: no revenue per customer")
    else:
        values["revenue"] = np.array([revenue[p.decision_id] for p in ready])
    kind = {"revenue": MetricKind.CONTINUOUS}
    covariates = _covariates(ready, notes) if reading.cuped else {}
    metrics = tuple(
        analyze(
            y, labels, control=control, metric=metric,
            kind=kind.get(metric, MetricKind.BINARY), covariate=covariates.get(metric),
        )
        for metric, y in values.items()
    )  # fmt: skip
    arms = (*(lift.treatment for lift in metrics[0].lifts), control)
    monitoring = _monitoring(project, values, labels, arms, ready, window, notes)
    logged_stages = segments is None and all(p.stage is not None for p in ready)
    if segments is None and not logged_stages:
        notes.append(_NO_STAGE)
        return metrics, None, monitoring
    stage = np.array(
        [p.stage if segments is None else segments.get(p.account_id) for p in ready],
        dtype=object,
    )
    breakdown = {
        metric: segment_breakdown(
            y, labels, stage, control=control,
            kind=kind.get(metric, MetricKind.BINARY), correction=Correction.HOLM,
        )
        for metric, y in values.items()
    }  # fmt: skip
    return metrics, breakdown, monitoring


def _group(
    project: Project,
    name: str,
    placed: list[_Logged],
    reading: _Reading,
) -> GroupReport:
    campaign = placed[0].campaign
    first, ready = _first_ready(placed, reading.as_of, reading.window)
    notes: list[str] = []
    logged = {p.percent for p in placed if p.percent is not None}
    configured = _configured_percent(project, campaign)
    percent = configured if configured is not None else (max(logged) if logged else 0.0)
    if logged and logged != {percent}:
        notes.append(
            f"the log names {sorted(logged)} % held out, the configuration {percent:g} %; "
            "the SRM check uses the configuration"
        )
    labels = np.array([p.arm for p in ready], dtype=object)
    customers = {arm: int((labels == arm).sum()) for arm in (TREATED, HELD_OUT)}
    srm = None
    if ready and 0 < percent < 100:
        srm = srm_check(customers, {TREATED: 100 - percent, HELD_OUT: percent})
    metrics: tuple[MetricReport, ...] = ()
    breakdown: dict[str, SegmentBreakdown] | None = None
    monitoring: tuple[Monitoring, ...] = ()
    if min(customers.values()) < 2:
        notes.append("fewer than 2 customers in an arm: no metrics yet")
    else:
        metrics, breakdown, monitoring = _metrics(project, ready, HELD_OUT, reading, notes)
    return GroupReport(
        group=name,
        campaign=campaign,
        percent=percent,
        customers=customers,
        metrics=metrics,
        srm=srm,
        segments=breakdown,
        decisions=len(placed),
        repeats=len(placed) - len(first),
        pending=len(first) - len(ready),
        notes=tuple(notes),
        percents={TREATED: 100 - percent, HELD_OUT: percent} if percent else {},
        sequential=monitoring,
    )


def _experiment_design(
    placed: list[_Logged], configured: RuleExperiment | None, notes: list[str]
) -> tuple[tuple[str, ...], str | None, dict[str, float]]:
    """An experiment group's arms (treatments, then the control), its control arm and each
    arm's percent: the policy's while it has the experiment and every logged arm, else
    what the log names (each arm's latest logged percent)."""
    logged: dict[str, float] = {}
    seen: dict[str, set[float]] = {}
    for p in placed:  # in time order: the latest wins
        if p.percent is not None:
            logged[p.arm] = p.percent
            seen.setdefault(p.arm, set()).add(p.percent)
    observed = {p.arm for p in placed}
    if configured is not None and observed <= set(configured.arms):
        percents = configured.percents
        changed = sorted(a for a in logged if not math.isclose(logged[a], percents[a]))
        if changed or any(len(v) > 1 for v in seen.values()):
            said = ", ".join(f"{a} {sorted(v)}" for a, v in sorted(seen.items()))
            notes.append(
                f"the log names the arms' percents {said}, the policy "
                + ", ".join(f"{a} {v:.3g}" for a, v in percents.items())
                + "; the SRM check uses the policy"
            )
        return (*configured.treatments, configured.control), configured.control, percents
    if configured is None:
        notes.append(
            "the experiment is not in the loaded policies: the SRM check uses the percents "
            "the log names"
        )
    else:
        gone = ", ".join(sorted(observed - set(configured.arms)))
        notes.append(
            f"the log has arms the policy's experiment no longer has ({gone}): the SRM check "
            "uses the percents the log names"
        )
    held = sorted({p.arm for p in placed if p.held})
    control = held[0] if held else None
    arms = (*sorted(observed - {control}), *([control] if control is not None else []))
    return arms, control, {a: logged[a] for a in arms if a in logged}


def _experiment_group(
    project: Project,
    name: str,
    placed: list[_Logged],
    configured: RuleExperiment | None,
    reading: _Reading,
) -> GroupReport:
    """A policy experiment's arms against its control arm (see the module doc)."""
    experiment = placed[0].experiment
    first, ready = _first_ready(placed, reading.as_of, reading.window)
    notes: list[str] = []
    arms, control, percents = _experiment_design(placed, configured, notes)
    customers = {arm: sum(1 for p in ready if p.arm == arm) for arm in arms}
    srm = None
    if ready and len(percents) == len(arms) >= 2:
        srm = srm_check(customers, percents)
    elif ready:
        notes.append("the log does not name every arm's percent: no SRM check")
    metrics: tuple[MetricReport, ...] = ()
    breakdown: dict[str, SegmentBreakdown] | None = None
    monitoring: tuple[Monitoring, ...] = ()
    few = [arm for arm in arms if customers[arm] < 2]
    if control is None or control in few or len(few) >= len(arms) - 1:
        notes.append("fewer than 2 customers in the control arm or every other: no metrics yet")
    else:
        if few:
            notes.append(f"fewer than 2 customers in {', '.join(few)}: left out of the lifts")
        metrics, breakdown, monitoring = _metrics(
            project, [p for p in ready if p.arm not in few], control,
            reading, notes,
        )  # fmt: skip
    return GroupReport(
        group=name,
        campaign=None,
        percent=percents.get(control, 0.0) if control is not None else 0.0,
        customers=customers,
        metrics=metrics,
        srm=srm,
        segments=breakdown,
        decisions=len(placed),
        repeats=len(placed) - len(first),
        pending=len(first) - len(ready),
        notes=tuple(notes),
        experiment=experiment,
        arms=arms,
        control=control or "",
        percents=percents,
        sequential=monitoring,
    )


def _policy_experiments(project: Project, notes: list[str]) -> dict[str, RuleExperiment]:
    """The loaded policies' experiments; none (and a note) when the policies do not load."""
    directory = Path(project.config.decide.policies_dir)
    if not directory.is_absolute():
        directory = project.root / directory
    try:
        return load_policies(directory).experiments
    except (PolicyError, ConfigError) as error:
        first = str(error).splitlines()[0]
        notes.append(f"the policies do not load ({first}): experiments use the logged percents")
        return {}


def experiment_report(
    project: Project,
    *,
    as_of: dt.datetime,
    window: dt.timedelta | None = None,
    segments: Mapping[str, str] | None = None,
    cuped: bool = True,
) -> ExperimentReport:
    """Treated against held out, for every holdout group in the decision log, and every
    policy experiment's arms against its control (module doc).

    *window* defaults to ``decide.attribution_window``. *segments* maps an account
    to a segment (its stage, say) for a per-segment breakdown with Holm-adjusted
    p-values; by default the stage each decision logged with its assignment.
    With *cuped* the lifts are adjusted by the churn probability (retention,
    conversion) and MRR (revenue) each decision logged before it acted (CUPED);
    the arm summaries stay raw.
    """
    if window is None:
        window = parse_duration(project.config.decide.attribution_window)
    reading = _Reading(as_of, window, segments, cuped)
    placed = _read_log(project, as_of)
    by_group: dict[str, list[_Logged]] = {}
    for p in placed:
        by_group.setdefault(p.group, []).append(p)
    order = sorted(by_group, key=lambda g: (g != _GLOBAL, g))
    notes: list[str] = []
    experiments = (
        _policy_experiments(project, notes) if any(g.startswith(_EXPERIMENT) for g in order) else {}
    )
    groups = []
    for g in order:
        if not g.startswith(_EXPERIMENT):
            found = _group(project, g, by_group[g], reading)
        else:
            configured = experiments.get(g.removeprefix(_EXPERIMENT))
            found = _experiment_group(project, g, by_group[g], configured, reading)
        groups.append(found)
    if not groups:
        notes.append("no decision in the log carries a holdout check")
    return ExperimentReport(as_of, window, tuple(groups), tuple(notes))


#: Where the latest report is kept for the API, under the lake (shared by every process).
SAVED_REPORT = Path("reports") / "experiments.json"


def save_report(project: Project, report: ExperimentReport, *, computed_at: dt.datetime) -> Path:
    """Keep *report* as the latest, for ``GET /v1/reports/experiments``; atomically."""
    path = project.lake.root / SAVED_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**report.as_dict(), "computed_at": computed_at.isoformat()}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(body))
    os.replace(temporary, path)
    return path


def load_saved_report(project: Project) -> dict[str, Any]:
    """The latest report :func:`save_report` kept; NotFoundError when there is none."""
    path = project.lake.root / SAVED_REPORT
    try:
        found: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(
            "no experiments report has been computed yet",
            hint="run `tenure report experiments` (a scheduled job keeps it fresh)",
        ) from None
    return found
