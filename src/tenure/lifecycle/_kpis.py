"""The stage KPIs of a period: lead qualification, sales, onboarding, retention.

See :mod:`tenure.lifecycle._report` for the definitions; everything is computed
as Ibis aggregates over the milestone events and customer spells, and only the
final numbers are fetched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from tenure._event_values import json_number
from tenure.config import LifecycleSettings
from tenure.lifecycle._history import _TS, _prop

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

__all__ = [
    "LeadKPIs",
    "OnboardingKPIs",
    "RetentionKPIs",
    "SalesKPIs",
    "Unavailable",
    "days_between",
    "fetch_rows",
    "fraction",
    "lead_kpis",
    "mrr_at_points",
    "number_or_none",
    "onboarding_kpis",
    "retention_kpis",
    "sales_kpis",
]

_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A KPI that cannot be computed from the data, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class LeadKPIs:
    leads: int
    qualified: int
    qualification_rate: float | None
    median_days_to_qualify: float | None


@dataclass(frozen=True, slots=True)
class SalesKPIs:
    #: Opportunities created in the period.
    opportunities: int
    #: Opportunities open on an average day of the period.
    pipeline: float
    #: Opportunities closed in the period, by outcome.
    won: int
    lost: int
    win_rate: float | None
    mean_won_amount: float | None
    mean_cycle_days: float | None
    median_cycle_days: float | None
    #: Expected won amount per day (see the module documentation).
    deal_velocity: float | None


@dataclass(frozen=True, slots=True)
class OnboardingKPIs:
    #: Accounts whose first purchase fell in the period.
    new_customers: int
    #: Of those, how many used the product's value event since.
    reached_value: int
    median_time_to_value_days: float | None
    milestone_completion: float | Unavailable


@dataclass(frozen=True, slots=True)
class RetentionKPIs:
    #: Accounts with MRR above 0 at the period start.
    customers_at_start: int
    expanded: int
    expansion_rate: float | None
    renewals_due: int
    renewed: int
    renewal_rate: float | None
    mrr_start: float
    #: MRR now of the accounts counted in ``mrr_start`` (0 for those churned).
    mrr_now: float
    grr: float | None
    nrr: float | None


def fetch_rows(backend: BaseBackend, expr: ir.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = backend.to_pyarrow(expr).to_pylist()
    return rows


def _one(backend: BaseBackend, expr: ir.Table) -> dict[str, Any]:
    (row,) = fetch_rows(backend, expr)
    return row


def fraction(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def number_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def days_between(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return ((later.epoch_seconds() - earlier.epoch_seconds()) / _SECONDS_PER_DAY).cast("float64")


def _number(events: ir.Table, name: str) -> ir.FloatingValue:
    return json_number(events.properties.try_cast("json")[name])


def _first_per_key(events: ir.Table, names: list[str], key_property: str, column: str) -> ir.Table:
    chosen = events.filter(events.event.isin(names))
    chosen = chosen.mutate(key=ibis.coalesce(_prop(chosen, key_property), chosen.account_id))
    return chosen.group_by("key").aggregate(**{column: chosen.timestamp.min()})


def lead_kpis(
    backend: BaseBackend, events: ir.Table, settings: LifecycleSettings, start: dt.datetime
) -> LeadKPIs:
    created = _first_per_key(events, settings.lead_events, "lead_id", "created")
    qualified = _first_per_key(events, settings.qualified_events, "lead_id", "qualified")
    qualified = qualified.rename(qualified_key="key")
    leads = created.filter(created.created >= ibis.literal(start, _TS))
    joined = leads.left_join(
        qualified,
        [leads.key == qualified.qualified_key, qualified.qualified >= leads.created],
    )
    days = days_between(joined.qualified, joined.created)
    row = _one(
        backend,
        joined.aggregate(
            leads=joined.key.nunique(),
            qualified=joined.key.nunique(where=joined.qualified.notnull()),
            median=days.median(),
        ),
    )
    return LeadKPIs(
        leads=int(row["leads"]),
        qualified=int(row["qualified"]),
        qualification_rate=fraction(row["qualified"], row["leads"]),
        median_days_to_qualify=number_or_none(row["median"]),
    )


def _pipeline(
    backend: BaseBackend,
    created: ir.Table,
    closed: ir.Table,
    start: dt.datetime,
    as_of: dt.datetime,
) -> float:
    """Opportunities open on an average day of [start, as_of)."""
    ends = closed.select(end_key="key", closed_at="closed_at")
    spans = created.left_join(ends, created.key == ends.end_key)
    begin, stop = ibis.literal(start, _TS), ibis.literal(as_of, _TS)
    opened = (spans.created > begin).ifelse(spans.created, begin)
    shut = ibis.coalesce(spans.closed_at, stop)
    days = days_between(shut, opened)
    row = _one(backend, spans.aggregate(open_days=days.sum(where=days > 0)))
    open_days = float(row["open_days"] or 0.0)
    return open_days / ((as_of - start).total_seconds() / _SECONDS_PER_DAY)


def sales_kpis(
    backend: BaseBackend,
    events: ir.Table,
    settings: LifecycleSettings,
    start: dt.datetime,
    as_of: dt.datetime,
) -> SalesKPIs:
    begin = ibis.literal(start, _TS)
    created = _first_per_key(events, settings.opportunity_events, "opportunity_id", "created")
    won_events = events.filter(events.event.isin(settings.won_events))
    won_events = won_events.mutate(
        key=ibis.coalesce(_prop(won_events, "opportunity_id"), won_events.account_id),
        amount=_number(won_events, "amount"),
    )
    won = won_events.group_by("key").aggregate(
        won_at=won_events.timestamp.min(),
        amount=won_events.amount.argmin(won_events.timestamp),
    )
    lost = _first_per_key(events, settings.lost_events, "opportunity_id", "lost_at")
    closed = won.outer_join(lost, won.key == lost.key)
    closed = closed.select(
        key=ibis.coalesce(closed.key, closed.key_right),
        won_at=closed.won_at,
        lost_at=closed.lost_at,
        amount=closed.amount,
    )
    is_won = closed.won_at.notnull() & (closed.lost_at.isnull() | (closed.won_at <= closed.lost_at))
    closed = closed.mutate(
        is_won=is_won,
        closed_at=is_won.ifelse(closed.won_at, closed.lost_at),
    )
    closed_all = closed
    closed = closed.filter(closed.closed_at >= begin)
    created_at = created.rename(created_key="key")
    with_created = closed.left_join(created_at, closed.key == created_at.created_key)
    cycle = days_between(with_created.closed_at, with_created.created)
    cycle = (with_created.created <= with_created.closed_at).ifelse(cycle, ibis.null("float64"))
    row = _one(
        backend,
        with_created.aggregate(
            won=with_created.count(where=with_created.is_won),
            lost=with_created.count(where=~with_created.is_won),
            amount=with_created.amount.mean(where=with_created.is_won),
            mean_cycle=cycle.mean(),
            median_cycle=cycle.median(),
        ),
    )
    opened = int(backend.execute(created.filter(created.created >= begin).count()))
    pipeline = _pipeline(backend, created, closed_all, start, as_of)
    won_n, lost_n = int(row["won"]), int(row["lost"])
    win_rate = fraction(won_n, won_n + lost_n)
    amount, mean_cycle = number_or_none(row["amount"]), number_or_none(row["mean_cycle"])
    velocity = None
    if win_rate is not None and amount is not None and mean_cycle:
        velocity = pipeline * win_rate * amount / mean_cycle
    return SalesKPIs(
        opportunities=opened,
        pipeline=pipeline,
        won=won_n,
        lost=lost_n,
        win_rate=win_rate,
        mean_won_amount=amount,
        mean_cycle_days=mean_cycle,
        median_cycle_days=number_or_none(row["median_cycle"]),
        deal_velocity=velocity,
    )


_NO_MILESTONES = (
    "no onboarding milestone events are configured (lifecycle.onboarding_milestones); "
    "the event catalog, the built-in mappings and the simulator have none yet"
)


def onboarding_kpis(
    backend: BaseBackend,
    events: ir.Table,
    spell_table: ir.Table,
    settings: LifecycleSettings,
    start: dt.datetime,
    as_of: dt.datetime,
) -> OnboardingKPIs:
    purchases = spell_table.group_by("account_id").aggregate(purchased=spell_table.start.min())
    new = purchases.filter(purchases.purchased >= ibis.literal(start, _TS))
    used = events.filter(events.event.isin(settings.value_events)).select(
        used_account="account_id", used_at="timestamp"
    )
    joined = new.left_join(
        used, [new.account_id == used.used_account, used.used_at >= new.purchased]
    )
    first_use = joined.group_by(["account_id", "purchased"]).aggregate(used_at=joined.used_at.min())
    ttv = days_between(first_use.used_at, first_use.purchased)
    row = _one(
        backend,
        first_use.aggregate(
            new=first_use.count(),
            reached=first_use.count(where=first_use.used_at.notnull()),
            median=ttv.median(),
        ),
    )
    completion = _milestone_completion(backend, events, new, settings, as_of)
    return OnboardingKPIs(
        new_customers=int(row["new"]),
        reached_value=int(row["reached"]),
        median_time_to_value_days=number_or_none(row["median"]),
        milestone_completion=completion,
    )


def _milestone_completion(
    backend: BaseBackend,
    events: ir.Table,
    new: ir.Table,
    settings: LifecycleSettings,
    as_of: dt.datetime,
) -> float | Unavailable:
    milestones = settings.onboarding_milestones
    if not milestones:
        return Unavailable(_NO_MILESTONES)
    window = ibis.interval(days=settings.onboarding_days)
    finished = new.filter(new.purchased + window <= ibis.literal(as_of, _TS))
    done = events.filter(events.event.isin(milestones)).select(
        done_account="account_id", done_event="event", done_at="timestamp"
    )
    joined = finished.left_join(
        done,
        [
            finished.account_id == done.done_account,
            done.done_at >= finished.purchased,
            done.done_at < finished.purchased + window,
        ],
    )
    per_account = joined.group_by("account_id").aggregate(kinds=joined.done_event.nunique())
    row = _one(
        backend,
        per_account.aggregate(
            eligible=per_account.count(),
            complete=per_account.count(where=per_account.kinds >= len(set(milestones))),
        ),
    )
    if not row["eligible"]:
        return Unavailable("no customer who bought in the period has finished onboarding yet")
    return float(row["complete"]) / float(row["eligible"])


def _mrr_at(events: ir.Table, settings: LifecycleSettings, at: dt.datetime) -> ir.Table:
    """Each account's MRR at *at*: the latest ``mrr`` of each subscription active then."""
    before = events.filter(events.timestamp < ibis.literal(at, _TS))
    before = before.mutate(
        sub_key=ibis.coalesce(_prop(before, "subscription_id"), ibis.literal(""))
    )
    starts = before.event.isin(settings.purchase_events)
    cancels = before.event.isin(settings.churn_events)
    state = before.group_by(["account_id", "sub_key"]).aggregate(
        started=before.timestamp.max(where=starts),
        canceled=before.timestamp.max(where=cancels),
    )
    # a start and a cancellation of one subscription at the same time leave it canceled
    active = state.filter(
        state.started.notnull() & (state.canceled.isnull() | (state.started > state.canceled))
    )
    priced = before.filter(before.event.isin(settings.mrr_events))
    priced = priced.mutate(mrr=_number(priced, settings.mrr_property))
    priced = priced.filter(priced.mrr.notnull())
    price = priced.group_by(["account_id", "sub_key"]).aggregate(
        mrr=priced.mrr.argmax(priced.timestamp)
    )
    joined = active.join(price, ["account_id", "sub_key"])
    return joined.group_by("account_id").aggregate(mrr=joined.mrr.sum())


def mrr_at_points(
    events: ir.Table, settings: LifecycleSettings, points: list[dt.datetime]
) -> ir.Table:
    """``account_id``, ``point``, ``mrr``: each account's MRR at each of *points*.

    The same rule as :func:`_mrr_at`, for many times in one expression: the
    subscription events are range-joined to the points (each point sees the
    events before it), rather than one query per point stacked in a union,
    whose depth grows with the number of points.
    """
    times = ibis.memtable(
        pa.table({"point": pa.array(sorted(set(points)), pa.timestamp("us", tz="UTC"))})
    )
    names = [*settings.purchase_events, *settings.churn_events, *settings.mrr_events]
    base = events.filter(events.event.isin(names))
    base = base.mutate(
        sub_key=ibis.coalesce(_prop(base, "subscription_id"), ibis.literal("")),
        mrr=_number(base, settings.mrr_property),
    )
    seen = base.join(times, base.timestamp < times.point)
    starts = seen.event.isin(settings.purchase_events)
    cancels = seen.event.isin(settings.churn_events)
    priced = seen.event.isin(settings.mrr_events) & seen.mrr.notnull()
    state = seen.group_by(["account_id", "sub_key", "point"]).aggregate(
        started=seen.timestamp.max(where=starts),
        canceled=seen.timestamp.max(where=cancels),
        mrr=seen.mrr.argmax(seen.timestamp, where=priced),
        priced=priced.any(),
    )
    # a start and a cancellation of one subscription at the same time leave it canceled
    active = state.filter(
        state.started.notnull()
        & (state.canceled.isnull() | (state.started > state.canceled))
        & state.priced
    )
    return active.group_by(["account_id", "point"]).aggregate(mrr=active.mrr.sum())


def retention_kpis(
    backend: BaseBackend,
    events: ir.Table,
    spell_table: ir.Table,
    settings: LifecycleSettings,
    start: dt.datetime,
    as_of: dt.datetime,
) -> RetentionKPIs:
    then = _mrr_at(events, settings, start)
    then = then.filter(then.mrr > 0)
    now = _mrr_at(events, settings, as_of).rename(now_account="account_id", now_mrr="mrr")
    joined = then.left_join(now, then.account_id == now.now_account)
    current = joined.now_mrr.fill_null(0.0)
    retained = (current < joined.mrr).ifelse(current, joined.mrr)
    row = _one(
        backend,
        joined.aggregate(
            customers=joined.count(),
            expanded=joined.count(where=current > joined.mrr),
            mrr_start=joined.mrr.sum(),
            mrr_now=current.sum(),
            retained=retained.sum(),
        ),
    )
    due, renewed = _renewals(backend, spell_table, settings, start, as_of)
    customers = int(row["customers"])
    mrr_start = float(row["mrr_start"] or 0.0)
    return RetentionKPIs(
        customers_at_start=customers,
        expanded=int(row["expanded"]),
        expansion_rate=fraction(row["expanded"], customers),
        renewals_due=due,
        renewed=renewed,
        renewal_rate=fraction(renewed, due),
        mrr_start=mrr_start,
        mrr_now=float(row["mrr_now"] or 0.0),
        grr=fraction(row["retained"], mrr_start),
        nrr=fraction(row["mrr_now"], mrr_start),
    )


def _renewals(
    backend: BaseBackend,
    spell_table: ir.Table,
    settings: LifecycleSettings,
    start: dt.datetime,
    as_of: dt.datetime,
) -> tuple[int, int]:
    s = spell_table.filter(
        spell_table.term_days.notnull() & (spell_table.term_days > settings.renewal_window_days)
    )
    horizon = ibis.coalesce(s.end, ibis.literal(as_of, _TS))
    span = days_between(horizon, s.start)
    s = s.mutate(k=ibis.range(1, (span / s.term_days).floor().cast("int64") + 2).unnest())
    grace = ibis.interval(days=settings.renewal_grace_days)
    due_at = s.start + (s.k * s.term_days).as_interval("D")
    previous = s.start + ((s.k - 1) * s.term_days).as_interval("D")
    dates = s.mutate(due_at=due_at, previous=previous)
    dates = dates.filter(
        (dates.due_at >= ibis.literal(start, _TS))
        & (dates.due_at < ibis.literal(as_of, _TS))
        & (dates.due_at > dates.term_known)
    )
    survived_previous = (dates.k == 1) | dates.end.isnull() | (dates.end >= dates.previous + grace)
    dates = dates.filter(survived_previous)
    renewed = dates.end.isnull() | (dates.end >= dates.due_at + grace)
    row = _one(backend, dates.aggregate(due=dates.count(), renewed=dates.count(where=renewed)))
    return int(row["due"]), int(row["renewed"])
