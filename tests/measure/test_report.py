"""The holdout report: arms from the decision log, outcomes from the lake, checked statistics."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats
from sqlalchemy import select, update
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from tenure.cli import app
from tenure.decide import decide
from tenure.identity import stitch
from tenure.measure._report import HELD_OUT, TREATED, experiment_report
from tenure.measure.experiments import analyze
from tenure.project import Project
from tenure.store._tables import decisions
from tests._lake import load_events
from tests.conftest import make_project
from tests.decide._world import EXPERIMENT, NOON, POLICY, customer, publish, write_policy_files

_N = 300  # decided at NOON
_LATE = 30  # decided 20 days later: their window is not over at AS_OF
AS_OF = NOON + dt.timedelta(days=35)
_WINDOW = dt.timedelta(days=30)
_TREATED = ("queued", "deferred", "review")


def _u(account: str, what: str) -> float:
    """A uniform number in [0, 1) fixed by the account: the planted outcomes' dice."""
    digest = hashlib.sha256(f"{what}:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _converts(account: str, treated: bool) -> bool:
    return _u(account, "convert") < (0.45 if treated else 0.2)


def _churns(account: str, treated: bool) -> bool:
    return _u(account, "churn") < (0.1 if treated else 0.3)


def _amount(account: str) -> float:
    return float(50 + round(100 * _u(account, "amount")))


def _event(
    kind: str, event: str | None, at: dt.datetime, group: str, **props: Any
) -> dict[str, Any]:
    return {
        "type": kind, "event": event, "user_id": f"{group}-u", "anonymous_id": None,
        "group_id": group, "previous_id": None, "email": None, "timestamp": at,
        "traits": None, "properties": json.dumps(props) if props else None, "context": None,
        "source": "segment",
    }  # fmt: skip


def _with_holdouts(project: Project) -> Project:
    text = (project.root / "tenure.yaml").read_text()
    edited = text.replace(
        "    global_control_percent: 0 ", "    global_control_percent: 30 #", 1
    ).replace("    campaigns: {} ", "    campaigns: {save: 40} #", 1)
    assert edited.count("global_control_percent: 30") == 1
    assert edited.count("campaigns: {save: 40}") == 1
    (project.root / "tenure.yaml").write_text(edited)
    return Project.open(project.root, clock=lambda: NOON)


def _log(project: Project) -> list[dict[str, Any]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(decisions).order_by(decisions.c.decided_at))
        return [dict(r._mapping) for r in rows]


def _holdout_check(row: dict[str, Any]) -> dict[str, str] | None:
    checks = orjson.loads(row["guardrails"])
    return next((c for c in checks if c["guardrail"] == "holdout"), None)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Holdouts on, 330 customers decided for, outcomes planted after their decisions."""
    root = tmp_path_factory.mktemp("report")
    base = make_project(root / "proj", f"sqlite:///{root / 'store.db'}", clock=lambda: NOON)
    write_policy_files(base)
    base.close()
    project = _with_holdouts(base)
    groups = [f"g{n:03d}" for n in range(_N + _LATE)]
    before = NOON - dt.timedelta(days=10)
    load_events(project, "r1", [_event("group", None, before, g) for g in groups])
    stitch(project)
    nodes = project.warehouse.table("account_nodes").to_pyarrow().to_pylist()
    account = {r["identifier"].removeprefix("group_id:"): r["account_id"] for r in nodes}
    states = [
        # the first half would get the save campaign's call, the rest the nurture tips
        customer(n, churn=0.6, stage="renewal") if n % 2 == 0 else customer(n, logins=2)
        for n in range(_N + _LATE)
    ]
    publish(
        project,
        [
            dataclasses.replace(s, account_id=account[g])
            for s, g in zip(states, groups, strict=True)
        ],
    )
    ids = [account[g] for g in groups]
    decide(project, now=NOON, accounts=ids[:_N])
    decide(project, now=NOON + dt.timedelta(days=20), accounts=ids[_N:])
    group_of = {a: g for g, a in account.items()}
    planted = []
    for row in _log(project):
        if row["status"] not in (*_TREATED, "holdout"):
            continue
        a, at, treated = row["account_id"], row["decided_at"], row["status"] != "holdout"
        g = group_of[a]
        planted.append(_event("track", "Order Completed", at - dt.timedelta(days=1), g))
        if _converts(a, treated):
            planted.append(_event("track", "Subscription Started", at + dt.timedelta(days=3), g))
            paid = at + dt.timedelta(days=5)
            planted.append(_event("track", "Invoice Paid", paid, g, amount=_amount(a)))
        if _churns(a, treated):
            planted.append(_event("track", "Subscription Canceled", at + dt.timedelta(days=9), g))
        # after the window: neither a churn nor revenue of this decision
        planted.append(_event("track", "Subscription Canceled", at + dt.timedelta(days=31), g))
        planted.append(_event("track", "Invoice Paid", at + dt.timedelta(days=32), g, amount=1e4))
    load_events(project, "r2", planted)
    yield project
    project.close()


def _arms(project: Project, group: str, as_of: dt.datetime = AS_OF) -> dict[str, list[str]]:
    """The log's accounts per arm, read straight from the holdout checks."""
    arms: dict[str, list[str]] = {TREATED: [], HELD_OUT: []}
    for row in _log(project):
        check = _holdout_check(row)
        if check is None or row["decided_at"] + _WINDOW > as_of:
            continue
        detail = check["detail"]
        if row["status"] == "holdout":
            held = detail.startswith("global control" if group == "global" else "campaign save")
            if held:
                arms[HELD_OUT].append(row["account_id"])
            elif group == "global":  # kept by the campaign: outside the global control
                arms[TREATED].append(row["account_id"])
        elif row["status"] in _TREATED and (group == "global" or "campaign save" in detail):
            arms[TREATED].append(row["account_id"])
    return arms


def test_arm_sizes_match_the_decision_log_and_late_decisions_are_pending(
    world: Project,
) -> None:
    report = experiment_report(world, as_of=AS_OF)
    assert [g.group for g in report.groups] == ["global control", "campaign save"]
    glob, save = report.group("global control"), report.group("campaign save")
    for group, name in ((glob, "global"), (save, "save")):
        arms = _arms(world, name)
        assert group.customers == {arm: len(accounts) for arm, accounts in arms.items()}
        assert min(group.customers.values()) > 20
    assert glob.percent == 30
    assert save.percent == 40
    # every NOON decision is in the global comparison, those the save holdout kept too
    assert sum(glob.customers.values()) == _N
    # the late cycle's customers are pending, not failures
    late = [r for r in _log(world) if r["decided_at"] > NOON]
    assert late
    assert all(r["status"] in (*_TREATED, "holdout") for r in late)
    assert glob.pending == _LATE
    assert save.pending == sum(
        1 for r in late if "campaign save" in (_holdout_check(r) or {}).get("detail", "")
    )
    assert glob.repeats == 0
    assert glob.srm is not None
    assert not glob.srm.flagged
    assert save.srm is not None
    assert not save.srm.flagged
    assert save.srm.expected[HELD_OUT] == pytest.approx(0.4 * sum(save.customers.values()))
    # the log keeps each customer's stage with the assignment: lifts per stage, by default
    assert not any("stage" in note for note in glob.notes)
    assert glob.segments is not None
    stages = {r.segment for r in glob.segments["retention"].rows}
    assert stages == {"renewal", "established"}
    save_stages = save.segments["retention"].rows if save.segments else []
    assert {r.segment for r in save_stages} == {"renewal"}  # the save rule is for renewals
    assigned = [orjson.loads(r["experiment"]) for r in _log(world) if _holdout_check(r)]
    assert all(a["stage"] in ("renewal", "established") for a in assigned)
    assert {a["arm"] for a in assigned} == {"treated", "held out"}
    assert {a["group"] for a in assigned} == {"global", "campaign:save"}


@pytest.mark.parametrize(("name", "key"), [("global control", "global"), ("campaign save", "save")])
def test_lifts_match_statsmodels_and_scipy_on_the_planted_outcomes(
    world: Project, name: str, key: str
) -> None:
    report = experiment_report(world, as_of=AS_OF, cuped=False)  # the raw comparisons
    group = report.group(name)
    arms = _arms(world, key)
    treated, held = arms[TREATED], arms[HELD_OUT]
    # the planted dice follow what each customer got: the global control's other arm
    # also holds those the save holdout kept, who were planted as untreated
    acted = {r["account_id"]: r["status"] != "holdout" for r in _log(world)}
    assert sum(not acted[a] for a in treated) < len(treated) / 4
    conv_t = np.array([_converts(a, acted[a]) for a in treated], dtype=float)
    conv_c = np.array([_converts(a, False) for a in held], dtype=float)
    lift = group.lift("conversion")
    assert lift is not None
    assert lift.absolute > 0
    low, high = proportion.confint_proportions_2indep(
        conv_t.sum(), conv_t.size, conv_c.sum(), conv_c.size, method="wald", compare="diff"
    )
    p = proportion.test_proportions_2indep(
        conv_t.sum(), conv_t.size, conv_c.sum(), conv_c.size, method="wald"
    ).pvalue
    assert lift.absolute == pytest.approx(conv_t.mean() - conv_c.mean(), rel=1e-12)
    assert (lift.absolute_ci_low, lift.absolute_ci_high) == pytest.approx((low, high), rel=1e-9)
    assert lift.p_value == pytest.approx(p, rel=1e-6)
    assert low > 0  # 45 % against 20 %: clearly positive on these sizes
    rows = {row.arm: row for row in group.rows()}
    summary = rows[TREATED].conversion
    assert summary is not None
    assert summary.n == len(treated)
    wilson = proportion.proportion_confint(conv_t.sum(), conv_t.size, method="wilson")
    assert (summary.ci_low, summary.ci_high) == pytest.approx(wilson, rel=1e-9)

    kept_t = np.array([not _churns(a, acted[a]) for a in treated], dtype=float)
    kept_c = np.array([not _churns(a, False) for a in held], dtype=float)
    retention = group.lift("retention")
    assert retention is not None
    assert retention.absolute == pytest.approx(kept_t.mean() - kept_c.mean(), rel=1e-12)

    paid_t = np.array([_amount(a) if _converts(a, acted[a]) else 0.0 for a in treated])
    paid_c = np.array([_amount(a) if _converts(a, False) else 0.0 for a in held])
    revenue = group.lift("revenue")
    assert revenue is not None
    assert revenue.absolute == pytest.approx(paid_t.mean() - paid_c.mean(), rel=1e-12)
    welch = stats.ttest_ind(paid_t, paid_c, equal_var=False)
    assert revenue.p_value == pytest.approx(welch.pvalue, rel=1e-6)


# before the split is tampered with below
def test_cuped_adjusts_the_lifts_by_the_risk_each_decision_logged(world: Project) -> None:
    """The lifts are CUPED-adjusted by the pre-decision churn probability (retention,
    conversion) and MRR (revenue); the arm summaries stay raw."""
    raw = experiment_report(world, as_of=AS_OF, cuped=False).group("global control")
    adjusted = experiment_report(world, as_of=AS_OF).group("global control")
    arms = _arms(world, "global")
    logged = {r["account_id"]: orjson.loads(r["scores"]) for r in _log(world)}
    accounts = [*arms[TREATED], *arms[HELD_OUT]]
    labels = [TREATED] * len(arms[TREATED]) + [HELD_OUT] * len(arms[HELD_OUT])
    acted = {r["account_id"]: r["status"] != "holdout" for r in _log(world)}
    kept = np.array([not _churns(a, acted[a]) for a in accounts], dtype=float)
    risk = np.array([logged[a]["churn_probability"] for a in accounts])
    expected = analyze(kept, labels, control=HELD_OUT, metric="retention", covariate=risk)
    got = adjusted.metric("retention")
    assert got is not None
    assert got.cuped is not None
    assert got.cuped.theta == pytest.approx(expected.cuped.theta, rel=1e-12)  # type: ignore[union-attr]
    assert got.lifts[0].absolute == pytest.approx(expected.lifts[0].absolute, rel=1e-12)
    assert got.lifts[0].p_value == pytest.approx(expected.lifts[0].p_value, rel=1e-9)
    # the arm summaries are the raw ones
    assert got.arms == raw.metric("retention").arms  # type: ignore[union-attr]
    assert raw.metric("retention").cuped is None  # type: ignore[union-attr]
    # the save campaign's customers all logged the same risk: nothing to adjust by
    save = experiment_report(world, as_of=AS_OF).group("campaign save")
    assert save.metric("retention").cuped is None  # type: ignore[union-attr]
    assert any("no CUPED" in note for note in save.notes)


def test_every_lift_has_an_always_valid_test_looked_at_each_day_a_window_ended(
    world: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read 55 days on, both cycles' windows have ended: two looks (NOON + 30 d with
    the first 300 customers, + 50 d with all), the p-value the running minimum of the
    mSPRT's 1/Λ at each, the interval wider than the fixed-horizon one."""
    as_of = NOON + dt.timedelta(days=55)
    group = experiment_report(world, as_of=as_of, cuped=False).group("global control")
    arms = _arms(world, "global", as_of)
    acted = {r["account_id"]: r["status"] != "holdout" for r in _log(world)}
    decided = {r["account_id"]: r["decided_at"] for r in _log(world)}
    found = group.monitoring("conversion")
    assert found is not None
    assert found.result.mixture_sd == 0.05  # the default τ for a rate
    first, second = NOON + _WINDOW, NOON + dt.timedelta(days=20) + _WINDOW
    assert [k.look for k in found.result.looks] == [first.date(), second.date()]
    tau2, running = 0.05**2, 1.0
    for look, until in zip(found.result.looks, (first, second), strict=True):
        t = [_converts(a, acted[a]) for a in arms[TREATED] if decided[a] + _WINDOW <= until]
        c = [_converts(a, False) for a in arms[HELD_OUT] if decided[a] + _WINDOW <= until]
        assert (look.n_treatment, look.n_control) == (len(t), len(c))
        p_t, p_c = np.mean(t), np.mean(c)
        v = p_t * (1 - p_t) / len(t) + p_c * (1 - p_c) / len(c)
        d = p_t - p_c
        likelihood_ratio = np.sqrt(v / (v + tau2)) * np.exp(tau2 * d**2 / (2 * v * (v + tau2)))
        running = min(running, 1.0, 1 / likelihood_ratio)
        assert look.estimate == pytest.approx(d, rel=1e-12)
        assert look.p_value == pytest.approx(running, rel=1e-9)
    last = found.result.looks[-1]
    assert last.n_treatment + last.n_control == sum(group.customers.values())
    lift = group.lift("conversion")
    assert lift is not None
    # read every day it asks for more evidence than read once
    assert found.ci_low < lift.absolute_ci_low < lift.absolute_ci_high < found.ci_high
    assert found.p_value > lift.p_value
    assert found.p_value < 0.05  # 45 % against 20 %: clear even so
    assert found.significant_since == first.date()
    assert found.p_adjusted is None  # one treatment arm
    # retention is watched with the default τ; revenue has no scale tenure could assume
    assert group.monitoring("retention") is not None
    assert group.monitoring("revenue") is None
    assert any("measure.sequential.revenue" in note for note in group.notes)
    # once the revenue worth detecting is configured, revenue is watched too
    sequential = world.config.measure.sequential.model_copy(update={"revenue": 10.0})
    measure = world.config.measure.model_copy(update={"sequential": sequential})
    monkeypatch.setattr(world, "config", world.config.model_copy(update={"measure": measure}))
    watched = experiment_report(world, as_of=as_of).group("global control")
    revenue = watched.monitoring("revenue")
    assert revenue is not None
    assert revenue.result.kind == "continuous"
    assert revenue.result.mixture_sd == 10.0
    as_json = watched.as_dict()
    assert {(m["metric"], m["treatment"]) for m in as_json["sequential"]} == {
        (m, TREATED) for m in ("conversion", "retention", "revenue")
    }
    assert as_json["sequential"][0]["looks"][0]["look"] == first.date().isoformat()
    assert as_json["sequential"][0]["significant_since"] == first.date().isoformat()
    orjson.dumps(as_json)  # JSON-safe, for the API


def test_a_stage_breakdown_when_stages_are_passed_in(world: Project) -> None:
    stages = {r["account_id"]: r["account_id"][-1] < "8" for r in _log(world)}
    segments = {a: "early" if low else "late" for a, low in stages.items()}
    report = experiment_report(world, as_of=AS_OF, segments=segments)
    group = report.group("global control")
    assert group.segments is not None
    rows = group.segments["conversion"].rows
    assert {r.segment for r in rows} == {"early", "late"}
    assert all(r.lift.p_adjusted is not None and r.lift.p_adjusted >= r.lift.p_value for r in rows)
    assert sum(r.n_treatment + r.n_control for r in rows) == sum(group.customers.values())


def test_the_cli_prints_the_table_and_json(world: Project) -> None:
    runner = CliRunner()
    args = ["report", "experiments", "-p", str(world.root), "--as-of", AS_OF.isoformat()]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "global control: 30 % held out" in result.stdout
    assert "campaign save: 40 % held out" in result.stdout
    assert "SRM ok" in result.stdout
    assert "always-valid" in result.stdout
    assert "by stage at decision" in result.stdout
    assert "renewal" in result.stdout
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    report = experiment_report(world, as_of=AS_OF)
    assert [g["customers"] for g in found["groups"]] == [g.customers for g in report.groups]
    assert found["window_days"] == 30


def test_a_tampered_split_is_flagged(world: Project) -> None:
    """Relabel a third of the treated as held out: the split no longer is 70/30."""
    hold = orjson.dumps(
        [{"guardrail": "holdout", "verdict": "hold", "detail": "global control (30 %)"}]
    ).decode()
    with world.store.begin() as connection:
        for row in _log(world):
            check = _holdout_check(row)
            if (
                row["status"] in _TREATED
                and check is not None
                and check["detail"] == "treated (not in the global control)"
                and _u(row["account_id"], "tamper") < 0.5
            ):
                connection.execute(
                    update(decisions)
                    .where(decisions.c.id == row["id"])
                    .values(status="holdout", guardrails=hold)
                )
    group = experiment_report(world, as_of=AS_OF).group("global control")
    assert group.srm is not None
    assert group.srm.flagged
    assert group.srm.p_value < 0.001


def test_a_rejected_review_stays_in_the_treated_arm(world: Project) -> None:
    """Intention to treat: what a reviewer made of the action does not move the customer."""
    before = experiment_report(world, as_of=AS_OF).group("campaign save").customers
    saved = [
        r for r in _log(world) if "campaign save" in (_holdout_check(r) or {}).get("detail", "")
    ]
    row = next(r for r in saved if r["status"] == "queued")
    try:
        with world.store.begin() as connection:
            connection.execute(
                update(decisions).where(decisions.c.id == row["id"]).values(status="rejected")
            )
        after = experiment_report(world, as_of=AS_OF).group("campaign save").customers
    finally:
        with world.store.begin() as connection:
            connection.execute(
                update(decisions).where(decisions.c.id == row["id"]).values(status="queued")
            )
    assert after == before


# ------------------------------------------------------------------ a policy's experiment
_ARMS = ("call", "email", "control")
_EXPERIMENT_N = 600  # decided at NOON, a tenth of them in the global control
_CONVERTS = {"call": 0.5, "email": 0.35, "control": 0.2}
_CHURNS = {"call": 0.1, "email": 0.2, "control": 0.3}
_GROUP = "experiment save-channel"


def _got(row: dict[str, Any]) -> str:
    """What a decision gave its customer: an arm's action, or nothing ("control")."""
    if row["status"] == "holdout":
        return "control"
    return str(orjson.loads(row["experiment"])["arm"])


@pytest.fixture(scope="module")
def experiment_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A three-arm experiment in the policy, the global control at 10 %, outcomes by arm."""
    root = tmp_path_factory.mktemp("experiment")
    base = make_project(root / "proj", f"sqlite:///{root / 'store.db'}", clock=lambda: NOON)
    write_policy_files(base, EXPERIMENT)
    base.close()
    text = (root / "proj" / "tenure.yaml").read_text()
    edited = text.replace("    global_control_percent: 0 ", "    global_control_percent: 10 #", 1)
    assert edited != text
    (root / "proj" / "tenure.yaml").write_text(edited)
    project = Project.open(root / "proj", clock=lambda: NOON)
    groups = [f"x{n:03d}" for n in range(_EXPERIMENT_N + _LATE)]
    before = NOON - dt.timedelta(days=10)
    load_events(project, "r1", [_event("group", None, before, g) for g in groups])
    stitch(project)
    nodes = project.warehouse.table("account_nodes").to_pyarrow().to_pylist()
    account = {r["identifier"].removeprefix("group_id:"): r["account_id"] for r in nodes}
    stage = ("renewal", "established")
    states = [
        dataclasses.replace(customer(n, churn=0.6, stage=stage[n % 2]), account_id=account[g])
        for n, g in enumerate(groups)
    ]
    publish(project, states)
    ids = [account[g] for g in groups]
    decide(project, now=NOON, accounts=ids[:_EXPERIMENT_N])
    decide(project, now=NOON + dt.timedelta(days=20), accounts=ids[_EXPERIMENT_N:])
    group_of = {a: g for g, a in account.items()}
    planted = []
    for row in _log(project):
        a, at, got = row["account_id"], row["decided_at"], _got(row)
        g = group_of[a]
        if _u(a, "convert") < _CONVERTS[got]:
            planted.append(_event("track", "Subscription Started", at + dt.timedelta(days=3), g))
            paid = at + dt.timedelta(days=5)
            planted.append(_event("track", "Invoice Paid", paid, g, amount=_amount(a)))
        if _u(a, "churn") < _CHURNS[got]:
            planted.append(_event("track", "Subscription Canceled", at + dt.timedelta(days=9), g))
    load_events(project, "r2", planted)
    yield project
    project.close()


def _experiment_arms(project: Project) -> dict[str, list[str]]:
    """The log's accounts per arm of the experiment, read straight from the holdout checks."""
    arms: dict[str, list[str]] = {arm: [] for arm in _ARMS}
    for row in _log(project):
        check = _holdout_check(row)
        if check is None or check.get("group") != "experiment:save-channel":
            continue
        if row["decided_at"] + _WINDOW <= AS_OF:
            arms[str(check["arm"])].append(row["account_id"])
    return arms


def test_an_experiment_has_every_arm_and_its_split_is_checked_against_the_policy(
    experiment_world: Project,
) -> None:
    report = experiment_report(experiment_world, as_of=AS_OF)
    assert [g.group for g in report.groups] == ["global control", _GROUP]
    group = report.group(_GROUP)
    arms = _experiment_arms(experiment_world)
    assert (group.experiment, group.arms, group.control) == ("save-channel", _ARMS, "control")
    assert group.customers == {arm: len(accounts) for arm, accounts in arms.items()}
    assert group.percents == {"call": 40.0, "email": 40.0, "control": 20.0}
    assert group.percent == 20.0
    assert [row.arm for row in group.rows()] == list(_ARMS)
    n = sum(group.customers.values())
    group_of = {r["id"]: (_holdout_check(r) or {}).get("group") for r in _log(experiment_world)}
    late = [r for r in _log(experiment_world) if r["decided_at"] > NOON]
    assert group.pending == sum(group_of[r["id"]] != "global" for r in late)
    # the global control came first: none of its customers is in an arm
    held = {r["account_id"] for r in _log(experiment_world) if group_of[r["id"]] == "global"}
    assert held
    assert not held & {a for accounts in arms.values() for a in accounts}
    assert report.group("global control").customers["treated"] == n
    # SRM against the policy's weights, as scipy computes it
    assert group.srm is not None
    observed = [group.customers[arm] for arm in _ARMS]
    expected = [n * 0.4, n * 0.4, n * 0.2]
    assert group.srm.expected == pytest.approx(dict(zip(_ARMS, expected, strict=True)))
    chisquare = stats.chisquare(observed, expected)
    assert group.srm.p_value == pytest.approx(chisquare.pvalue, rel=1e-9)
    assert not group.srm.flagged
    assert group.segments is not None
    assert {(r.segment, r.lift.treatment) for r in group.segments["conversion"].rows} == {
        (stage, arm) for stage in ("renewal", "established") for arm in ("call", "email")
    }


def test_experiment_lifts_match_statsmodels_and_scipy_per_arm(
    experiment_world: Project,
) -> None:
    group = experiment_report(experiment_world, as_of=AS_OF).group(_GROUP)
    arms = _experiment_arms(experiment_world)
    converted = {
        arm: np.array([_u(a, "convert") < _CONVERTS[arm] for a in accounts], dtype=float)
        for arm, accounts in arms.items()
    }
    control = converted["control"]
    raw, adjusted = [], []
    for arm in ("call", "email"):
        treated = converted[arm]
        summary = next(r for r in group.rows() if r.arm == arm).conversion
        assert summary is not None
        assert (summary.n, summary.mean) == (treated.size, pytest.approx(treated.mean()))
        wilson = proportion.proportion_confint(treated.sum(), treated.size, method="wilson")
        assert (summary.ci_low, summary.ci_high) == pytest.approx(wilson, rel=1e-9)
        lift = group.lift("conversion", arm)
        assert lift is not None
        assert (lift.treatment, lift.control) == (arm, "control")
        assert lift.absolute == pytest.approx(treated.mean() - control.mean(), rel=1e-12)
        counts = (treated.sum(), treated.size, control.sum(), control.size)
        low, high = proportion.confint_proportions_2indep(*counts, method="wald", compare="diff")
        assert (lift.absolute_ci_low, lift.absolute_ci_high) == pytest.approx((low, high))
        p = proportion.test_proportions_2indep(*counts, method="wald").pvalue
        assert lift.p_value == pytest.approx(p, rel=1e-6)
        raw.append(p)
        adjusted.append(lift.p_adjusted)
        if arm == "call":  # 50 % against 20 %: clearly positive on these sizes
            assert low > 0
    # Holm across the two treatment arms, as statsmodels adjusts them
    holm = multipletests(raw, method="holm")[1]
    assert adjusted == pytest.approx(list(holm), rel=1e-9)
    # revenue: Welch per arm against the control
    paid = {
        arm: np.array([_amount(a) if _u(a, "convert") < _CONVERTS[arm] else 0.0 for a in accounts])
        for arm, accounts in arms.items()
    }
    for arm in ("call", "email"):
        revenue = group.lift("revenue", arm)
        assert revenue is not None
        welch = stats.ttest_ind(paid[arm], paid["control"], equal_var=False)
        assert revenue.absolute == pytest.approx(paid[arm].mean() - paid["control"].mean())
        assert revenue.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    kept = {
        arm: np.array([_u(a, "churn") >= _CHURNS[arm] for a in accounts], dtype=float)
        for arm, accounts in arms.items()
    }
    retention = group.lift("retention", "email")
    assert retention is not None
    assert retention.absolute == pytest.approx(kept["email"].mean() - kept["control"].mean())
    # each arm's always-valid test against the control, Holm-adjusted across the arms
    watched = [group.monitoring("retention", arm) for arm in ("call", "email")]
    assert all(m is not None and m.result.control == "control" for m in watched)
    last = [m.p_value for m in watched if m is not None]
    holm = multipletests(last, method="holm")[1]
    assert [m.p_adjusted for m in watched if m is not None] == pytest.approx(list(holm))


def test_the_cli_prints_every_arm_and_a_lift_per_treatment_arm(
    experiment_world: Project,
) -> None:
    runner = CliRunner()
    args = ["report", "experiments", "-p", str(experiment_world.root), "--as-of", AS_OF.isoformat()]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "experiment save-channel: call 40 %, email 40 %, control 20 %; lifts against" in text
    table = text.split("experiment save-channel:", 1)[1].split("by stage at decision", 1)[0]
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in table.splitlines()]
    rows = [c for c in cells if c and c[0]]  # a row's first line: its arm and customers
    arms = _experiment_arms(experiment_world)
    assert rows == [
        *([arm, f"{len(arms[arm]):,}"] for arm in _ARMS),
        ["lift call", ""],
        ["always-valid call", ""],
        ["lift email", ""],
        ["always-valid email", ""],
    ]
    assert "Holm" in table
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    found = json.loads(result.stdout)["groups"][1]
    assert (found["group"], found["arms"], found["control"]) == (_GROUP, list(_ARMS), "control")
    assert [lift["treatment"] for lift in found["metrics"][0]["lifts"]] == ["call", "email"]


def test_an_experiment_no_longer_in_the_policies_is_checked_against_the_log(
    experiment_world: Project,
) -> None:
    policy = experiment_world.root / "policies" / "retention.yaml"
    text = policy.read_text()
    policy.write_text(POLICY)
    try:
        group = experiment_report(experiment_world, as_of=AS_OF).group(_GROUP)
    finally:
        policy.write_text(text)
    assert group.arms == ("call", "email", "control")
    assert group.percents == {"call": 40.0, "email": 40.0, "control": 20.0}
    assert group.srm is not None
    assert not group.srm.flagged
    assert group.notes[0] == (
        "the experiment is not in the loaded policies: the SRM check uses the percents the "
        "log names"
    )
