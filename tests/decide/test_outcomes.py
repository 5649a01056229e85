"""Outcomes link back to a decision: its message's events and the account's next moves."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tenure.decide import decision_outcomes
from tenure.identity import stitch
from tenure.project import init_project
from tests._lake import load_events

T = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def _event(kind: str, event: str | None, days: float, group: str, **props: Any) -> dict[str, Any]:
    return {
        "type": kind, "event": event, "user_id": f"{group}-u", "anonymous_id": None,
        "group_id": group, "previous_id": None, "email": None,
        "timestamp": T + dt.timedelta(days=days), "traits": None,
        "properties": json.dumps(props) if props else None, "context": None, "source": "segment",
    }  # fmt: skip


def test_message_events_by_decision_id_and_account_events_in_the_window(tmp_path: Path) -> None:
    with init_project(tmp_path / "p", clock=lambda: T + dt.timedelta(days=90)) as project:
        load_events(
            project,
            "r1",
            [
                _event("group", None, 0, "g1"),
                _event("group", None, 0, "g2"),
                _event("track", "Subscription Started", 1, "g1"),  # before the decision
                _event("track", "Message Delivered", 10.01, "g1", decision_id="d_1"),
                _event("track", "Message Opened", 10.5, "g1", decision_id="d_1"),
                _event("track", "Message Opened", 10.6, "g2", decision_id="d_other"),
                _event("track", "Subscription Changed", 20, "g1", mrr=300),
                _event("track", "Subscription Canceled", 45, "g1"),  # after the window
                _event("track", "Subscription Canceled", 12, "g2"),  # another account
            ],
        )
        stitch(project)
        accounts = project.warehouse.table("account_nodes").to_pyarrow().to_pylist()
        account = next(r["account_id"] for r in accounts if r["identifier"] == "group_id:g1")
        other = next(r["account_id"] for r in accounts if r["identifier"] == "group_id:g2")
        found = decision_outcomes(
            project.warehouse,
            [
                ("d_1", account, T + dt.timedelta(days=10)),
                ("d_2", other, T + dt.timedelta(days=11)),
            ],
            window=dt.timedelta(days=30),
        )
    assert [(o.kind, o.event) for o in found["d_1"]] == [
        ("delivered", "Message Delivered"),
        ("opened", "Message Opened"),
        ("changed", "Subscription Changed"),
    ]
    assert [(o.kind, o.at) for o in found["d_2"]] == [("churned", T + dt.timedelta(days=12))]
