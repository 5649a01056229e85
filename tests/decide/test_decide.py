"""Policies, arbitration, guardrails, review and the decision log, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tenure.decide import (
    approve,
    decide,
    explain_decision,
    get_decision,
    list_reviews,
    load_policies,
    reject,
)
from tenure.errors import ConfigError, PolicyError, ReviewError
from tenure.govern.consent import ConsentReason, record_consent, verify_unsubscribe_token
from tenure.project import Project
from tenure.store._tables import decisions, policy_versions
from tests.conftest import make_project
from tests.decide._world import NOON, POLICY, customer, publish, queued, write, write_policy_files


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[Project]:
    project = make_project(tmp_path / "proj", store_url, clock=lambda: NOON)
    write_policy_files(project)
    yield project
    project.close()


def _by_account(project: Project) -> dict[str, dict[str, object]]:
    return {row["account_id"]: row for row in queued(project)}


# ------------------------------------------------------------------ policies
def test_bad_policies_name_the_file_rule_and_problem(tmp_path: Path) -> None:
    write(tmp_path / "p" / "a.yaml", POLICY.replace('stage == "renewal"', 'stage == "renewal" &&'))
    with pytest.raises(PolicyError) as bad_when:
        load_policies(tmp_path / "p")
    assert str(bad_when.value).startswith(
        f"{tmp_path / 'p' / 'a.yaml'}: policy 'retention', rule 'renewal-call', key 'when': "
        "the condition is not valid CEL: "
    )
    write(tmp_path / "q" / "a.yaml", POLICY.replace("stage ==", "plan =="))
    with pytest.raises(
        PolicyError, match=r"key 'when': unknown variable 'plan'.*conditions and values see scores"
    ):
        load_policies(tmp_path / "q")
    write(tmp_path / "r" / "a.yaml", POLICY.replace("channel: csm_task", "channel: fax"))
    with pytest.raises(ConfigError) as caught:
        load_policies(tmp_path / "r")
    assert "rules.0.action.channel" in str(caught.value)
    assert str(tmp_path / "r" / "a.yaml") in str(caught.value)


def test_conditions_read_only_the_fields_they_name() -> None:
    from tenure.decide._policy import _fields

    assert _fields('scores.churn_probability > 0.5 && stage == "x"') == {
        "scores": frozenset({"churn_probability"}),
        "stage": None,
    }
    # a macro over the map needs all of it; a field named in a string is not a use
    assert _fields("features.exists(k, k == 'scores.x')") == {"features": None}


# ------------------------------------------------------------------ decisions
def test_one_action_per_customer_chosen_by_priority_and_logged(world: Project) -> None:
    publish(
        world,
        [
            customer(1, churn=0.6, stage="renewal"),  # renewal call (90) beats tips (50)
            customer(2, logins=2),  # tips email
            customer(3),  # nothing matches
        ],
    )
    report = decide(world)
    assert report.by_status == {"queued": 2}
    assert report.by_rule == {"retention/renewal-call": 1, "retention/tips-email": 1}
    sent = _by_account(world)
    assert sent["a_0001"]["channel"] == "csm_task"
    task = json.loads(str(sent["a_0001"]["payload"]))
    assert task["body"]["title"] == "Call Account 1 before renewal"
    assert task["body"]["churn_risk"] == "60 %"
    email = json.loads(str(sent["a_0002"]["payload"]))
    assert email["to"] == "owner2@acct2.example"
    assert email["subject"] == "Three things Account 2 has not tried yet"
    # the unsubscribe link in the body is the one in the payload, and it verifies
    assert email["unsubscribe_url"] in email["text"]
    token = email["unsubscribe_url"].rsplit("/", 1)[1]
    from tenure.decide import unsubscribe_secret

    assert verify_unsubscribe_token(token, unsubscribe_secret(world)) == (
        "email:owner2@acct2.example",
        "email",
    )
    with world.store.connect() as connection:
        logged = get_decision(connection, str(sent["a_0002"]["decision_id"]))
    assert logged["policy"] == "retention"
    assert logged["policy_version"] == 1
    assert logged["rule_id"] == "tips-email"
    assert logged["models"] == {"churn": "churn v1"}
    assert logged["features"] == {"logins_30d": 2.0}
    assert [g["guardrail"] for g in logged["guardrails"]] == [
        "consent",
        "urgent_ticket",
        "frequency_cap",
        "budget",
        "quiet_hours",
        "review",
    ]
    assert {c["rule"] for c in logged["candidates"]} == {
        "retention/tips-email",
        "retention/tips-in-app",
    }


def test_the_same_cycle_twice_adds_nothing_and_cooldowns_hold(world: Project) -> None:
    publish(world, [customer(2, logins=2)])
    decide(world)
    again = decide(world)
    assert again.already_decided
    assert len(queued(world)) == 1
    # a day later tips-email is cooling down (7d), so the in-app rule takes its turn
    later = decide(world, now=NOON + dt.timedelta(days=1))
    assert later.by_rule == {"retention/tips-in-app": 1}


def test_consent_withdrawn_falls_through_to_the_next_channel(world: Project) -> None:
    publish(world, [customer(2, logins=2)])
    with world.store.begin() as connection:
        record_consent(connection, "email:owner2@acct2.example", "email", granted=False,
                       reason=ConsentReason.UNSUBSCRIBE, source="test", at=NOON)  # fmt: skip
    report = decide(world)
    [decision] = report.decisions
    assert decision.chosen is not None
    assert decision.chosen.rule.key == "retention/tips-in-app"
    blocked = decision.candidates[0]
    assert blocked.outcome == "blocked"
    assert blocked.checks[0].detail == "email:owner2@acct2.example withdrew email"
    assert "blocked by consent: email:owner2@acct2.example withdrew email" in decision.explanation


def test_erasure_blocks_every_channel(world: Project) -> None:
    publish(world, [customer(2, logins=2)])
    with world.store.begin() as connection:
        record_consent(connection, "user_id:u2", "all", granted=False,
                       reason=ConsentReason.ERASURE, source="test", at=NOON)  # fmt: skip
    report = decide(world)
    assert report.by_status == {"blocked": 1}
    assert queued(world) == []


def test_frequency_cap_counts_earlier_sends(world: Project) -> None:
    publish(world, [customer(2, logins=2)])
    for day in (0, 1, 2, 3):  # email cap 2 per 7 days; tips-email cools down for 7 days
        decide(world, now=NOON + dt.timedelta(days=day))
    channels = [row["channel"] for row in queued(world)]
    # day 0 email, days 1-3 in-app (email cooling down); 4 in 7 days overall is the cap
    assert channels == ["email", "in_app", "in_app", "in_app"]
    fifth = decide(world, now=NOON + dt.timedelta(days=4))
    assert fifth.by_status == {"blocked": 1}
    [decision] = fifth.decisions
    details = [c.checks[-1].detail for c in decision.candidates]
    assert "4 of 4 on all channels in 7d" in details or "3 of 3 on in_app in 7d" in details


def test_budget_cap_stops_a_campaign(world: Project, tmp_path: Path) -> None:
    text = (world.root / "tenure.yaml").read_text()
    (world.root / "tenure.yaml").write_text(
        text.replace("  budgets: {}", "  budgets: {save: {budget: 100, period: 30d}}")
    )
    project = Project.open(world.root, clock=lambda: NOON)
    publish(project, [customer(n, churn=0.6, stage="renewal") for n in range(1, 5)])
    report = decide(project)
    # 40 each: two fit in 100, the third would make 120
    assert report.by_rule == {"retention/renewal-call": 2}
    blocked = [d for d in report.decisions if d.status == "blocked"]
    assert len(blocked) == 2
    assert "campaign save: 80.00 spent + 40.00 > 100.00 per 30d" in blocked[0].explanation
    project.close()


def test_quiet_hours_defer_to_the_morning_in_the_customers_zone(world: Project) -> None:
    publish(world, [customer(2, logins=2, timezone="Asia/Tokyo")])  # 21:00 in Tokyo
    report = decide(world)
    assert report.by_status == {"deferred": 1}
    [row] = queued(world)
    assert row["not_before"] == dt.datetime(2024, 6, 1, 23, 0, tzinfo=dt.UTC)  # 08:00 JST


def test_recent_urgent_ticket_suppresses_messages_but_not_the_csm(world: Project) -> None:
    publish(
        world,
        [
            customer(1, churn=0.6, stage="renewal", logins=2, urgent_days=2),
            customer(2, logins=2, urgent_days=2),
        ],
    )
    report = decide(world)
    statuses = {d.account_id: d.status for d in report.decisions}
    assert statuses == {"a_0001": "queued", "a_0002": "blocked"}
    assert _by_account(world)["a_0001"]["channel"] == "csm_task"


def test_discount_goes_to_review_then_approve_queues_it(world: Project) -> None:
    publish(world, [customer(5, churn=0.9, nps=2)])
    report = decide(world)
    assert report.by_status == {"review": 1}
    assert queued(world) == []
    with world.store.connect() as connection:
        [item] = list_reviews(connection)
    assert item["reason"] == "discount 25% is above 15%"
    later = NOON + dt.timedelta(hours=2)
    assert approve(world, item["id"], actor="maria", now=later) == "queued"
    [row] = queued(world)
    assert json.loads(row["payload"])["subject"] == "Dee, 25 % off your renewal"
    with pytest.raises(ReviewError, match="already approved"):
        reject(world, item["id"], actor="maria", now=later)
    with world.store.connect() as connection:
        text = explain_decision(connection, str(item["decision_id"]))
    assert "Review: approved by maria at 2024-06-01 14:00." in text
    assert "Delivery" in text


def test_reviews_expire_and_a_rejected_one_sends_nothing(world: Project) -> None:
    publish(world, [customer(5, churn=0.9, nps=2), customer(6, churn=0.9, nps=2)])
    decide(world)
    with world.store.connect() as connection:
        first, second = list_reviews(connection)
    reject(world, first["id"], actor="maria", note="not this quarter")
    with pytest.raises(ReviewError, match="expired"):
        approve(world, second["id"], actor="maria", now=NOON + dt.timedelta(days=4))
    assert queued(world) == []
    with world.store.connect() as connection:
        states = dict(connection.execute(select(decisions.c.account_id, decisions.c.status)).all())
    assert states == {"a_0005": "rejected", "a_0006": "expired"}


def test_missing_template_variable_blocks_instead_of_sending_a_blank(world: Project) -> None:
    write(
        world.root / "templates" / "tips.yaml",
        "channel: email\nsubject: Hi {{ contact.nickname }}\ntext: hello\n",
    )
    publish(world, [customer(2, logins=2)])
    report = decide(world)
    [decision] = report.decisions
    assert decision.chosen is not None
    assert decision.chosen.rule.key == "retention/tips-in-app"  # the email could not render
    assert "'dict object' has no attribute 'nickname'" in decision.explanation
    assert [row["channel"] for row in queued(world)] == ["in_app"]


def test_editing_a_policy_makes_a_new_version(world: Project) -> None:
    publish(world, [customer(2, logins=2)])
    decide(world)
    write(
        world.root / "policies" / "retention.yaml", POLICY.replace("priority: 50", "priority: 55")
    )
    decide(world, now=NOON + dt.timedelta(days=8))
    with world.store.connect() as connection:
        found = connection.execute(
            select(policy_versions.c.version).where(policy_versions.c.kind == "policy")
        ).all()
        logged = connection.execute(select(decisions.c.policy_version)).scalars().all()
    assert sorted(v for (v,) in found) == [1, 2]
    assert sorted(logged) == [1, 2]


def test_dry_run_writes_nothing(world: Project) -> None:
    publish(world, [customer(1, churn=0.6, stage="renewal"), customer(2, logins=2)])
    report = decide(world, dry_run=True)
    assert report.by_status == {"queued": 2}
    assert queued(world) == []
    with world.store.connect() as connection:
        assert connection.execute(select(decisions)).all() == []
        assert connection.execute(select(policy_versions)).all() == []


# ------------------------------------------------------------------ preview
def test_preview_renders_for_a_real_customer_and_names_what_is_missing(world: Project) -> None:
    from typer.testing import CliRunner

    from tenure.cli import app
    from tenure.decide import preview_template
    from tenure.errors import NotFoundError, TemplateError

    publish(world, [customer(2, logins=2)])
    recipient, payload = preview_template(world, "tips", "a_0002")
    assert recipient == "owner2@acct2.example"
    assert payload["subject"] == "Three things Account 2 has not tried yet"
    assert payload["unsubscribe_url"] in payload["text"]
    task = preview_template(world, "csm_call", "a_0002")[1]
    assert task["body"]["title"] == "Call Account 2 before renewal"
    write(
        world.root / "templates" / "bad.yaml",
        "channel: in_app\ntitle: '{{ account.owner }}'\nbody: x\n",
    )
    with pytest.raises(TemplateError, match=r"'bad' uses a variable that is not there.*owner"):
        preview_template(world, "bad", "a_0002")
    with pytest.raises(NotFoundError, match=r"no published state for account 'a_9999'"):
        preview_template(world, "tips", "a_9999")
    result = CliRunner().invoke(
        app, ["templates", "preview", "tips", "--account", "a_0002", "-p", str(world.root)]
    )
    assert result.exit_code == 0, result.output
    assert "Three things Account 2 has not tried yet" in result.output
    failed = CliRunner().invoke(
        app, ["templates", "preview", "bad", "--account", "a_0002", "-p", str(world.root)]
    )
    assert failed.exit_code == 1
    assert "uses a variable that is not there" in failed.output


def test_contexts_extracted_by_the_database_equal_those_of_full_states(world: Project) -> None:
    """The fast path (fields pulled out of the stored JSON in SQL) sees what the full state does."""
    import dataclasses

    from tenure.decide import load_states
    from tenure.decide._state import load_contexts

    states = [
        dataclasses.replace(customer(1, nps=3), traits={"plan": "pro", "trial": True}),
        customer(2, logins=0),  # no nps_last: absent, not null
        dataclasses.replace(customer(3), stage=None, traits={}),
    ]
    publish(world, states)
    policy = POLICY.replace(
        "features.logins_30d < 5\n",
        'features.logins_30d < 5 && traits.trial == true && traits.plan == "pro" '
        "&& health.exists(k, k == 'band')\n",
        1,
    )
    write(world.root / "p2" / "a.yaml", policy)
    policies = load_policies(world.root / "p2")
    assert policies.fields["health"] is None  # a macro over the map: all of it
    with world.store.connect() as connection:
        fast = load_contexts(connection, policies.fields)
        full = {s.account_id: policies.context(s.context()) for s in load_states(connection)}
    assert fast is not None
    assert fast.customers == len(full)
    assert {account: context for account, _, context in fast.found} == full
    assert fast.found[0][2]["traits"] == {"plan": "pro", "trial": True}
    assert "nps_last" not in fast.found[1][2]["features"]
