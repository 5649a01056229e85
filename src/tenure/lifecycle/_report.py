"""The stage report: how many accounts are where, how they move, and the stage KPIs.

Stage counts are at ``as_of``. Durations, conversions and the transition matrix
cover every stay that began before ``as_of`` (the whole history the lake holds).
The KPIs cover the period ``[as_of − period_days, as_of)``:

* **lead qualification**: of leads (``lead_id``, else the account) created in the
  period, the share qualified by ``as_of``, and the median days to qualify;
* **sales**: opportunities (``opportunity_id``, else the account) created in the
  period; of those *closed* in the period, the win rate, the mean won ``amount``
  and the sales cycle (days from creation to the first won or lost event). Deal
  velocity is the expected won amount per day::

      velocity = pipeline × win rate × mean won amount / mean cycle days

  where the pipeline is the number of opportunities open on an average day of the
  period (opportunity-days open in the period / period days). By Little's law the
  pipeline is about the rate of new opportunities × the cycle length, so in a
  steady state the velocity is close to the amount actually won per day.

* **onboarding**: time to value is the median days from a new customer's first
  purchase (in the period) to its first value event (``Feature Used``) at or after
  it. Milestone completion is the share of new customers whose onboarding window
  ended by ``as_of`` that did every ``onboarding_milestones`` event within it; with
  no milestones configured it is :class:`Unavailable`.
* **retention** (customers with MRR at the period start): expansion rate (MRR now
  above MRR then), GRR (Σ min(MRR now, MRR then) / Σ MRR then), NRR (Σ MRR now /
  Σ MRR then). An account's MRR at a time is the sum of the latest ``mrr`` of each
  subscription active then (0 once canceled). Renewal rate: of the renewal dates
  (spell start + k × term, for terms longer than the renewal window) in the period
  that were due — the account had not churned by the previous one — the share not
  churned before the date + ``renewal_grace_days``.

Health and feature adoption per stage are the means over the accounts currently in
the stage of ``health.health`` and ``features_account.feature_breadth_90d``, when
those tables exist (they hold their own latest build, which may be of another date).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis

from tenure.config import LifecycleSettings
from tenure.lifecycle._history import (
    account_events,
    first_touches,
    history_from_events,
    milestone_events,
    spells,
)
from tenure.lifecycle._kpis import (
    LeadKPIs,
    OnboardingKPIs,
    RetentionKPIs,
    SalesKPIs,
    days_between,
    fetch_rows,
    fraction,
    lead_kpis,
    number_or_none,
    onboarding_kpis,
    retention_kpis,
    sales_kpis,
)
from tenure.lifecycle._stages import FUNNEL_NEXT, Stage

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

    from tenure.warehouse import Warehouse

__all__ = ["StageReport", "StageStats", "Transition", "stage_report"]

#: Written by :func:`tenure.models.health.build_health` (read here by name only:
#: lifecycle sits left of models in the pipeline).
_HEALTH_TABLE = "health"
_FEATURES_TABLE = "features_account"
_BREADTH = "feature_breadth_90d"


@dataclass(frozen=True, slots=True)
class StageStats:
    stage: Stage
    #: Accounts in the stage at ``as_of``.
    current: int
    #: Accounts that ever entered it.
    entered: int
    #: Stays that ended before ``as_of``, and their mean and median length in days.
    completed: int
    mean_days: float | None
    median_days: float | None
    #: The stages that count as reaching the next step (:data:`FUNNEL_NEXT`).
    next_stages: tuple[Stage, ...]
    #: Accounts that entered the stage and later reached a next stage (before any churn).
    converted: int
    #: converted / entered; ``None`` for a stage without a next stage or never entered.
    conversion: float | None
    #: Mean health score and mean distinct features used (90 days) of current accounts.
    health: float | None
    feature_breadth: float | None


@dataclass(frozen=True, slots=True)
class Transition:
    source: Stage
    target: Stage
    count: int


@dataclass(frozen=True, slots=True)
class StageReport:
    as_of: dt.datetime
    period_start: dt.datetime
    period_days: int
    accounts: int
    stages: tuple[StageStats, ...]
    transitions: tuple[Transition, ...]
    leads: LeadKPIs
    sales: SalesKPIs
    onboarding: OnboardingKPIs
    retention: RetentionKPIs

    def stage(self, stage: Stage | str) -> StageStats:
        wanted = Stage(stage)
        return next(s for s in self.stages if s.stage is wanted)

    def transition(self, source: Stage | str, target: Stage | str) -> int:
        """How many stays of *source* were followed by *target*."""
        a, b = Stage(source), Stage(target)
        return sum(t.count for t in self.transitions if t.source is a and t.target is b)


def stage_report(
    warehouse: Warehouse,
    settings: LifecycleSettings | None = None,
    *,
    as_of: dt.datetime,
    period_days: int = 365,
) -> StageReport:
    """Stage counts, durations, conversions, transitions and KPIs (module docs)."""
    if period_days < 1:
        raise ValueError(f"period_days must be at least 1, got {period_days}")
    settings = settings if settings is not None else LifecycleSettings()
    backend = warehouse.backend
    start = as_of - dt.timedelta(days=period_days)
    events = account_events(warehouse, as_of=as_of)
    first = first_touches(warehouse, events, settings, as_of=as_of)
    with milestone_events(events, settings).cache() as milestones:
        history = history_from_events(milestones, settings, as_of=as_of, first_seen=first)
        with history.cache() as stays:
            stages = _stage_stats(warehouse, stays)
            transitions = _transitions(backend, stays)
            accounts = int(backend.execute(stays.account_id.nunique()))
        spell_table = spells(milestones, settings)
        leads = lead_kpis(backend, milestones, settings, start)
        sales = sales_kpis(backend, milestones, settings, start, as_of)
        onboarding = onboarding_kpis(backend, events, spell_table, settings, start, as_of)
        retention = retention_kpis(backend, milestones, spell_table, settings, start, as_of)
    return StageReport(
        as_of=as_of,
        period_start=start,
        period_days=period_days,
        accounts=accounts,
        stages=stages,
        transitions=transitions,
        leads=leads,
        sales=sales,
        onboarding=onboarding,
        retention=retention,
    )


def _stage_stats(warehouse: Warehouse, stays: ir.Table) -> tuple[StageStats, ...]:
    backend = warehouse.backend
    current = stays.filter(stays.exited.isnull())
    counts = {r["stage"]: r["n"] for r in fetch_rows(backend, current.stage.value_counts(name="n"))}
    per_stage = stays.group_by("stage").aggregate(n=stays.account_id.nunique())
    entered = {r["stage"]: r["n"] for r in fetch_rows(backend, per_stage)}
    done = stays.filter(stays.exited.notnull())
    done = done.mutate(days=days_between(done.exited, done.entered))
    durations = {
        r["stage"]: r
        for r in fetch_rows(
            backend,
            done.group_by("stage").aggregate(
                n=done.count(), mean=done.days.mean(), median=done.days.median()
            ),
        )
    }
    converted = {r["stage"]: r["n"] for r in fetch_rows(backend, _conversions(stays))}
    health = _current_means(warehouse, current, _HEALTH_TABLE, "account_id", "health")
    breadth = _current_means(warehouse, current, _FEATURES_TABLE, "entity_id", _BREADTH)
    out = []
    for stage in Stage:
        n_entered = int(entered.get(stage.value, 0))
        n_converted = int(converted.get(stage.value, 0))
        duration = durations.get(stage.value, {})
        out.append(
            StageStats(
                stage=stage,
                current=int(counts.get(stage.value, 0)),
                entered=n_entered,
                completed=int(duration.get("n", 0)),
                mean_days=number_or_none(duration.get("mean")),
                median_days=number_or_none(duration.get("median")),
                next_stages=FUNNEL_NEXT[stage],
                converted=n_converted,
                conversion=fraction(n_converted, n_entered) if FUNNEL_NEXT[stage] else None,
                health=health.get(stage.value),
                feature_breadth=breadth.get(stage.value),
            )
        )
    return tuple(out)


def _conversions(stays: ir.Table) -> ir.Table:
    """Per stage, the accounts with a stay followed by a next stage before any churn."""
    pairs = ibis.memtable(
        {
            "from_stage": [s.value for s, targets in FUNNEL_NEXT.items() for _ in targets],
            "to_stage": [t.value for targets in FUNNEL_NEXT.values() for t in targets],
        }
    )
    churns = stays.filter(stays.stage == Stage.CHURNED.value).select(
        churn_account="account_id", churned_at="entered"
    )
    with_churn = stays.left_join(
        churns,
        [stays.account_id == churns.churn_account, churns.churned_at > stays.entered],
    )
    bounded = with_churn.group_by(["account_id", "stage", "entered"]).aggregate(
        next_churn=with_churn.churned_at.min()
    )
    targeted = bounded.join(pairs, bounded.stage == pairs.from_stage)
    later = stays.select(later_account="account_id", later_stage="stage", later_at="entered")
    reached = targeted.join(
        later,
        [
            targeted.account_id == later.later_account,
            targeted.to_stage == later.later_stage,
            later.later_at > targeted.entered,
            targeted.next_churn.isnull() | (later.later_at < targeted.next_churn),
        ],
    )
    return reached.group_by("stage").aggregate(n=reached.account_id.nunique())


def _current_means(
    warehouse: Warehouse, current: ir.Table, table: str, key: str, column: str
) -> dict[str, float | None]:
    if not warehouse.has_table(table):
        return {}
    source = warehouse.table(table)
    if column not in source.columns or key not in source.columns:
        return {}
    values = source.select(value_account=source[key], value=source[column].cast("float64"))
    joined = current.join(values, current.account_id == values.value_account)
    means = joined.group_by("stage").aggregate(mean=joined.value.mean())
    rows = fetch_rows(warehouse.backend, means)
    return {r["stage"]: number_or_none(r["mean"]) for r in rows}


def _transitions(backend: BaseBackend, stays: ir.Table) -> tuple[Transition, ...]:
    following = ibis.window(group_by="account_id", order_by="entered")
    moves = stays.mutate(target=stays.stage.lead().over(following))
    moves = moves.filter(moves.target.notnull())
    counts = moves.group_by(["stage", "target"]).aggregate(n=moves.count())
    rows = fetch_rows(backend, counts.order_by(["stage", "target"]))
    return tuple(Transition(Stage(r["stage"]), Stage(r["target"]), int(r["n"])) for r in rows)
