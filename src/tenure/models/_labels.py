"""Who was a customer at a cutoff, and whether (and when) they churned after it.

An account is a customer at a cutoff when the latest of its subscription starts
and cancellations before the cutoff is a start. It churned within the horizon
when a cancellation follows in ``[cutoff, cutoff + horizon)``. Labels are only
taken from events before ``observed_until`` — the time the training run stands
at — so a label is never read from the future of the run itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ibis
import pandas as pd
import pyarrow as pa

from tenure._event_values import json_number
from tenure.features import attributed_events

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = [
    "END_EVENTS",
    "PURCHASE_EVENTS",
    "START_EVENTS",
    "churned_within",
    "customer_outcomes",
    "cutoffs_table",
    "feature_usage",
    "future_counts",
    "monthly_cutoffs",
    "purchases",
]

START_EVENTS = ("Subscription Started",)
END_EVENTS = ("Subscription Canceled",)


def monthly_cutoffs(last: dt.datetime, count: int, *, step_days: int = 30) -> list[dt.datetime]:
    """*count* cutoffs ending at *last*, *step_days* apart, oldest first."""
    return [last - dt.timedelta(days=step_days * k) for k in range(count - 1, -1, -1)]


def customer_outcomes(
    warehouse: Warehouse, cutoffs: Sequence[dt.datetime], *, observed_until: dt.datetime
) -> pd.DataFrame:
    """Per customer at each cutoff: ``entity_id``, ``cutoff``, ``started_at``,
    ``ended_at`` (first cancellation at or after the cutoff, before
    *observed_until*; missing if none), ``days_observed``."""
    events = attributed_events(warehouse)
    events = events.filter(
        events.account_id.notnull()
        & events.event.isin([*START_EVENTS, *END_EVENTS])
        & (events.timestamp < observed_until)
    )
    marks = events.select(
        entity_id=events.account_id,
        at=events.timestamp,
        is_start=events.event.isin(list(START_EVENTS)),
    )
    cuts = cutoffs_table(cutoffs)
    before = marks.join(cuts, marks.at < cuts.cutoff)
    state = before.group_by(["entity_id", "cutoff"]).aggregate(
        active=before.is_start.argmax(before.at),
        started_at=before.at.max(where=before.is_start),
    )
    customers = state.filter(state.active)
    after = marks.filter(~marks.is_start).select(end_entity="entity_id", end_at="at")
    ends = customers.join(
        after, [customers.entity_id == after.end_entity, after.end_at >= customers.cutoff]
    )
    first_end = ends.group_by(["entity_id", "cutoff"]).aggregate(ended_at=ends.end_at.min())
    expr = customers.left_join(first_end, ["entity_id", "cutoff"]).select(
        "entity_id", "cutoff", "started_at", "ended_at"
    )
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(expr).to_pandas()
    frame = frame.sort_values(["cutoff", "entity_id"], ignore_index=True)
    horizon_end = frame["ended_at"].fillna(pd.Timestamp(observed_until))
    frame["days_observed"] = (horizon_end - frame["cutoff"]).dt.total_seconds() / 86_400.0
    return frame


def churned_within(outcomes: pd.DataFrame, horizon_days: float) -> pd.Series:
    """1 when the first cancellation after the cutoff falls within the horizon."""
    delta = (outcomes["ended_at"] - outcomes["cutoff"]).dt.total_seconds() / 86_400.0
    return (delta < horizon_days).fillna(False).astype(int)


def cutoffs_table(cutoffs: Sequence[dt.datetime]) -> ir.Table:
    table = pa.table({"cutoff": pa.array(list(cutoffs), pa.timestamp("us", tz="UTC"))})
    return ibis.memtable(table)


#: Purchase events and the property holding their amount (for BG/NBD and Gamma-Gamma).
PURCHASE_EVENTS: dict[str, str] = {"Order Completed": "revenue", "Invoice Paid": "amount"}


def purchases(warehouse: Warehouse, *, before: dt.datetime) -> pd.DataFrame:
    """Every account's purchases before *before*: ``entity_id``, ``timestamp``, ``amount``."""
    events = attributed_events(warehouse)
    events = events.filter(
        events.account_id.notnull()
        & events.event.isin(list(PURCHASE_EVENTS))
        & (events.timestamp < before)
    )
    props = events.properties.try_cast("json")
    amount = ibis.null("float64")
    for name, field in PURCHASE_EVENTS.items():
        value = json_number(props[field])
        amount = (events.event == name).ifelse(value, amount)
    expr = events.select(entity_id=events.account_id, timestamp=events.timestamp, amount=amount)
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(expr).to_pandas()
    return frame


def future_counts(
    warehouse: Warehouse,
    pairs: pd.DataFrame,
    *,
    events: Sequence[str],
    horizon_days: int,
    observed_until: dt.datetime,
    numeric_property: str | None = None,
    at_least: float | None = None,
    above_property: str | None = None,
) -> pd.DataFrame:
    """Per (entity, cutoff): matching events in ``[cutoff, cutoff + horizon)``.

    ``numeric_property``/``at_least`` keep events whose property is at least a
    value (an NPS of 9 or more); ``above_property`` keeps events whose
    ``numeric_property`` exceeds another property (MRR above the previous MRR).
    Returns ``entity_id``, ``cutoff``, ``matched`` and ``seen`` (any such event).
    """
    table = attributed_events(warehouse)
    table = table.filter(
        table.account_id.notnull()
        & table.event.isin(list(events))
        & (table.timestamp < observed_until)
    )
    props = table.properties.try_cast("json")
    keep = ibis.literal(True)
    if numeric_property is not None:
        value = json_number(props[numeric_property])
        if at_least is not None:
            keep = keep & (value >= at_least).fill_null(False)
        if above_property is not None:
            other = json_number(props[above_property])
            keep = keep & (value > other).fill_null(False)
    marks = table.select(mark_entity=table.account_id, at=table.timestamp, keep=keep)
    cuts = ibis.memtable(
        pa.Table.from_pandas(
            pairs[["entity_id", "cutoff"]],
            schema=pa.schema(
                [("entity_id", pa.string()), ("cutoff", pa.timestamp("us", tz="UTC"))]
            ),
            preserve_index=False,
        )
    )
    joined = cuts.join(
        marks,
        [
            cuts.entity_id == marks.mark_entity,
            marks.at >= cuts.cutoff,
            marks.at < cuts.cutoff + ibis.interval(days=horizon_days),
        ],
    )
    counted = joined.group_by(["entity_id", "cutoff"]).aggregate(
        matched=joined.at.count(where=joined.keep), seen=joined.at.count()
    )
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(counted).to_pandas()
    out = pairs[["entity_id", "cutoff"]].merge(frame, on=["entity_id", "cutoff"], how="left")
    out[["matched", "seen"]] = out[["matched", "seen"]].fillna(0).astype(int)
    return out


def feature_usage(
    warehouse: Warehouse, *, before: dt.datetime, window_days: int = 90
) -> pd.DataFrame:
    """Distinct (``account_id``, ``feature``) pairs used in the window before *before*."""
    events = attributed_events(warehouse)
    events = events.filter(
        events.account_id.notnull()
        & (events.event == "Feature Used")
        & (events.timestamp < before)
        & (events.timestamp >= before - dt.timedelta(days=window_days))
    )
    feature = events.properties.try_cast("json")["feature"].str
    expr = (
        events.select(account_id=events.account_id, feature=feature)
        .filter(lambda t: t.feature.notnull())
        .distinct()
    )
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(expr).to_pandas()
    return frame.sort_values(["account_id", "feature"], ignore_index=True)
