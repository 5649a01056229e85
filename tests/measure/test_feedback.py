"""Feedback: the decision log's randomized outcomes train uplift models that find who to call.

A campaign with a 50 % holdout calls customers at renewal; the planted outcomes make the
call help customers with few logins (churn 40 % → 10 %) and harm those with many
(10 % → 30 %: sleeping dogs). The trained model must tell them apart, score them, and
the state must carry the estimate for the policies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select

from tenure.decide import decide
from tenure.decide._state import build_states
from tenure.errors import ModelError
from tenure.identity import stitch
from tenure.measure._logit_shift import RISK_COLUMN, LogitShift
from tenure.measure.feedback import UPLIFT_TABLE, score_uplift, train_uplift, uplift_frame
from tenure.measure.uplift import qini_coefficient
from tenure.models.registry import ModelStatus, registry_for
from tenure.project import Project
from tenure.store._tables import decisions
from tests._lake import load_events
from tests.conftest import make_project
from tests.decide._world import NOON, customer, publish, write_policy_files

_N = 1600
AS_OF = NOON + dt.timedelta(days=40)


def _u(account: str, what: str) -> float:
    digest = hashlib.sha256(f"{what}:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _logins(n: int) -> float:
    return float(n % 20)  # 0 … 19


def _churn_probability(logins: float, treated: bool) -> float:
    if logins < 10:
        return 0.1 if treated else 0.4  # persuadable
    return 0.3 if treated else 0.1  # sleeping dog


def _event(kind: str, event: str | None, at: dt.datetime, group: str) -> dict[str, Any]:
    return {
        "type": kind, "event": event, "user_id": f"{group}-u", "anonymous_id": None,
        "group_id": group, "previous_id": None, "email": None, "timestamp": at,
        "traits": None, "properties": None, "context": None, "source": "segment",
    }  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("feedback")
    base = make_project(root / "proj", f"sqlite:///{root / 'store.db'}", clock=lambda: NOON)
    write_policy_files(base)
    text = (base.root / "tenure.yaml").read_text()
    edited = text.replace("    campaigns: {} ", "    campaigns: {save: 50} #", 1)
    assert edited.count("campaigns: {save: 50}") == 1
    (base.root / "tenure.yaml").write_text(edited)
    base.close()
    project = Project.open(base.root, clock=lambda: NOON)
    groups = [f"g{n:04d}" for n in range(_N)]
    load_events(
        project, "r1", [_event("group", None, NOON - dt.timedelta(days=10), g) for g in groups]
    )
    stitch(project)
    nodes = project.warehouse.table("account_nodes").to_pyarrow().to_pylist()
    account = {r["identifier"].removeprefix("group_id:"): r["account_id"] for r in nodes}
    states = [
        dataclasses.replace(
            customer(n, churn=0.6, stage="renewal", logins=_logins(n)), account_id=account[g]
        )
        for n, g in enumerate(groups)
    ]
    publish(project, states)
    decide(project, now=NOON)
    logins = {account[g]: _logins(n) for n, g in enumerate(groups)}
    group_of = {a: g for g, a in account.items()}
    planted = []
    with project.store.connect() as connection:
        rows = connection.execute(select(decisions.c.account_id, decisions.c.status)).all()
    for account_id, status in rows:
        treated = status != "holdout"
        if _u(account_id, "churn") < _churn_probability(logins[account_id], treated):
            at = NOON + dt.timedelta(days=9)
            planted.append(_event("track", "Subscription Canceled", at, group_of[account_id]))
    load_events(project, "r2", planted)
    # the features the models score on, as `tenure build` would leave them
    project.warehouse.replace_table(
        "features_account",
        pa.table(
            {
                "entity_id": [account[g] for g in groups],
                "as_of": pa.array([AS_OF] * _N, pa.timestamp("us", tz="UTC")),
                "logins_30d": [_logins(n) for n in range(_N)],
            }
        ),
    )
    yield project
    project.close()


def test_the_frame_holds_the_randomized_decisions_with_their_outcomes(world: Project) -> None:
    frame, pending = uplift_frame(world, as_of=AS_OF)
    assert pending == 0
    assert len(frame) == _N  # every customer was decided for by the save campaign's rule
    assert set(frame["treatment_type"]) == {"csm_task"}
    assert 0.4 < frame["treated"].mean() < 0.6  # the 50 % holdout
    assert sorted(frame["logins_30d"]) == sorted(_logins(n) for n in range(_N))
    # the labels are the planted churn events, in the window
    for row in frame.sample(50, random_state=0).itertuples():
        expected = _u(row.account_id, "churn") < _churn_probability(
            row.logins_30d, bool(row.treated)
        )
        assert row.churned == int(expected)
    # before the window is over the rows are pending, not labelled as staying
    early, waiting = uplift_frame(world, as_of=NOON + dt.timedelta(days=10))
    assert early.empty
    assert waiting == _N


def test_uplift_is_learned_registered_and_tells_persuadables_from_sleeping_dogs(
    world: Project,
) -> None:
    report = train_uplift(world, as_of=AS_OF, actor="test")
    assert report.skipped == {}
    trained = report.trained["csm_task"]
    assert trained.rows == _N
    assert trained.promoted  # the first version becomes production
    assert trained.version.name == "uplift-csm_task"
    assert trained.qini is not None
    # validated on the latest fifth of the decisions: as good as knowing the true effect
    frame, _ = uplift_frame(world, as_of=AS_OF)
    latest = frame.sort_values(["decided_at", "decision_id"]).tail(_N // 5)
    true_gain = np.where(latest["logins_30d"] < 10, 0.3, -0.2)
    best = qini_coefficient(1 - latest["churned"], latest["treated"], true_gain)
    assert best > 0.05
    assert trained.qini > 0.8 * best
    registry = registry_for(world)
    production = registry.production("uplift-csm_task")
    assert production is not None
    assert production.version == trained.version.version
    assert production.metrics["rows"] == _N

    scoring = score_uplift(world, as_of=AS_OF)
    assert scoring.rows == _N
    assert scoring.versions == {"csm_task": production.label}
    table = world.warehouse.backend.to_pandas(world.warehouse.backend.table(UPLIFT_TABLE))
    features = world.warehouse.backend.to_pandas(world.warehouse.backend.table("features_account"))
    joined = table.merge(features, left_on="account_id", right_on="entity_id")
    few, many = joined[joined["logins_30d"] < 10], joined[joined["logins_30d"] >= 10]
    # true gains in staying: +0.30 for few logins, −0.20 for many
    assert few["uplift"].mean() == pytest.approx(0.30, abs=0.1)
    assert many["uplift"].mean() == pytest.approx(-0.20, abs=0.1)
    assert (few["uplift"] > 0).mean() > 0.75
    assert (many["uplift"] < 0).mean() > 0.75
    # both learners were validated; the X-learner is kept only when a paired bootstrap
    # puts its out-of-time Qini above the logit shift's with 95 % confidence
    params, metrics = production.params, production.metrics
    chosen = "x_learner" if metrics["qini_difference_low"] > 0 else "logit_shift"
    assert params["learner"] == chosen
    assert metrics["qini_out_of_time"] == metrics[f"qini_out_of_time_{chosen}"]

    # a second training registers a candidate and leaves production alone
    again = train_uplift(world, as_of=AS_OF, actor="test")
    assert not again.trained["csm_task"].promoted
    assert again.trained["csm_task"].version.status is ModelStatus.CANDIDATE
    assert registry.production("uplift-csm_task").version == production.version  # type: ignore[union-attr]


def test_too_few_outcomes_are_skipped_with_the_reason(world: Project) -> None:
    report = train_uplift(world, as_of=NOON + dt.timedelta(days=10), actor="test")
    assert report.trained == {}
    assert report.rows == 0
    assert report.pending == _N
    assert report.skipped == {}  # nothing elapsed: no treatment type to speak of


def test_the_published_state_carries_the_uplift_estimate(world: Project) -> None:
    if world.warehouse.backend.list_tables().count(UPLIFT_TABLE) == 0:
        train_uplift(world, as_of=AS_OF, actor="test")
        score_uplift(world, as_of=AS_OF)
    scores = world.warehouse.backend.to_pandas(world.warehouse.backend.table(UPLIFT_TABLE))
    gain = dict(zip(scores["account_id"], scores["uplift"], strict=True))
    states = build_states(world, as_of=AS_OF)
    with_uplift = [s for s in states if s.uplift]
    assert len(with_uplift) == _N
    for state in with_uplift[:20]:
        assert state.uplift == {"csm_task": pytest.approx(gain[state.account_id])}
        assert state.models["uplift-csm_task"].startswith("uplift-csm_task")
    assert json.loads(with_uplift[0].to_json())["uplift"]["csm_task"] == pytest.approx(
        gain[with_uplift[0].account_id]
    )
    assert np.isfinite([s.uplift["csm_task"] for s in with_uplift]).all()


def test_the_logit_shift_recovers_an_effect_on_the_log_odds_of_the_risk() -> None:
    """Rare churn: the risk model's log-odds, shifted by −1.2 for a call, +0.8 for one plan."""
    rng = np.random.default_rng(5)
    n = 40_000
    risk = 1 / (1 + np.exp(-rng.normal(-3.5, 0.8, n)))
    plan = rng.choice(["basic", "pro", "team"], n)
    treated = rng.random(n) < 0.5
    shift = np.where(plan == "basic", 0.8, -1.2)
    logit = np.log(risk / (1 - risk)) + treated * shift
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    X = pd.DataFrame({RISK_COLUMN: risk, "trait.plan": plan, "noise": rng.normal(size=n)})
    model = LogitShift().fit(X, treated.astype(int), churned.astype(int))
    effect = model.predict(X)
    base = 1 / (1 + np.exp(-np.log(risk / (1 - risk))))
    truth = 1 / (1 + np.exp(-(np.log(risk / (1 - risk)) + shift))) - base
    assert np.corrcoef(effect, truth)[0, 1] > 0.95
    assert effect[plan == "basic"].mean() == pytest.approx(truth[plan == "basic"].mean(), rel=0.3)
    assert effect[plan != "basic"].mean() == pytest.approx(truth[plan != "basic"].mean(), rel=0.3)
    # the higher the risk, the more a call saves: the effect scales with p (1 − p)
    pro = plan == "pro"
    assert np.corrcoef(effect[pro], base[pro])[0, 1] < -0.95
    with pytest.raises(ModelError, match="risk at the decision"):
        LogitShift().fit(X.drop(columns=[RISK_COLUMN]), treated, churned)
