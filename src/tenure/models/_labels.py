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

from tenure.features import attributed_events

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = ["END_EVENTS", "START_EVENTS", "customer_outcomes", "monthly_cutoffs"]

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
    cuts = _cutoffs_table(cutoffs)
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


def _cutoffs_table(cutoffs: Sequence[dt.datetime]) -> ir.Table:
    table = pa.table({"cutoff": pa.array(list(cutoffs), pa.timestamp("us", tz="UTC"))})
    return ibis.memtable(table)
