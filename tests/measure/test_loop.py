"""The closed loop end to end on a small company: tenure decides and delivers in the
simulator, every policy starts from the same world, and budgets hold.

The figures that compare the policies come from `tenure loop` at full size (its
numbers are in docs/measure.md); this run checks the machinery, through the CLI.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tenure.cli import app
from tenure.deliver import Delivery, OutboxStatus
from tenure.errors import SendError
from tenure.measure.loop import SimulatorChannel
from tenure.simulate import ActionType

pytestmark = pytest.mark.slow  # the closed loop runs 3 minutes and more

_BUDGET = 25


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("loop")
    result = CliRunner().invoke(
        app,
        [
            "loop", str(out), "--accounts", "900", "--warmup-months", "8",
            "--explore-months", "1", "--eval-months", "2", "--budget", str(_BUDGET),
            "--seeds", "3", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_every_policy_runs_from_the_same_world_within_its_budget(
    loop_run: tuple[Path, dict[str, Any]],
) -> None:
    out, report = loop_run
    with (out / "periods.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    policies = ["none", "random", "risk", "uplift"]
    assert sorted({r["policy"] for r in rows}) == sorted(policies)
    months = sorted({r["month"] for r in rows})
    assert len(months) == 2
    first = {r["policy"]: r for r in rows if r["month"] == months[0]}
    # the same company at the start of the evaluation, whatever the policy
    assert len({r["customers"] for r in first.values()}) == 1
    for row in rows:
        targeted, cost = int(row["targeted"]), float(row["cost"])
        if row["policy"] == "none":
            assert targeted == 0
            assert cost == 0
        else:
            assert 0 <= targeted <= _BUDGET
            assert cost == pytest.approx(40.0 * targeted)  # the simulator's price of a call
        assert int(row["churned"]) >= 0
    random_and_risk = [r for r in rows if r["policy"] in ("random", "risk")]
    assert all(int(r["targeted"]) == _BUDGET for r in random_and_risk)
    outcomes = {o["policy"]: o for o in report["outcomes"]}
    assert outcomes["none"]["cost"] == 0
    assert outcomes["risk"]["cost"] == pytest.approx(2 * _BUDGET * 40.0)
    for policy in policies:
        assert outcomes[policy]["churned"] == sum(
            int(r["churned"]) for r in rows if r["policy"] == policy
        )
    setup = report["setups"][0]
    assert setup["explore_calls"] > 0  # the randomized exploration called customers
    # trained, or skipped with its reason: never silently neither
    assert setup["uplift"] or setup["uplift_skipped"]
    assert {c["metric"] for c in report["comparisons"]} >= {
        "mrr_saved_expected", "saves_expected", "revenue", "churned", "net",
    }  # fmt: skip
    # the truth's effect of the calls: none for no calls, some expected saves for calls
    for row in rows:
        if int(row["targeted"]) == 0:
            assert float(row["saves_expected"]) == 0
            assert float(row["mrr_saved_expected"]) == 0
    assert outcomes["risk"]["saves_expected"] != 0


def test_the_risk_policy_called_the_customers_most_at_risk(
    loop_run: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = loop_run
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{out / 'seed-3' / 'risk' / 'project' / 'tenure.db'}")
    with engine.connect() as connection:
        cycles = connection.execute(
            text("select distinct cycle_id from decisions where path = 'batch'")
        ).scalars()
        last = sorted(cycles)[-1]
        rows = connection.execute(
            text("select status, scores from decisions where cycle_id = :c"), {"c": last}
        ).all()
    engine.dispose()
    risk = sorted(
        ((json.loads(s)["churn_probability"], status) for status, s in rows), reverse=True
    )
    queued = [p for p, status in risk if status == "queued"]
    blocked = [p for p, status in risk if status == "blocked"]
    assert len(queued) == _BUDGET
    assert blocked  # the budget stopped the rest
    assert min(queued) >= max(blocked)


def _delivery(account: str, key: str) -> Delivery:
    at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return Delivery(
        id=1, idempotency_key=key, decision_id="d_1", account_id=account, profile_id=None,
        channel="csm_task", recipient="csm", campaign="retention", cost=40.0,
        template="loop_call", template_version=1, payload={}, status=OutboxStatus.SENDING,
        attempts=1, resends=0, not_before=at, lease_owner="loop", lease_until=at,
        created_at=at, sent_at=None, last_error=None,
    )  # fmt: skip


def test_the_simulator_channel_hands_over_each_call_once() -> None:
    channel = SimulatorChannel({"a_1": "acct_000001"})
    first = _delivery("a_1", "k1")
    channel.send(first, {})
    assert "dropped" in channel.send(first, {})  # a resend carries the same key
    assert [(a.type, a.account_id) for a in channel.actions] == [
        (ActionType.CSM_CALL, "acct_000001")
    ]
    with pytest.raises(SendError, match="no simulated account id") as raised:
        channel.send(_delivery("a_2", "k2"), {})
    assert raised.value.permanent
