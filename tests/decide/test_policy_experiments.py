"""Experiments in policies: arms by hash, each arm's action, the control held out and logged."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from scipy import stats
from sqlalchemy import select

from tenure.api import create_app
from tenure.decide import approve, decide, list_reviews, load_policies
from tenure.decide._guardrails import Verdict
from tenure.decide._policy import parse_policy
from tenure.errors import ConfigError, PolicyError
from tenure.govern.keys import Role
from tenure.measure.experiments import GlobalControl, assign, in_global_control
from tenure.project import Project
from tenure.store._tables import decisions
from tests.conftest import make_project
from tests.decide._world import (
    EXPERIMENT,
    NOON,
    SAVE_CHANNEL,
    customer,
    publish,
    queued,
    write,
    write_policy_files,
)
from tests.serve._live import running
from tests.serve.conftest import make_keys

COST = {"call": 40.0, "email": 0.5}


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[Project]:
    project = make_project(tmp_path / "proj", store_url, clock=lambda: NOON)
    write_policy_files(project, EXPERIMENT)
    yield project
    project.close()


def _configured(project: Project, *edits: tuple[str, str]) -> Project:
    text = (project.root / "tenure.yaml").read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (project.root / "tenure.yaml").write_text(text)
    project.close()
    return Project.open(project.root, clock=lambda: NOON)


def _logged(project: Project) -> dict[str, dict[str, Any]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(decisions))
        return {r.account_id: dict(r._mapping) for r in rows}


# ------------------------------------------------------------------ policy files
def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name / "retention.yaml"
    write(path, text)
    return path


def test_each_experiment_problem_names_the_file_rule_and_key(tmp_path: Path) -> None:
    arms = EXPERIMENT.split("      arms:\n", 1)[1].split("    priority", 1)[0]
    cases = {
        "both": (
            EXPERIMENT.replace("    priority: 90", "    action: {channel: email, template: tips}"),
            "key 'action': a rule has an action or an experiment, not both",
        ),
        "neither": (
            EXPERIMENT.split("    experiment:", 1)[0],
            "key 'action': a rule has an action or an experiment, not neither",
        ),
        "one-arm": (
            EXPERIMENT.replace(arms, "        control: {weight: 20}\n"),
            "key 'experiment.arms': at least two arms (got 1)",
        ),
        "weight": (
            EXPERIMENT.replace("email: {weight: 40", "email: {weight: 0"),
            "key 'experiment.arms.email.weight': a weight > 0 (got 0)",
        ),
        "no-control": (
            EXPERIMENT.replace("        control: {weight: 20}\n", ""),
            "key 'experiment.control': one of the arms call, email (got 'control')",
        ),
        "acting-control": (
            EXPERIMENT.replace(
                "control: {weight: 20}",
                "control: {weight: 20, action: {channel: email, template: tips}}",
            ),
            "key 'experiment.arms.control.action': none: the control arm gets nothing (held out)",
        ),
        "idle-arm": (
            EXPERIMENT.replace(
                "email: {weight: 40, action: {channel: email, template: tips, campaign: save, "
                "cost: 0.5}}",
                "email: {weight: 40}",
            ),
            "key 'experiment.arms.email.action': an action (only the control arm has none)",
        ),
    }
    for name, (text, expected) in cases.items():
        path = _bad(tmp_path, name, text)
        with pytest.raises(PolicyError) as caught:
            load_policies(path.parent)
        assert str(caught.value) == f"{path}: policy 'retention', rule 'save', {expected}", name


def test_experiment_problems_are_collected_and_ids_are_unique_across_files(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "p"
    write(directory / "a.yaml", EXPERIMENT)
    other = EXPERIMENT.replace("name: retention", "name: winback").replace(
        "email: {weight: 40", "email: {weight: -1"
    )
    write(directory / "b.yaml", other)
    with pytest.raises(PolicyError) as caught:
        load_policies(directory)
    where = f"{directory / 'b.yaml'}: policy 'winback', rule 'save'"
    assert str(caught.value).splitlines() == [
        "2 problems in the policies' rules:",
        f"  - {where}, key 'experiment.arms.email.weight': a weight > 0 (got -1)",
        f"  - {where}, key 'experiment.id': a unique experiment id ('save-channel' is already "
        f"the experiment of {directory / 'a.yaml'}: policy 'retention', rule 'save')",
    ]
    # what is not the right kind of value at all is the schema's, with the file and key
    path = _bad(tmp_path, "q", EXPERIMENT.replace("id: save-channel", "id: Save Channel"))
    with pytest.raises(ConfigError) as schema:
        load_policies(path.parent)
    assert str(schema.value).startswith(f"{path}: 1 problem\n")
    assert "rules.0.experiment.id: lower-case letters, digits, _ and - (got 'Save Channel')" in (
        str(schema.value)
    )


def test_a_loaded_experiment_keeps_its_arms_in_order() -> None:
    rule = parse_policy(EXPERIMENT, source="retention.yaml").rules[0]
    assert rule.action is None
    assert rule.experiment is not None
    assert rule.experiment.treatments == ("call", "email")
    assert rule.experiment.percents == {"call": 40.0, "email": 40.0, "control": 20.0}
    assert rule.experiment.group == "experiment:save-channel"
    # the control is ranked and checked with the first treatment arm's action
    assert rule.experiment.action("control") == rule.experiment.action("call")
    assert rule.experiment.action("email").channel.value == "email"


# ------------------------------------------------------------------ assignment
_CUSTOMERS = 2_000


def test_arms_follow_the_hash_and_the_weights_and_the_control_gets_nothing(
    world: Project,
) -> None:
    ids = [f"a_{n:04d}" for n in range(_CUSTOMERS)]
    arms = {a: assign(a, SAVE_CHANNEL) for a in ids}
    spend = sum(COST.get(str(arm), 0.0) for arm in arms.values())
    # a budget of what the treated arms cost and one call more (the control is checked like
    # the treated, with the call's cost): the control spending any of it would leave
    # treated customers blocked
    budget = f"{{save: {{budget: {spend + 40}, period: 30d}}}}"
    with _configured(world, ("  budgets: {}", f"  budgets: {budget}")) as project:
        publish(project, [customer(n, churn=0.6) for n in range(_CUSTOMERS)])
        report = decide(project)
        logged = _logged(project)
        assert len(report.decisions) == len(logged) == _CUSTOMERS
        placed = {a: orjson.loads(row["experiment"]) for a, row in logged.items()}
        # deterministic: exactly what the experiment's hash gives, logged with its share
        assert {a: p["arm"] for a, p in placed.items()} == arms
        assert {(p["group"], p["arm"], p["percent"]) for p in placed.values()} == {
            ("experiment:save-channel", "call", 40.0),
            ("experiment:save-channel", "email", 40.0),
            ("experiment:save-channel", "control", 20.0),
        }
        counts = Counter(arms.values())
        fit = stats.chisquare([counts["call"], counts["email"], counts["control"]], [800, 800, 400])
        assert fit.pvalue > 0.001, counts
        # the control: logged as held out with the action they were ranked by, nothing queued
        statuses = Counter((arms[d.account_id], d.status) for d in report.decisions)
        assert statuses[("control", "holdout")] == counts["control"]
        assert (
            sum(n for (arm, status), n in statuses.items() if status == "holdout")
            == (counts["control"])
        )
        sends = queued(project)
        assert {s["account_id"] for s in sends} == {
            a for a, arm in arms.items() if arm != "control"
        }
        assert {(arms[s["account_id"]], s["channel"]) for s in sends} == {
            ("call", "csm_task"),
            ("email", "email"),
        }
        assert sum(s["cost"] for s in sends) == pytest.approx(spend)
        assert "blocked" not in report.by_status
        held = next(d for d in report.decisions if arms[d.account_id] == "control")
        assert held.status == "holdout"
        assert held.chosen is not None
        assert held.chosen.rule.action.channel.value == "csm_task"  # the first arm's, unsent
        check = held.checks[-1]
        assert (check.guardrail, check.verdict, check.detail) == (
            "holdout", Verdict.HOLD, "experiment save-channel: control (20 %)",
        )  # fmt: skip
        assert (check.group, check.percent, check.arm) == (
            "experiment:save-channel",
            20.0,
            "control",
        )
        assert "experiment save-channel, arm control" in held.explanation
        treated = next(d for d in report.decisions if arms[d.account_id] == "email")
        assert treated.checks[-1].detail == "experiment save-channel: arm email (40 %)"
        assert treated.checks[-1].as_dict()["arm"] == "email"
        assert treated.candidates[0].as_dict()["arm"] == "email"
        # a later cycle (the budget's period over) puts everyone in the same arm again
        later = decide(project, now=NOON + dt.timedelta(days=31), accounts=ids[:200])
        assert later.by_status.keys() <= {"queued", "deferred", "holdout"}
        again = {d.account_id: d.checks[-1].arm for d in later.decisions}
        assert again == {a: arms[a] for a in ids[:200]}


def test_the_global_control_comes_before_the_experiment(world: Project) -> None:
    edit = ("    global_control_percent: 0 ", "    global_control_percent: 20 #")
    with _configured(world, edit) as project:
        publish(project, [customer(n, churn=0.6) for n in range(400)])
        report = decide(project)
    control = GlobalControl(percent=20, salt="tenure")
    for decision in report.decisions:
        check = decision.checks[-1]
        if in_global_control(decision.account_id, control):
            assert (decision.status, check.group, check.arm) == ("holdout", "global", None)
        else:
            assert check.group == "experiment:save-channel"
            assert check.arm == assign(decision.account_id, SAVE_CHANNEL)
    assert sum(d.checks[-1].group == "global" for d in report.decisions) > 40


def test_an_arm_sent_to_review_keeps_its_action_and_its_arm_when_approved(
    world: Project,
) -> None:
    n = next(n for n in range(100) if assign(f"a_{n:04d}", SAVE_CHANNEL) == "email")
    publish(world, [customer(n, churn=0.6, clv=20_000)])  # high value: email is reviewed
    report = decide(world)
    assert report.by_status == {"review": 1}
    with world.store.connect() as connection:
        [item] = list_reviews(connection)
    assert approve(world, item["id"], actor="maria", now=NOON + dt.timedelta(hours=1)) == ("queued")
    [sent] = queued(world)
    assert (sent["channel"], sent["template"], sent["cost"]) == ("email", "tips", 0.5)
    row = _logged(world)[f"a_{n:04d}"]
    checks = orjson.loads(row["guardrails"])
    assert checks[-1] == {
        "guardrail": "holdout", "verdict": "pass",
        "detail": "experiment save-channel: arm email (40 %)",
        "group": "experiment:save-channel", "percent": 40.0, "arm": "email",
    }  # fmt: skip
    assert row["status"] == "queued"


# ------------------------------------------------------------------ the API
def test_the_api_gives_the_arm_the_batch_cycle_gives(
    world: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_SERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("TENURE_SERVE_KEY_CACHE_SECONDS", "0")
    publish(world, [customer(n, churn=0.6) for n in range(30)])
    batch = {d.account_id: d for d in decide(world, dry_run=True).decisions}
    assert {d.checks[-1].arm for d in batch.values()} == {"call", "email", "control"}
    operator = {"authorization": f"Bearer {make_keys(world)[Role.OPERATOR]}"}
    with (
        running(create_app(world, loader=False)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        for account, expected in batch.items():
            answer = http.post(
                f"/v1/customers/{account}/next-best-action", headers=operator,
                params={"dry_run": True},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            body = answer.json()
            holdout = next(c for c in body["guardrails"] if c["guardrail"] == "holdout")
            assert holdout["arm"] == expected.checks[-1].arm == assign(account, SAVE_CHANNEL)
            assert body["status"] == expected.status
            assert body["candidates"][0]["arm"] == holdout["arm"]
        [policy] = http.get("/v1/policies", headers=operator).json()["policies"]
    [rule] = policy["rules"]
    assert rule["action"] is None
    assert rule["experiment"]["id"] == "save-channel"
    assert rule["experiment"]["arms"]["control"] == {"weight": 20.0}
    assert rule["experiment"]["arms"]["email"]["action"]["channel"] == "email"
