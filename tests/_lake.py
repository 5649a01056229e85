"""Writing hand-made events straight into a project's lake, as ingest would."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tenure.project import Project
from tenure.warehouse import EVENT_SCHEMA


def load_events(project: Project, run: str, events: list[dict[str, Any]]) -> None:
    """Publish *events* (lake columns without ids) as ingest run *run*."""
    rows = []
    for n, event in enumerate(events):
        rows.append(
            {
                **event,
                "message_id": event.get("message_id") or f"{run}-{n:04d}",
                "sent_at": event["timestamp"],
                "received_at": event["timestamp"],
                "ingest_run": run,
            }
        )
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    warehouse = project.warehouse
    warehouse.publish_events(
        warehouse.lake.stage_events(table, run), run_id=run, at=project.clock()
    )
