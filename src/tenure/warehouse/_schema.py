"""The columns of the lake's event table: the Segment spec, flattened for analytics."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["EVENT_COLUMNS", "EVENT_SCHEMA"]

_TS = pa.timestamp("us", tz="UTC")

#: One row per canonical event. JSON-valued fields are kept as JSON text so any
#: engine reads them; the identity columns are pulled out for joins.
EVENT_SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),  # identify|track|group|page|screen|alias
        pa.field("event", pa.string()),  # track event name, or page/screen name
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("group_id", pa.string()),  # groupId of a group call, else context.groupId
        pa.field("previous_id", pa.string()),  # alias calls
        pa.field("email", pa.string()),  # normalized (trimmed, lower case) from traits/properties
        pa.field("timestamp", _TS, nullable=False),
        pa.field("sent_at", _TS),
        pa.field("received_at", _TS, nullable=False),
        pa.field("properties", pa.string()),  # JSON object
        pa.field("traits", pa.string()),  # JSON object (identify/group traits, or context.traits)
        pa.field("context", pa.string()),  # JSON object
        pa.field(
            "source", pa.string(), nullable=False
        ),  # segment, stripe, hubspot, zendesk, http …
        pa.field("ingest_run", pa.string(), nullable=False),
    ]
)

EVENT_COLUMNS = tuple(EVENT_SCHEMA.names)
