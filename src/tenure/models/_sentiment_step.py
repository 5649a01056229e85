"""Scoring the text customers write (tickets, survey comments) once per event.

New events with text are scored with the offline VADER lexicon and appended to
the warehouse table ``event_sentiment`` (message_id, sentiment), which the
features read (``ticket_sentiment_30d``) and the API shows per ticket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tenure.features import SENTIMENT_TABLE
from tenure.models.sentiment import sentiment_scores

if TYPE_CHECKING:
    from tenure.warehouse import Warehouse

__all__ = ["TEXT_FIELDS", "score_event_sentiment"]

#: Event → the properties whose text is scored (joined with ". ").
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "Ticket Created": ("subject", "description"),
    "Ticket Updated": ("comment",),
    "NPS Submitted": ("comment",),
    "CSAT Submitted": ("comment",),
}

_SCHEMA = pa.schema([("message_id", pa.string()), ("sentiment", pa.float64())])


def score_event_sentiment(warehouse: Warehouse) -> int:
    """Score the text of events not scored yet; returns how many were scored."""
    events = warehouse.events()
    events = events.filter((events.type == "track") & events.event.isin(list(TEXT_FIELDS)))
    if warehouse.has_table(SENTIMENT_TABLE):
        done = warehouse.table(SENTIMENT_TABLE).select(done_id="message_id")
        events = events.anti_join(done, events.message_id == done.done_id)
    else:
        warehouse.backend.create_table(SENTIMENT_TABLE, schema=ibis.Schema.from_pyarrow(_SCHEMA))
    props = events.properties.try_cast("json")
    fields = sorted({f for names in TEXT_FIELDS.values() for f in names})
    texts = events.select(
        "message_id",
        "event",
        **{f"text_{f}": props[f].str for f in fields},
    )
    rows = warehouse.backend.to_pyarrow(texts).to_pylist()
    ids: list[str] = []
    bodies: list[str] = []
    for row in rows:
        parts = [row[f"text_{f}"] for f in TEXT_FIELDS[row["event"]] if row[f"text_{f}"]]
        if parts:
            ids.append(row["message_id"])
            bodies.append(". ".join(parts))
    if not ids:
        return 0
    scores = sentiment_scores(bodies)
    table = pa.table({"message_id": ids, "sentiment": scores.astype(float)}, schema=_SCHEMA)
    warehouse.backend.insert(SENTIMENT_TABLE, ibis.memtable(table))
    return len(ids)
