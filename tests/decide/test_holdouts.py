"""Holdouts: a stable share of those a rule would act on is decided for, logged, not sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy.stats import binomtest

from tenure.decide import decide
from tenure.decide._guardrails import Verdict
from tenure.measure.experiments import GlobalControl, in_global_control
from tenure.project import Project
from tests.conftest import make_project
from tests.decide._world import NOON, customer, publish, queued, write_policy_files

_N = 400


def _with_holdouts(project: Project, percent: float, campaigns: str = "{}") -> Project:
    text = (project.root / "tenure.yaml").read_text()
    lines = {
        "    global_control_percent: 0 ": f"    global_control_percent: {percent}\n",
        "    campaigns: {} ": f"    campaigns: {campaigns}\n",
    }
    edited = [
        next((new for old, new in lines.items() if line.startswith(old)), line)
        for line in text.splitlines(keepends=True)
    ]
    assert edited != text.splitlines(keepends=True)
    (project.root / "tenure.yaml").write_text("".join(edited))
    return Project.open(project.root, clock=lambda: NOON)


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[Project]:
    project = make_project(tmp_path / "proj", store_url, clock=lambda: NOON)
    write_policy_files(project)
    yield project
    project.close()


def test_the_global_control_gets_nothing_and_is_the_same_group_every_cycle(
    world: Project,
) -> None:
    project = _with_holdouts(world, 20)
    publish(project, [customer(n, logins=2) for n in range(_N)])
    report = decide(project)
    held = {d.account_id for d in report.decisions if d.status == "holdout"}
    treated = {d.account_id for d in report.decisions if d.status in ("queued", "deferred")}
    assert held
    assert len(held) + len(treated) == _N
    assert binomtest(len(held), _N, 0.2).pvalue > 0.001
    # exactly the hash's group, and nothing queued, capped or budgeted for it
    control = GlobalControl(percent=20, salt="tenure")
    assert held == {f"a_{n:04d}" for n in range(_N) if in_global_control(f"a_{n:04d}", control)}
    assert {row["account_id"] for row in queued(project)} == treated
    one = next(d for d in report.decisions if d.status == "holdout")
    assert one.chosen is not None  # the action they would have had is in the log
    assert one.checks[-1].guardrail == "holdout"
    assert one.checks[-1].verdict is Verdict.HOLD
    assert (one.checks[-1].group, one.checks[-1].percent) == ("global", 20)  # for reports
    assert "held out" in one.explanation
    # a week later (cool-downs over) the same customers are held out again
    later = decide(project, now=NOON + dt.timedelta(days=8))
    assert {d.account_id for d in later.decisions if d.status == "holdout"} == held
    project.close()


def test_a_campaign_holdout_touches_only_that_campaign(world: Project) -> None:
    project = _with_holdouts(world, 0, "{save: 50}")
    renewals = [customer(n, churn=0.6, stage="renewal") for n in range(100)]
    tips = [customer(n, logins=2) for n in range(100, 200)]
    publish(project, renewals + tips)
    report = decide(project)
    by_campaign: dict[str, list[str]] = {}
    for d in report.decisions:
        assert d.chosen is not None
        campaign = d.chosen.rule.rule.action.campaign or ""
        by_campaign.setdefault(campaign, []).append(d.status)
    save = by_campaign["save"]
    assert 25 <= save.count("holdout") <= 75  # half, give or take (binomial, n=100)
    assert "holdout" not in by_campaign["nurture"]
    treated = next(
        d for d in report.decisions
        if d.status != "holdout" and d.chosen and d.chosen.rule.rule.action.campaign == "save"
    )  # fmt: skip
    assert treated.checks[-1].detail == "treated in campaign save (50 % held out)"
    project.close()
