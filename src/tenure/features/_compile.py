"""Feature definitions compiled to Ibis: point-in-time aggregates over a cutoffs table.

The input is the ``facts`` table (one row per attributed event: ``entity_id``,
``user``, ``event``, ``timestamp``, ``properties``, ``sentiment``) and a
``cutoffs`` table of (``entity_id``, ``cutoff``) pairs. Every feature joins the
facts to the cutoffs with a *range* join — ``cutoff − lookback ≤ timestamp <
cutoff`` — so a value at a cutoff can only see events strictly before it. This
is written as a range join (not ``asof_join``) so it runs on Spark as well.

Features that read the same events under the same filter and lookback share one
join and one aggregation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ibis

from tenure._event_values import json_number
from tenure.features._definitions import Aggregation, FeatureDefinition

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["FACT_COLUMNS", "compile_features", "prepare_facts"]

FACT_COLUMNS = ("entity_id", "user", "event", "timestamp", "properties", "sentiment")
_BUILTIN_FIELDS = {"user", "event", "sentiment"}
_SECONDS_PER_DAY = 86_400.0
_YEARLY = ["year", "yearly", "annual", "annually", "y"]


def _property_column(field: str, kind: str) -> str:
    digest = hashlib.sha256(field.encode()).hexdigest()[:8]
    return f"{kind}_{re.sub(r'[^0-9a-zA-Z]', '_', field)[:40]}_{digest}"


def _fields(definitions: Sequence[FeatureDefinition]) -> list[str]:
    found: set[str] = set()
    for d in definitions:
        found.update(f for f in (d.field, d.key) if f)
        found.update(d.where)
    return sorted(found - _BUILTIN_FIELDS)


def prepare_facts(facts: ir.Table, definitions: Sequence[FeatureDefinition]) -> ir.Table:
    """Only the events the definitions read, each property they use parsed once.

    Materialize the result (a temp table) before :func:`compile_features` so the
    events are read and their JSON parsed once per build, not once per feature.
    """
    events = sorted({e for d in definitions for e in [*d.events, *d.close_events]})
    kept = facts.filter(facts.event.isin(events)) if events else facts.limit(0)
    props = kept.properties.try_cast("json")
    parsed: dict[str, ir.Value] = {}
    for field in _fields(definitions):
        value = props[field]
        parsed[_property_column(field, "t")] = ibis.coalesce(
            value.str, value.int.cast("string"), value.float.cast("string")
        )
        parsed[_property_column(field, "n")] = json_number(value)
    return kept.select("entity_id", "user", "event", "timestamp", "sentiment", **parsed)


def compile_features(
    facts: ir.Table, cutoffs: ir.Table, definitions: Sequence[FeatureDefinition]
) -> ir.Table:
    """One row per cutoff pair with a column per definition (in the given order).

    *facts* is :func:`prepare_facts`' output (for the same definitions or more).
    """
    base = cutoffs.select("entity_id", "cutoff")
    direct = [d for d in definitions if d.aggregation is not Aggregation.RATIO]
    groups: dict[tuple[str, ...], list[FeatureDefinition]] = defaultdict(list)
    for definition in direct:
        groups[_group_key(definition)].append(definition)

    result = base
    for members in groups.values():
        if members[0].aggregation is Aggregation.OPEN_ITEMS:
            part = _open_items(facts, base, members[0])
        elif members[0].aggregation is Aggregation.CLOSED_ITEMS:
            part = _closed_items(facts, base, members[0])
        else:
            part = _aggregate(facts, base, members)
        result = result.left_join(part, ["entity_id", "cutoff"]).drop(
            "entity_id_right", "cutoff_right"
        )

    by_name = {d.name: d for d in definitions}
    columns: list[ir.Value] = [result.entity_id, result.cutoff]
    for definition in definitions:
        if definition.aggregation is Aggregation.RATIO:
            value = _ratio(result, by_name, definition)
        else:
            value = result[definition.name]
        columns.append(_with_default(value, definition).name(definition.name))
    return result.select(*columns)


def _group_key(definition: FeatureDefinition) -> tuple[str, ...]:
    if definition.aggregation in (Aggregation.OPEN_ITEMS, Aggregation.CLOSED_ITEMS):
        return (definition.aggregation.value, definition.name)
    return (
        "aggregate",
        ",".join(sorted(definition.events)),
        json.dumps(definition.where, sort_keys=True),
        str(definition.lookback_days),
    )


def _joined(facts: ir.Table, base: ir.Table, events: list[str], lookback_days: int) -> ir.Table:
    """Facts of *events* in each cutoff's lookback, with their age in days."""
    relevant = facts.filter(facts.event.isin(events))
    joined = relevant.join(
        base,
        [
            relevant.entity_id == base.entity_id,
            relevant.timestamp < base.cutoff,
            relevant.timestamp >= base.cutoff - ibis.interval(days=lookback_days),
        ],
    )
    age = (joined.cutoff.epoch_seconds() - joined.timestamp.epoch_seconds()) / _SECONDS_PER_DAY
    parsed = [c for c in relevant.columns if c.startswith(("t_", "n_"))]
    return joined.select(
        "entity_id",
        "cutoff",
        "user",
        "event",
        "timestamp",
        "sentiment",
        *parsed,
        age=age.cast("float64"),
    )


def _matches(joined: ir.Table, where: dict[str, object]) -> ir.BooleanValue:
    condition: ir.BooleanValue = ibis.literal(True)
    for key, wanted in where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        texts = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        condition = condition & _text(joined, key).isin(texts).fill_null(False)
    return condition


def _text(joined: ir.Table, field: str) -> ir.StringValue:
    if field in ("user", "event"):
        return joined[field]
    return joined[_property_column(field, "t")]


def _number(joined: ir.Table, field: str) -> ir.FloatingValue:
    if field == "sentiment":
        return joined.sentiment.cast("float64")
    return joined[_property_column(field, "n")]


def _aggregate(facts: ir.Table, base: ir.Table, members: list[FeatureDefinition]) -> ir.Table:
    first = members[0]
    joined = _joined(facts, base, first.events, first.lookback_days)
    if first.where:
        joined = joined.filter(_matches(joined, dict(first.where)))
    metrics = {d.name: _metric(joined, d) for d in members}
    return joined.group_by(["entity_id", "cutoff"]).aggregate(**metrics)


def _metric(joined: ir.Table, definition: FeatureDefinition) -> ir.Scalar:
    agg = definition.aggregation
    window = float(definition.window_days)
    in_window = joined.age < window
    if agg is Aggregation.COUNT:
        return joined.age.count(where=in_window)
    if agg is Aggregation.DAYS_SINCE_LAST:
        return joined.age.min(where=in_window)
    if agg is Aggregation.DAYS_SINCE_FIRST:
        return joined.age.max(where=in_window)
    if agg is Aggregation.CHANGE_PCT:
        if definition.field is None:
            current = joined.age.count(where=in_window)
            previous = joined.age.count(where=(joined.age >= window) & (joined.age < 2 * window))
        else:
            value = _number(joined, definition.field)
            current = value.sum(where=in_window)
            previous = value.sum(where=(joined.age >= window) & (joined.age < 2 * window))
        return ((current - previous) * 100.0 / previous.nullif(0)).cast("float64")
    if agg is Aggregation.WEEKLY_TREND:
        weeks = max(definition.window_days // 7, 2)
        in_weeks = joined.age < weeks * 7.0
        position = (weeks - 1) - (joined.age / 7.0).floor()  # 0 = oldest week
        centred = position - (weeks - 1) / 2.0
        sxx = weeks * (weeks * weeks - 1) / 12.0
        slope = centred.sum(where=in_weeks) / sxx
        mean_week = joined.age.count(where=in_weeks) / float(weeks)
        return (slope / mean_week.nullif(0)).cast("float64")
    if agg is Aggregation.DAYS_TO_RENEWAL:
        assert definition.field is not None
        since_start = joined.age.min(where=in_window)
        interval = _text(joined, definition.field).lower().argmax(joined.timestamp, where=in_window)
        period = interval.isin(_YEARLY).ifelse(365.25, 30.4375)
        return (period - since_start % period).cast("float64")
    assert definition.field is not None
    field = definition.field
    if agg is Aggregation.COUNT_DISTINCT:
        return _text(joined, field).nunique(where=in_window)
    value = _number(joined, field)
    if agg is Aggregation.SUM:
        return value.sum(where=in_window)
    if agg is Aggregation.MEAN:
        return value.mean(where=in_window)
    if agg is Aggregation.MIN:
        return value.min(where=in_window)
    if agg is Aggregation.MAX:
        return value.max(where=in_window)
    present = value.notnull()
    if agg is Aggregation.LATEST:
        return value.argmax(joined.timestamp, where=in_window & present)
    if agg is Aggregation.CHANGE:
        now = value.argmax(joined.timestamp, where=present)
        then = value.argmax(joined.timestamp, where=present & (joined.age >= window))
        return (now - then.fill_null(0.0)).cast("float64")
    raise AssertionError(f"unhandled aggregation {agg}")


def _open_items(facts: ir.Table, base: ir.Table, definition: FeatureDefinition) -> ir.Table:
    assert definition.key is not None
    events = [*definition.events, *definition.close_events]
    joined = _joined(facts, base, events, definition.lookback_days)
    opening = joined.event.isin(definition.events) & (joined.age < definition.window_days)
    if definition.where:
        opening = opening & _matches(joined, dict(definition.where))
    items = joined.mutate(
        item=_text(joined, definition.key),
        opening=opening.fill_null(False),
        closing=joined.event.isin(definition.close_events),
    )
    items = items.filter(items.item.notnull())
    per_item = items.group_by(["entity_id", "cutoff", "item"]).aggregate(
        opened=items.age.count(where=items.opening),
        closed=items.age.count(where=items.closing),
    )
    still_open = (per_item.opened > 0) & (per_item.closed == 0)
    return per_item.group_by(["entity_id", "cutoff"]).aggregate(
        **{definition.name: per_item.item.count(where=still_open)}
    )


def _closed_items(facts: ir.Table, base: ir.Table, definition: FeatureDefinition) -> ir.Table:
    """Items opened at any time in the lookback and closed, after that, within the window."""
    assert definition.key is not None
    events = [*definition.events, *definition.close_events]
    joined = _joined(facts, base, events, definition.lookback_days)
    opening = joined.event.isin(definition.events)
    if definition.where:
        opening = opening & _matches(joined, dict(definition.where))
    closing = joined.event.isin(definition.close_events) & (joined.age < definition.window_days)
    items = joined.mutate(item=_text(joined, definition.key))
    items = items.filter(items.item.notnull())
    per_item = items.group_by(["entity_id", "cutoff", "item"]).aggregate(
        opened=items.timestamp.min(where=opening.fill_null(False)),
        closed=items.timestamp.max(where=closing),
    )
    ended = per_item.opened.notnull() & (per_item.closed > per_item.opened).fill_null(False)
    return per_item.group_by(["entity_id", "cutoff"]).aggregate(
        **{definition.name: per_item.item.count(where=ended)}
    )


def _ratio(
    result: ir.Table, by_name: dict[str, FeatureDefinition], definition: FeatureDefinition
) -> ir.Value:
    assert definition.numerator is not None
    assert definition.denominator is not None
    numerator = _with_default(result[definition.numerator], by_name[definition.numerator])
    denominator = _with_default(result[definition.denominator], by_name[definition.denominator])
    return (numerator.cast("float64") / denominator.cast("float64").nullif(0.0)).cast("float64")


def _with_default(value: ir.Value, definition: FeatureDefinition) -> ir.Value:
    if definition.aggregation in (Aggregation.DAYS_SINCE_LAST,):
        return value.fill_null(float(definition.window_days)).cast("float64")
    if definition.default is None:
        return value.cast("float64")
    return value.cast("float64").fill_null(definition.default)
