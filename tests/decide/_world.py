"""Customers, policies and templates for decide tests, written into a real project."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tenure.decide import Contact, CustomerState, save_states
from tenure.measure.experiments import Arm, Experiment
from tenure.project import Project
from tenure.store._tables import outbox

# 12:00 UTC on a Saturday: daytime in UTC and New York, night in Tokyo
NOON = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)

POLICY = """\
name: retention
description: Keep accounts that are drifting away
rules:
  - id: renewal-call
    when: stage == "renewal" && scores.churn_probability >= 0.5
    stages: [renewal]
    action: {channel: csm_task, template: csm_call, campaign: save, cost: 40}
    priority: 90
    cooldown: 30d
  - id: winback-offer
    when: scores.churn_probability >= 0.8 && has(features.nps_last) && features.nps_last < 5
    action: {channel: email, template: offer, campaign: offers, cost: 5, discount: 0.25}
    priority: 95
  - id: tips-email
    when: features.logins_30d < 5
    action: {channel: email, template: tips, campaign: nurture, cost: 0.5}
    priority: 50
    cooldown: 7d
  - id: tips-in-app
    when: features.logins_30d < 5
    action: {channel: in_app, template: tips_in_app, campaign: nurture, cost: 0.1}
    priority: 40
"""

#: A rule whose experiment tries a call against an email, a fifth held out.
EXPERIMENT = """\
name: retention
rules:
  - id: save
    when: scores.churn_probability >= 0.5
    experiment:
      id: save-channel
      arms:
        call: {weight: 40, action: {channel: csm_task, template: csm_call, campaign: save,
               cost: 40, type: csm_call}}
        email: {weight: 40, action: {channel: email, template: tips, campaign: save, cost: 0.5}}
        control: {weight: 20}
    priority: 90
"""
#: What the policy above assigns by: the experiment id and the holdouts' default salt.
SAVE_CHANNEL = Experiment(
    id="save-channel",
    salt="tenure",
    arms=(Arm("call", 40), Arm("email", 40), Arm("control", 20)),
)


TEMPLATES = {
    "csm_task": """\
channel: csm_task
body:
  title: "Call {{ account.name }} before renewal"
  churn_risk: "{{ '%.0f' % (scores.churn_probability * 100) }} %"
  why: "{{ reasons | join('; ') }}"
""",
    "offer": """\
channel: email
subject: "{{ contact.first_name }}, 25 % off your renewal"
text: |
  Hi {{ contact.first_name }}, we would like to keep {{ account.name }} with us.
""",
    "tips": """\
channel: email
subject: "Three things {{ account.name }} has not tried yet"
text: |
  Hi {{ contact.first_name }},
  teams like yours get the most out of tenure when they log in weekly.
  Unsubscribe any time: {{ unsubscribe_url }}
""",
    "tips_in_app": """\
channel: in_app
title: "Tips for {{ account.name }}"
body: "You logged in {{ features.logins_30d|int }} times this month."
""",
}


def write_policy_files(project: Project, policy: str = POLICY) -> None:
    (project.root / "policies").mkdir(exist_ok=True)
    (project.root / "policies" / "retention.yaml").write_text(policy)
    (project.root / "templates").mkdir(exist_ok=True)
    for name, text in TEMPLATES.items():
        stem = "csm_call" if name == "csm_task" else name
        (project.root / "templates" / f"{stem}.yaml").write_text(text)


def customer(
    n: int,
    *,
    churn: float = 0.3,
    logins: float = 20.0,
    stage: str = "established",
    nps: float | None = None,
    clv: float = 2_000.0,
    timezone: str | None = "America/New_York",
    urgent_days: float | None = None,
    email: str | None = None,
) -> CustomerState:
    features: dict[str, Any] = {"logins_30d": logins}
    if nps is not None:
        features["nps_last"] = nps
    if urgent_days is not None:
        features["days_since_urgent_ticket"] = urgent_days
    address = email or f"owner{n}@acct{n}.example"
    return CustomerState(
        account_id=f"a_{n:04d}",
        as_of=NOON,
        name=f"Account {n}",
        stage=stage,
        scores={"churn_probability": churn, "clv": clv, "mrr": clv / 24},
        reasons=[{"feature": "logins_30d", "text": f"only {logins:.0f} logins in 30 days"}],
        health={"score": 40.0, "band": "yellow"},
        features=features,
        traits={"plan": "pro"},
        contacts=(
            Contact(
                profile_id=f"p_{n:04d}",
                email=address,
                user_id=f"u{n}",
                name=f"Dee {n}",
                first_name="Dee",
                timezone=timezone,
                identifiers=(f"email:{address}", f"user_id:u{n}", f"profile:p_{n:04d}"),
            ),
        ),
        models={"churn": "churn v1"},
        features_hash="f" * 64,
    )


def publish(project: Project, states: list[CustomerState]) -> None:
    with project.store.begin() as connection:
        save_states(connection, states, published_at=NOON)


def queued(project: Project) -> list[dict[str, Any]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(outbox).order_by(outbox.c.id))
        return [dict(r._mapping) for r in rows]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
