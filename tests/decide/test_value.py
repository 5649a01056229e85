"""What an action is worth: rule value expressions, uplift's expected value, budgets by value."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenure._config_decide import DecideSettings
from tenure.decide import CustomerState, Decider, Guardrails, decide, load_policies
from tenure.decide._guardrails import Check, Verdict
from tenure.errors import PolicyError
from tenure.project import Project
from tests.conftest import make_project
from tests.decide._world import NOON, customer, publish, queued, write, write_policy_files

# a value expression ranks the customers a rule matches: the highest risk first
RISK = """\
name: risk
rules:
  - id: save-call
    when: {when}
    value: scores.churn_probability
    action: {{channel: csm_task, template: csm_call, campaign: save, cost: 10}}
"""

# uplift estimates for csm_task give the call its expected value; the in-app tip has none
UPLIFT = """\
name: save
rules:
  - id: save-call
    when: scores.churn_probability >= 0.0
    action: {channel: csm_task, template: csm_call, campaign: save, cost: 10}
    priority: 90
  - id: tips-in-app
    when: features.logins_30d < 5
    action: {channel: in_app, template: tips_in_app, campaign: nurture}
    priority: 10
"""


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[Project]:
    project = make_project(tmp_path / "proj", store_url, clock=lambda: NOON)
    write_policy_files(project)
    yield project
    project.close()


def _configured(project: Project, policy: str, **settings: str) -> Project:
    """*project* with *policy* as its only policy and ``decide.<key>: <yaml>`` *settings*."""
    write_policy_files(project, policy)
    config = project.root / "tenure.yaml"
    text = config.read_text()
    for key, value in settings.items():
        [line] = [x for x in text.splitlines() if x.startswith(f"  {key}: ")]
        text = text.replace(line, f"  {key}: {value}")
    config.write_text(text)
    return Project.open(project.root, clock=lambda: NOON)


def _acted(project: Project) -> dict[str, str]:
    return {str(row["account_id"]): str(row["channel"]) for row in queued(project)}


def _uplifted(
    n: int, uplift: float, *, clv: float = 2_000.0, logins: float = 20.0
) -> CustomerState:
    return dataclasses.replace(customer(n, clv=clv, logins=logins), uplift={"csm_task": uplift})


# ------------------------------------------------------------------ budgets by value
@pytest.mark.parametrize(
    "when",
    [
        "scores.churn_probability >= 0.0",  # contexts extracted by the database
        "account.value > 0.0",  # a derived value: matched on full states
    ],
)
def test_a_budget_goes_to_the_highest_value_customers_whatever_their_ids(
    world: Project, when: str
) -> None:
    churn = [0.31, 0.92, 0.15, 0.77, 0.48, 0.66, 0.05, 0.85, 0.22, 0.59]
    project = _configured(world, RISK.format(when=when), global_budget="{budget: 30, period: 30d}")
    publish(project, [customer(n, churn=c) for n, c in enumerate(churn, start=1)])
    dry = decide(project, dry_run=True)
    report = decide(project)
    # three calls of 10 fit in 30: the three highest risks, not the first three ids
    assert _acted(project) == {"a_0002": "csm_task", "a_0008": "csm_task", "a_0004": "csm_task"}
    assert [d.account_id for d in report.decisions][:3] == ["a_0002", "a_0008", "a_0004"]
    assert report.by_status == {"queued": 3, "blocked": 7}
    assert [(d.account_id, d.status) for d in dry.decisions] == [
        (d.account_id, d.status) for d in report.decisions
    ]
    first = report.decisions[0]
    assert first.chosen is not None
    assert first.chosen.value == 0.92
    assert "(value 0.92 by the rule's value expression scores.churn_probability;" in (
        first.explanation
    )
    assert "global budget: 30.00 spent + 10.00 > 30.00 per 30d" in report.decisions[3].explanation
    project.close()


def test_without_a_budget_customers_are_decided_in_account_order(world: Project) -> None:
    project = _configured(world, RISK.format(when="scores.churn_probability >= 0.0"))
    publish(project, [customer(n, churn=c) for n, c in enumerate([0.2, 0.9, 0.5], start=1)])
    report = decide(project)
    assert [d.account_id for d in report.decisions] == ["a_0001", "a_0002", "a_0003"]
    assert report.by_status == {"queued": 3}
    project.close()


# ------------------------------------------------------------------ uplift
def test_uplift_spends_the_budget_where_it_gains_most_and_leaves_sleeping_dogs(
    world: Project,
) -> None:
    project = _configured(world, UPLIFT, budgets="{save: {budget: 20, period: 30d}}")
    publish(
        project,
        [
            _uplifted(1, 0.01),  # 0.01 × 2000 − 10 = 10
            _uplifted(2, 0.05),  # 90
            _uplifted(3, 0.02, clv=4_000),  # 70
            _uplifted(4, 0.03, clv=1_000),  # 20
            _uplifted(5, -0.031, clv=400, logins=2),  # −22.40: the call does harm; a tip may go
            _uplifted(6, -0.01),  # −30: nothing else matches, so nothing at all
        ],
    )
    report = decide(project)
    assert _acted(project) == {"a_0002": "csm_task", "a_0003": "csm_task", "a_0005": "in_app"}
    decided = {d.account_id: d for d in report.decisions}
    assert {a: d.status for a, d in decided.items()} == {
        "a_0001": "blocked",  # by the budget: the two best took it
        "a_0002": "queued",
        "a_0003": "queued",
        "a_0004": "blocked",
        "a_0005": "queued",
        "a_0006": "blocked",
    }
    best = decided["a_0002"]
    assert best.chosen is not None
    assert best.chosen.value == pytest.approx(90.0)
    assert "expected value 90.00: uplift 0.050 × value 2,000.00 − cost 10.00" in best.explanation
    assert decided["a_0004"].checks[-1].guardrail == "budget"

    harmed = decided["a_0005"]
    assert harmed.chosen is not None
    assert harmed.chosen.rule.key == "save/tips-in-app"
    call = harmed.candidates[0]
    assert (call.rule.key, call.outcome) == ("save/save-call", "blocked")
    detail = "expected value −22.40 < 0: uplift −0.031 × value 400.00 − cost 10.00"
    assert call.checks == (Check("value", Verdict.BLOCK, detail),)
    assert f"Also matched save/save-call, blocked by value: {detail}." in harmed.explanation

    alone = decided["a_0006"]
    assert alone.chosen is None
    assert [c.as_dict() for c in alone.checks] == [
        {
            "guardrail": "value",
            "verdict": "block",
            "detail": "expected value −30.00 < 0: uplift −0.010 × value 2,000.00 − cost 10.00",
        }
    ]
    project.close()


def test_act_on_negative_value_restores_acting(world: Project) -> None:
    project = _configured(world, UPLIFT, act_on_negative_value="true")
    publish(project, [_uplifted(5, -0.031, clv=400, logins=2), _uplifted(6, -0.01)])
    report = decide(project)
    assert _acted(project) == {"a_0005": "csm_task", "a_0006": "csm_task"}
    assert report.by_status == {"queued": 2}
    [first, _] = report.decisions
    assert "expected value −22.40: uplift −0.031 × value 400.00 − cost 10.00" in (first.explanation)
    project.close()


# ------------------------------------------------------------------ value expressions
def test_a_bad_value_expression_names_the_file_rule_and_key(tmp_path: Path) -> None:
    policy = RISK.format(when="'true'")
    path = tmp_path / "p" / "risk.yaml"
    write(path, policy.replace("value: scores.churn_probability", "value: scores.churn *"))
    with pytest.raises(PolicyError) as caught:
        load_policies(path.parent)
    assert str(caught.value).startswith(
        f"{path}: policy 'risk', rule 'save-call', key 'value': the value is not valid CEL: "
    )
    write(path, policy.replace("value: scores.churn_probability", "value: risk * 2.0"))
    with pytest.raises(PolicyError) as unknown:
        load_policies(path.parent)
    assert str(unknown.value) == (
        f"{path}: policy 'risk', rule 'save-call', key 'value': unknown variable 'risk' in "
        "'risk * 2.0'; conditions and values see scores, health, features, stage, traits, "
        "account, uplift"
    )


def test_a_value_that_cannot_be_evaluated_falls_back_to_priority_and_is_recorded(
    world: Project,
) -> None:
    policy = """\
name: nps
rules:
  - id: survey-call
    when: features.logins_30d < 5
    value: features.nps_last
    action: {channel: csm_task, template: csm_call}
    priority: 10
  - id: tips-in-app
    when: features.logins_30d < 5
    action: {channel: in_app, template: tips_in_app}
    priority: 50
"""
    project = _configured(world, policy)
    policies = load_policies(project.root / "policies")
    # the value's fields are in what contexts hold, not in what matching extracts
    assert policies.fields["features"] == frozenset({"logins_30d", "nps_last"})
    assert policies.condition_fields["features"] == frozenset({"logins_30d"})
    publish(project, [customer(1, logins=2, nps=6), customer(2, logins=2)])
    report = decide(project)
    assert _acted(project) == {"a_0001": "csm_task", "a_0002": "in_app"}
    valued, fallen = report.decisions
    assert valued.errors == {}
    assert valued.chosen is not None
    assert valued.chosen.value == 6.0  # a value ranks above any priority
    assert fallen.errors == {"nps/survey-call": "no value for 'nps_last'"}
    assert [(c.rule.key, c.value) for c in fallen.candidates] == [
        ("nps/tips-in-app", None),
        ("nps/survey-call", None),
    ]
    assert (
        "Values that could not be evaluated, so ranked by priority: "
        "nps/survey-call: no value for 'nps_last'." in fallen.explanation
    )
    project.close()


@pytest.mark.parametrize(
    ("value", "found", "error"),
    [
        ("scores.churn_probability", 0.3, None),
        ("2 - 1", 1.0, None),  # an int is a number too
        ("stage", None, "gave 'established', not a number"),
        ("scores.churn_probability > 0.5", None, "gave False, not a number"),
        ("scores.churn_probability / 0.0", None, "gave inf, not a finite number"),
    ],
)
def test_a_value_is_a_finite_number(
    tmp_path: Path, value: str, found: float | None, error: str | None
) -> None:
    policy = RISK.format(when="'true'").replace("scores.churn_probability", value)
    write(tmp_path / "p" / "risk.yaml", policy)
    decider = Decider(load_policies(tmp_path / "p"), Guardrails(DecideSettings()))
    [candidate], errors = decider.rank(customer(1), list(decider.policies.rules))
    assert candidate.value == found
    assert errors == ({} if error is None else {"risk/save-call": error})
