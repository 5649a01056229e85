"""Stage histories as Ibis expressions: milestones → stage intervals → contiguous stays.

An account's stages come from three layers of intervals, each derived from its
events before ``as_of``:

* **first touch** (the account's first event): ``prospect`` for ``prospect_days``,
  then ``unqualified`` for as long as nothing later outranks it;
* **sales**: each opportunity event starts ``opportunity``; a lost event that leaves
  no opportunity open (a running count of opened minus closed) starts ``lost``;
* **customer**: a *spell* runs from a purchase that gives the account an active
  subscription to the cancellation that leaves it none. Subscriptions are told
  apart by ``subscription_id`` (events without one are one subscription), so
  canceling one of two subscriptions, or a plan switch that cancels and starts at
  the same time, is no churn. A won opportunity while the account has no active
  subscription is a purchase too (the subscription that follows joins its spell).
  Within a spell: ``onboarding`` for ``onboarding_days``, ``established`` until
  ``established_until_days``, ``mature`` afterwards, and ``renewal`` in the
  ``renewal_window_days`` before each renewal date (spell start + k × term) when the
  term (from the first purchase event's billing interval, ``term_days``) is longer
  than the window. From a spell's end to the next purchase (a win-back, which starts
  onboarding again) the account is ``churned``.

Every rule reads only events before the time it decides about, so the history as
of an earlier time is today's history cut there: later events never rewrite it.
(That is why a won deal starts the spell at once rather than waiting to see
whether a subscription follows, and why a renewal window never opens before the
term is known.)

Where intervals overlap, :data:`~tenure.lifecycle.PRECEDENCE` decides. Every start
and end is a boundary; the stage at each boundary is the highest-precedence
interval covering it, and runs of the same stage merge into one stay. Because the
first-touch and customer layers, once begun, cover all later time, an account's
stays are contiguous and never overlap. Scheduled boundaries at or after
``as_of`` are not in the history: the last stay is open (``exited`` null).

Only range joins, window functions and ``unnest`` are used, so the expression
runs on Spark as well as DuckDB.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ibis

from tenure.config import LifecycleSettings
from tenure.features import attributed_events
from tenure.lifecycle._stages import CUSTOMER_STAGES, PRECEDENCE, Stage

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = [
    "HISTORY_TABLE",
    "STAGES_TABLE",
    "StageBuild",
    "account_events",
    "build_stages",
    "current_stages",
    "first_touches",
    "history_from_events",
    "milestone_events",
    "milestone_names",
    "spells",
    "stage_history",
]

HISTORY_TABLE = "stage_history"
STAGES_TABLE = "account_stages"

_SECONDS_PER_DAY = 86_400.0
_TS = "timestamp('UTC', 6)"
#: Order of an account's events: by time, then ``tie`` (openings and starts first), then id.
_ORDER = ("timestamp", "tie", "message_id")
_WON, _BEGIN, _CHURN = "won", "begin", "churn"
#: Priority of each stage: higher wins where intervals overlap.
_PRIORITY = {stage: len(PRECEDENCE) - rank for rank, stage in enumerate(PRECEDENCE)}


def _as_of(value: dt.datetime) -> ir.TimestampScalar:
    if value.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware (UTC), got {value!r}")
    return ibis.literal(value.astimezone(dt.UTC), _TS)


def account_events(warehouse: Warehouse, *, as_of: dt.datetime) -> ir.Table:
    """Attributed track events of accounts strictly before *as_of*.

    Columns: ``account_id``, ``message_id``, ``event``, ``timestamp``, ``properties``.
    """
    events = attributed_events(warehouse)
    events = events.filter(events.account_id.notnull() & (events.timestamp < _as_of(as_of)))
    return events.select("account_id", "message_id", "event", "timestamp", "properties")


def _first_seen(warehouse: Warehouse, as_of: dt.datetime) -> ir.Table:
    """Accounts' first events of any type (identify and group calls too)."""
    accounts = warehouse.table("accounts")
    accounts = accounts.filter(accounts.first_seen < _as_of(as_of))
    return accounts.select("account_id", first=accounts.first_seen)


def _prop(events: ir.Table, name: str) -> ir.StringValue:
    value = events.properties.try_cast("json")[name]
    text = ibis.coalesce(value.str, value.int.cast("string"), value.float.cast("string"))
    return text.nullif("")


def _earliest(a: ir.TimestampValue, b: ir.TimestampValue) -> ir.TimestampValue:
    """The earlier of two times where null means "never" (open)."""
    return ibis.cases(
        (a.isnull(), b),
        (b.isnull(), a),
        (a < b, a),
        else_=b,
    )


def _interval(
    account: ir.StringValue,
    start: ir.TimestampValue,
    end: ir.TimestampValue | None,
    stage: Stage,
) -> dict[str, ir.Value]:
    return {
        "account_id": account,
        "start": start.cast(_TS),
        "end": (ibis.null(_TS) if end is None else end.cast(_TS)),
        "priority": ibis.literal(_PRIORITY[stage], "int64"),
    }


def _first_touch_layer(
    events: ir.Table, settings: LifecycleSettings, first_seen: ir.Table | None
) -> ir.Table:
    touches = events
    if settings.first_touch_events:
        touches = events.filter(events.event.isin(settings.first_touch_events))
    first = touches.select("account_id", first=touches.timestamp.cast(_TS))
    if first_seen is not None and not settings.first_touch_events:
        first = first.union(first_seen.select("account_id", first=first_seen.first.cast(_TS)))
    first = first.group_by("account_id").aggregate(first=first.first.min())
    window_end = first.first + ibis.interval(days=settings.prospect_days)
    prospect = first.select(**_interval(first.account_id, first.first, window_end, Stage.PROSPECT))
    unqualified = first.select(**_interval(first.account_id, window_end, None, Stage.UNQUALIFIED))
    return prospect.union(unqualified)


def _sales_layer(events: ir.Table, settings: LifecycleSettings) -> ir.Table:
    opening = settings.opportunity_events
    closing = [*settings.lost_events, *settings.won_events]
    sales = events.filter(events.event.isin([*opening, *closing]))
    sales = sales.mutate(
        delta=sales.event.isin(opening).ifelse(1, -1),
        # at equal times an opening is counted before a closing
        tie=sales.event.isin(opening).ifelse(0, 1),
        is_lost=sales.event.isin(settings.lost_events),
    )
    running = ibis.cumulative_window(group_by="account_id", order_by=_ORDER)
    sales = sales.mutate(still_open=sales.delta.sum().over(running))
    opens = sales.delta == 1
    lost = sales.is_lost & (sales.still_open <= 0)
    markers = sales.filter(opens | lost).mutate(
        priority=opens.ifelse(_PRIORITY[Stage.OPPORTUNITY], _PRIORITY[Stage.LOST])
    )
    following = ibis.window(group_by="account_id", order_by=_ORDER)
    return markers.select(
        account_id=markers.account_id,
        start=markers.timestamp.cast(_TS),
        end=markers.timestamp.lead().over(following).cast(_TS),
        priority=markers.priority.cast("int64"),
    )


def _subscription_markers(events: ir.Table, settings: LifecycleSettings) -> ir.Table:
    """Purchases that give the account its first active subscription (``kind`` begin)
    and cancellations that leave it none (``kind`` churn), in order."""
    purchases = events.filter(events.event.isin(settings.purchase_events))
    cancels = events.filter(events.event.isin(settings.churn_events))

    def shaped(table: ir.Table, *, start: bool) -> ir.Table:
        interval = _prop(table, settings.interval_property).lower() if start else None
        return table.select(
            "account_id",
            "message_id",
            timestamp=table.timestamp.cast(_TS),
            sub_key=ibis.coalesce(_prop(table, "subscription_id"), ibis.literal("")),
            is_start=ibis.literal(start),
            interval=interval if interval is not None else ibis.null("string"),
        )

    lifecycle = shaped(purchases, start=True).union(shaped(cancels, start=False))
    # at equal times a start is counted before a cancellation (a plan switch is no churn)
    lifecycle = lifecycle.mutate(tie=lifecycle.is_start.ifelse(1, 2))
    per_sub = ibis.window(group_by=["account_id", "sub_key"], order_by=_ORDER)
    previous = lifecycle.is_start.lag().over(per_sub)
    lifecycle = lifecycle.mutate(
        delta=ibis.cases(
            (lifecycle.is_start & (previous.isnull() | ~previous), 1),
            (~lifecycle.is_start & previous.fill_null(False), -1),
            else_=0,
        )
    )
    running = ibis.cumulative_window(group_by="account_id", order_by=_ORDER)
    lifecycle = lifecycle.mutate(active=lifecycle.delta.sum().over(running))
    begins = (lifecycle.delta == 1) & (lifecycle.active == 1)
    ends = (lifecycle.delta == -1) & (lifecycle.active == 0)
    markers = lifecycle.filter(begins | ends)
    return markers.select(
        "account_id",
        "message_id",
        "timestamp",
        "tie",
        "interval",
        kind=markers.is_start.ifelse(_BEGIN, _CHURN),
    )


def spells(events: ir.Table, settings: LifecycleSettings) -> ir.Table:
    """Customer spells: ``account_id``, ``start``, ``end`` (null while active),
    ``term_days`` and ``term_known`` (when the term became known; null if never).

    A spell runs from a purchase that gives the account its first active
    subscription to the cancellation that leaves it none. A won opportunity while
    the account has no active subscription starts the spell at once (the
    subscription that follows, if any, belongs to it): that keeps the purchase
    time independent of events after it. The term comes from the spell's first
    purchase event's billing interval.
    """
    markers = _subscription_markers(events, settings)
    won = events.filter(events.event.isin(settings.won_events))
    won = won.select(
        "account_id",
        "message_id",
        timestamp=won.timestamp.cast(_TS),
        tie=ibis.literal(0),  # a won opportunity comes before a purchase at the same time
        interval=ibis.null("string"),
        kind=ibis.literal(_WON),
    )
    sequence = markers.union(won)
    running = ibis.cumulative_window(group_by="account_id", order_by=_ORDER)
    step = ibis.cases((sequence.kind == _BEGIN, 1), (sequence.kind == _CHURN, -1), else_=0)
    sequence = sequence.mutate(subscribed=step.sum().over(running))
    # a won opportunity counts only while the account has no active subscription
    sequence = sequence.filter((sequence.kind != _WON) | (sequence.subscribed == 0))
    ordered = ibis.window(group_by="account_id", order_by=_ORDER)
    previous = sequence.kind.lag().over(ordered)
    opens = (sequence.kind != _CHURN) & (previous.isnull() | (previous == _CHURN))
    sequence = sequence.mutate(opens=opens)
    sequence = sequence.mutate(spell=sequence.opens.cast("int64").sum().over(running))
    is_begin = sequence.kind == _BEGIN
    spell_rows = sequence.group_by(["account_id", "spell"]).aggregate(
        start=sequence.timestamp.min(where=sequence.opens),
        end=sequence.timestamp.min(where=sequence.kind == _CHURN),
        interval=sequence.interval.argmin(sequence.timestamp, where=is_begin),
        term_known=sequence.timestamp.min(where=is_begin),
    )
    term = ibis.null("int64")
    for name, days in sorted(settings.term_days.items()):
        term = (spell_rows.interval == name).ifelse(ibis.literal(days, "int64"), term)
    return spell_rows.select(
        account_id=spell_rows.account_id,
        start=spell_rows.start.cast(_TS),
        end=spell_rows.end.cast(_TS),
        term_days=term,
        term_known=spell_rows.term_known.cast(_TS),
    )


def _churn_layer(spell_table: ir.Table) -> ir.Table:
    """Churned from each spell's end to the account's next spell start (or for good)."""
    following = ibis.window(group_by="account_id", order_by="start")
    spell_table = spell_table.mutate(next_start=spell_table.start.lead().over(following))
    churns = spell_table.filter(spell_table.end.notnull())
    return churns.select(
        **_interval(churns.account_id, churns.end, churns.next_start, Stage.CHURNED)
    )


def _customer_layer(
    spell_table: ir.Table, settings: LifecycleSettings, as_of: dt.datetime
) -> ir.Table:
    s = spell_table
    onboarded = s.start + ibis.interval(days=settings.onboarding_days)
    matured = s.start + ibis.interval(days=settings.established_until_days)
    parts = [
        s.select(**_interval(s.account_id, s.start, _earliest(onboarded, s.end), Stage.ONBOARDING)),
        s.select(
            **_interval(s.account_id, onboarded, _earliest(matured, s.end), Stage.ESTABLISHED)
        ),
        s.select(**_interval(s.account_id, matured, s.end, Stage.MATURE)),
    ]
    window = settings.renewal_window_days
    renewing = s.filter(s.term_days.notnull() & (s.term_days > window))
    horizon = ibis.coalesce(renewing.end, _as_of(as_of))
    span_days = (horizon.epoch_seconds() - renewing.start.epoch_seconds()) / _SECONDS_PER_DAY
    cycles = ((span_days + window) / renewing.term_days).floor().cast("int64") + 1
    renewing = renewing.mutate(k=ibis.range(1, cycles + 1).unnest())
    renewal_date = renewing.start + (renewing.k * renewing.term_days).as_interval("D")
    # a window opens no earlier than the term was known (a won deal whose subscription
    # came later), so what is known before a time never changes after it
    window_start = renewal_date - ibis.interval(days=window)
    opens = (window_start < renewing.term_known).ifelse(renewing.term_known, window_start)
    parts.append(
        renewing.select(
            **_interval(
                renewing.account_id,
                opens,
                _earliest(renewal_date, renewing.end),
                Stage.RENEWAL,
            )
        )
    )
    layer = parts[0]
    for part in parts[1:]:
        layer = layer.union(part)
    return layer.filter(layer.end.isnull() | (layer.start < layer.end))


def history_from_events(
    events: ir.Table,
    settings: LifecycleSettings,
    *,
    as_of: dt.datetime,
    first_seen: ir.Table | None = None,
) -> ir.Table:
    """Stage history from account events (``account_id``, ``message_id``, ``event``,
    ``timestamp``, ``properties``), all strictly before *as_of*.

    *first_seen* (``account_id``, ``first``) adds first sightings from calls that are
    not track events (an account's first ``identify`` or ``group``).
    """
    cutoff = _as_of(as_of)
    events = events.filter(events.timestamp < cutoff)
    spell_table = spells(events, settings)
    intervals = (
        _first_touch_layer(events, settings, first_seen)
        .union(_sales_layer(events, settings))
        .union(_customer_layer(spell_table, settings, as_of))
        .union(_churn_layer(spell_table))
    )
    starts = intervals.select("account_id", at=intervals.start)
    ends = intervals.filter(intervals.end.notnull()).select("account_id", at=intervals.end)
    points = starts.union(ends)  # union is distinct
    points = points.filter(points.at < cutoff)
    covering = intervals.select(
        cover_account="account_id", cover_start="start", cover_end="end", priority="priority"
    )
    joined = points.join(
        covering,
        [
            points.account_id == covering.cover_account,
            covering.cover_start <= points.at,
            covering.cover_end.isnull() | (points.at < covering.cover_end),
        ],
    )
    stage_at = joined.group_by(["account_id", "at"]).aggregate(priority=joined.priority.max())
    ordered = ibis.window(group_by="account_id", order_by="at")
    stage_at = stage_at.mutate(previous=stage_at.priority.lag().over(ordered))
    changes = stage_at.filter(stage_at.previous.isnull() | (stage_at.previous != stage_at.priority))
    following = ibis.window(group_by="account_id", order_by="at")
    stage = changes.priority.cases(*[(p, s.value) for s, p in _PRIORITY.items()])
    return changes.select(
        account_id=changes.account_id,
        stage=stage.cast("string"),
        entered=changes.at,
        exited=changes.at.lead().over(following),
    )


def stage_history(
    warehouse: Warehouse, settings: LifecycleSettings | None = None, *, as_of: dt.datetime
) -> ir.Table:
    """Every account's stays: ``account_id``, ``stage``, ``entered``, ``exited``.

    Built from events strictly before *as_of*; ``exited`` is null for the current
    stay. See the module documentation for the rules.
    """
    settings = settings if settings is not None else LifecycleSettings()
    events = account_events(warehouse, as_of=as_of)
    return history_from_events(
        milestone_events(events, settings),
        settings,
        as_of=as_of,
        first_seen=first_touches(warehouse, events, settings, as_of=as_of),
    )


def milestone_names(settings: LifecycleSettings) -> list[str]:
    """Every event name the stage rules and the report's KPIs read."""
    names = [
        *settings.first_touch_events,
        *settings.opportunity_events,
        *settings.won_events,
        *settings.lost_events,
        *settings.purchase_events,
        *settings.churn_events,
        *settings.lead_events,
        *settings.qualified_events,
        *settings.mrr_events,
    ]
    return sorted(set(names))


def milestone_events(events: ir.Table, settings: LifecycleSettings) -> ir.Table:
    """The events that move stages (and feed the KPIs): a small part of all events."""
    return events.filter(events.event.isin(milestone_names(settings)))


def first_touches(
    warehouse: Warehouse, events: ir.Table, settings: LifecycleSettings, *, as_of: dt.datetime
) -> ir.Table | None:
    """Each account's first event of any kind (``account_id``, ``first``), when first
    touch is any event; ``None`` when ``first_touch_events`` names the events."""
    if settings.first_touch_events:
        return None
    tracked = events.group_by("account_id").aggregate(first=events.timestamp.min().cast(_TS))
    seen = _first_seen(warehouse, as_of)
    both = tracked.union(seen.select("account_id", first=seen.first.cast(_TS)))
    return both.group_by("account_id").aggregate(first=both.first.min())


def current_stages(
    warehouse: Warehouse, settings: LifecycleSettings | None = None, *, as_of: dt.datetime
) -> ir.Table:
    """Each account's stage at *as_of*: ``account_id``, ``stage``, ``since``, ``days_in_stage``."""
    history = stage_history(warehouse, settings, as_of=as_of)
    return current_from_history(history, as_of=as_of)


def current_from_history(history: ir.Table, *, as_of: dt.datetime) -> ir.Table:
    current = history.filter(history.exited.isnull())
    days = (_as_of(as_of).epoch_seconds() - current.entered.epoch_seconds()) / _SECONDS_PER_DAY
    return current.select(
        "account_id",
        "stage",
        since=current.entered,
        days_in_stage=days.cast("float64"),
    )


@dataclass(frozen=True, slots=True)
class StageBuild:
    """What :func:`build_stages` wrote."""

    as_of: dt.datetime
    accounts: int
    stays: int
    counts: dict[Stage, int]
    seconds: float

    @property
    def customers(self) -> int:
        return sum(self.counts.get(stage, 0) for stage in CUSTOMER_STAGES)


def build_stages(
    warehouse: Warehouse, settings: LifecycleSettings | None = None, *, as_of: dt.datetime
) -> StageBuild:
    """Materialize ``stage_history`` and ``account_stages`` (the stage at *as_of*).

    Both tables carry an ``as_of`` column; running it again for the same *as_of*
    writes the same rows.
    """
    started = time.perf_counter()
    history = stage_history(warehouse, settings, as_of=as_of)
    stamp = _as_of(as_of)
    warehouse.replace_table(HISTORY_TABLE, history.mutate(as_of=stamp))
    stored = warehouse.table(HISTORY_TABLE).drop("as_of")
    warehouse.replace_table(
        STAGES_TABLE, current_from_history(stored, as_of=as_of).mutate(as_of=stamp)
    )
    stages = warehouse.table(STAGES_TABLE)
    rows = warehouse.backend.to_pyarrow(
        stages.group_by("stage").aggregate(n=stages.count())
    ).to_pylist()
    counts = {Stage(row["stage"]): int(row["n"]) for row in rows}
    stays = int(warehouse.backend.execute(warehouse.table(HISTORY_TABLE).count()))
    return StageBuild(
        as_of=as_of,
        accounts=sum(counts.values()),
        stays=stays,
        counts={stage: counts.get(stage, 0) for stage in Stage},
        seconds=time.perf_counter() - started,
    )
