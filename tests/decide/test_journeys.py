"""Journeys: welcome → no login in 7 days → reminder → still none → CSM task, on both stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from tenure.decide import CustomerState
from tenure.decide._journeys import load_journeys, run_journeys
from tenure.errors import ConfigError, PolicyError
from tenure.govern.consent import ConsentReason, record_consent
from tenure.project import Project
from tenure.store._tables import journey_runs, journey_steps
from tests.conftest import make_project
from tests.decide._world import NOON, customer, publish, queued, write, write_policy_files

ONBOARDING = """\
name: onboarding
enter: stage == "onboarding"
goal: features.logins_30d >= 10
reenter: 30d
steps:
  - {id: welcome, send: {channel: email, template: tips, campaign: onboarding}}
  - {id: wait-a-week, wait: 7d}
  - id: logged-in
    branch: [{when: "features.days_since_last_login < 7.0", goto: end}]
  - {id: reminder, send: {channel: in_app, template: tips_in_app, campaign: onboarding}}
  - {id: wait-again, wait: 7d}
  - id: still-nothing
    branch: [{when: "features.days_since_last_login < 7.0", goto: end}]
  - {id: csm, send: {channel: csm_task, template: csm_call, campaign: onboarding}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, store_url: str, clock: Clock) -> Iterator[Project]:
    project = make_project(tmp_path / "proj", store_url, clock=clock)
    write_policy_files(project)
    write(project.root / "journeys" / "onboarding.yaml", ONBOARDING)
    yield project
    project.close()


def _new(n: int, *, logins: float = 0.0, since_login: float = 30.0) -> CustomerState:
    state = customer(n, stage="onboarding", logins=logins, churn=0.9)
    features = {**state.features, "days_since_last_login": since_login}
    return dataclasses.replace(state, features=features)


def _steps(project: Project, account: str) -> list[tuple[str, str]]:
    with project.store.connect() as connection:
        rows = connection.execute(
            select(journey_steps.c.step, journey_steps.c.outcome)
            .join(journey_runs, journey_runs.c.id == journey_steps.c.run_id)
            .where(journey_runs.c.account_id == account)
            .order_by(journey_steps.c.id)
        )
        return [(r.step, r.outcome) for r in rows]


def test_no_login_leads_to_a_reminder_then_a_csm_task(world: Project, clock: Clock) -> None:
    publish(world, [_new(1), _new(2)])
    first = run_journeys(world)
    assert (first.entered, first.sent) == (2, 2)
    clock.now += dt.timedelta(days=7)
    # account 2 signed in meanwhile: its run ends at the first check
    publish(world, [_new(1), _new(2, since_login=1)])
    second = run_journeys(world)
    assert (second.advanced, second.sent, second.completed) == (2, 1, 1)
    clock.now += dt.timedelta(days=3)
    assert run_journeys(world).advanced == 0  # waiting: nothing is due
    clock.now += dt.timedelta(days=4)
    third = run_journeys(world)
    assert (third.sent, third.completed) == (1, 1)
    assert _steps(world, "a_0001") == [
        ("welcome", "entered"),
        ("welcome", "sent"),
        ("wait-a-week", "waiting"),
        ("logged-in", "branch"),
        ("reminder", "sent"),
        ("wait-again", "waiting"),
        ("still-nothing", "branch"),
        ("csm", "sent"),
        ("csm", "completed"),
    ]
    channels = [(r["account_id"], r["channel"]) for r in queued(world)]
    assert channels == [
        ("a_0001", "email"),
        ("a_0002", "email"),
        ("a_0001", "in_app"),
        ("a_0001", "csm_task"),
    ]
    assert _steps(world, "a_0002")[-1] == ("logged-in", "completed")


def test_goal_reached_ends_the_run_and_reentry_waits(world: Project, clock: Clock) -> None:
    publish(world, [_new(1)])
    run_journeys(world)
    clock.now += dt.timedelta(days=7)
    publish(world, [_new(1, logins=12)])  # the goal: 10 logins in 30 days
    report = run_journeys(world)
    assert report.completed == 1
    assert _steps(world, "a_0001")[-1] == ("logged-in", "completed")
    # still onboarding but with the goal met: enters again only after 30 days, and then
    # completes at once (the goal holds)
    publish(world, [_new(1)])
    assert run_journeys(world).entered == 0
    clock.now += dt.timedelta(days=31)
    assert run_journeys(world).entered == 1


def test_unsubscribing_from_everything_exits(world: Project, clock: Clock) -> None:
    publish(world, [_new(1)])
    run_journeys(world)
    with world.store.begin() as connection:
        record_consent(connection, "email:owner1@acct1.example", "all", granted=False,
                       reason=ConsentReason.UNSUBSCRIBE, source="test", at=clock.now)  # fmt: skip
    clock.now += dt.timedelta(days=7)
    report = run_journeys(world)
    assert report.exited == 1
    assert _steps(world, "a_0001")[-1] == ("logged-in", "exited")
    assert len(queued(world)) == 1  # only the welcome


def test_a_restart_resumes_and_nobody_is_in_a_journey_twice(world: Project, clock: Clock) -> None:
    publish(world, [_new(1)])
    run_journeys(world)
    # a new process: the run's state is in the store, not in memory
    reopened = Project.open(world.root, clock=clock)
    clock.now += dt.timedelta(days=7)
    assert run_journeys(reopened).sent == 1
    with reopened.store.connect() as connection:
        active = connection.execute(
            select(journey_runs.c.id).where(journey_runs.c.status == "active")
        ).all()
    assert len(active) == 1
    # the store itself refuses a second active run of the same journey for the account
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), reopened.store.begin() as connection:
        connection.execute(
            insert(journey_runs).values(
                journey="onboarding", journey_version=1, account_id="a_0001", status="active",
                step="welcome", next_at=clock.now, entered_at=clock.now,
            )
        )  # fmt: skip
    reopened.close()


def test_journey_errors_name_the_file_and_step(tmp_path: Path) -> None:
    write(
        tmp_path / "a" / "j.yaml",
        ONBOARDING.replace("goto: end}]\n  - {id: reminder", "goto: nowhere}]\n  - {id: reminder"),
    )
    with pytest.raises(ConfigError, match="branches to 'nowhere'"):
        load_journeys(tmp_path / "a")
    write(tmp_path / "b" / "j.yaml", ONBOARDING.replace('stage == "onboarding"', "stage =="))
    with pytest.raises(
        PolicyError, match="journey 'onboarding', enter: the condition is not valid"
    ):
        load_journeys(tmp_path / "b")


def test_a_held_out_customer_walks_the_journey_and_is_sent_nothing(
    world: Project, clock: Clock
) -> None:
    text = (world.root / "tenure.yaml").read_text()
    old = "    campaigns: {}                 # e.g. {save: 10}: 10 % of the save campaign's targets"
    assert old in text
    (world.root / "tenure.yaml").write_text(text.replace(old, "    campaigns: {onboarding: 50}"))
    project = Project.open(world.root, clock=clock)
    publish(project, [_new(n) for n in range(1, 21)])
    run_journeys(project)
    with project.store.connect() as connection:
        held = {
            r.account_id
            for r in connection.execute(
                select(journey_runs.c.account_id)
                .join(journey_steps, journey_runs.c.id == journey_steps.c.run_id)
                .where(journey_steps.c.outcome == "holdout")
            )
        }
    sent = {r["account_id"] for r in queued(project)}
    assert held
    assert sent
    assert not held & sent  # the held out got nothing
    assert len(held | sent) == 20  # everyone else got the welcome email
    # the held out walk on: a week later their reminder is held out again
    clock.now += dt.timedelta(days=7)
    run_journeys(project)
    for account in held:
        assert ("reminder", "holdout") in _steps(project, account)
    assert {r["account_id"] for r in queued(project)} == sent
    project.close()
