"""Journeys: multi-step sequences with waits and branches, run under the same guardrails.

A journey file (``journeys/<name>.yaml``)::

    name: onboarding
    enter: stage == "onboarding"            # CEL over the customer state
    goal: features.logins_30d >= 10         # reached: the run completes
    reenter: never                          # or a duration: again after 90d
    steps:
      - {id: welcome, send: {channel: email, template: welcome, campaign: onboarding}}
      - {id: wait-a-week, wait: 7d}
      - id: logged-in
        branch: [{when: "features.days_since_last_login < 7", goto: end}]
      - {id: reminder, send: {channel: email, template: reminder, campaign: onboarding}}
      - {id: wait-again, wait: 7d}
      - id: still-nothing
        branch: [{when: "features.days_since_last_login < 7", goto: end}]
      - {id: csm, send: {channel: csm_task, template: csm_call, campaign: onboarding}}

A run exits early when its goal holds (``completed: goal``), when its ``exit``
condition holds, when the account churns, or when the contact withdraws
consent for all channels. Branches test the customer state as last published
(features are computed from events, so "logged in since" is a feature test).
Every send goes through :class:`tenure.decide._guardrails.Guardrails` like a
batch decision and is logged as a decision with path ``journey``; a blocked
send is skipped and the run goes on. Run state lives in ``journey_runs`` and
``journey_steps``: a restart resumes where the last commit left off, and a
partial unique index keeps an account out of a journey it is already in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, func, insert, select, update

from tenure._config_decide import Duration, parse_duration
from tenure.decide._cycle import decision_row, outbox_row, preparer
from tenure.decide._engine import Candidate, Decision, Prepare, decision_id
from tenure.decide._explain import explain
from tenure.decide._guardrails import Check, Guardrails, Ledger, Verdict, decide_lock
from tenure.decide._holdouts import HoldoutGroups
from tenure.decide._policy import Action, CompiledRule, Rule, _compile, parse_yaml_model
from tenure.decide._state import CustomerState, load_states
from tenure.decide._templates import load_templates
from tenure.decide._versions import ensure_version
from tenure.errors import PolicyError, TemplateError
from tenure.store._tables import decisions, journey_runs, journey_steps, outbox, review_queue

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = ["Journey", "JourneyReport", "load_journeys", "run_journeys"]

_END = ("end", "exit")


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str
    goto: str


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    send: Action | None = None
    wait: Duration | None = None
    branch: list[Branch] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("send", "wait", "branch") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"step {self.id!r} needs exactly one of send, wait, branch")
        return self


class Journey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    enter: str
    stages: list[str] | None = None
    goal: str | None = None
    exit: str | None = None
    reenter: str = "never"
    steps: list[Step] = Field(min_length=1)

    @field_validator("reenter")
    @classmethod
    def _reenter(cls, value: str) -> str:
        if value != "never":
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _targets(self) -> Journey:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        for step in self.steps:
            for branch in step.branch or []:
                if branch.goto not in ids and branch.goto not in _END:
                    raise ValueError(
                        f"step {step.id!r} branches to {branch.goto!r}, which is not a step "
                        "(or end)"
                    )
        return self


@dataclass(frozen=True, slots=True)
class LoadedJourney:
    journey: Journey
    source: str
    programs: dict[str, Any]  # "enter", "goal", "exit", "<step>#<n>" → compiled CEL

    def holds(self, key: str, state: CustomerState) -> bool:
        program = self.programs.get(key)
        if program is None:
            return False
        try:
            return program.execute(state.context()) is True
        except (KeyError, TypeError, RuntimeError, ValueError):
            return False  # a missing value: the condition does not hold

    def index(self, step_id: str) -> int:
        return next(n for n, s in enumerate(self.journey.steps) if s.id == step_id)


@dataclass(frozen=True, slots=True)
class JourneyReport:
    entered: int = 0
    advanced: int = 0
    sent: int = 0
    blocked: int = 0
    completed: int = 0
    exited: int = 0
    by_journey: dict[str, int] = field(default_factory=dict)  # active runs after the pass


def load_journeys(directory: Path) -> dict[str, LoadedJourney]:
    found: dict[str, LoadedJourney] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        journey = parse_yaml_model(Journey, text, source=str(path))
        if journey.name in found:
            raise PolicyError(f"{path}: a second journey named {journey.name!r}")
        where = f"journey {journey.name!r}"
        programs = {"enter": _compile(f"{where}, enter", journey.enter)}
        for key in ("goal", "exit"):
            text_ = getattr(journey, key)
            if text_:
                programs[key] = _compile(f"{where}, {key}", text_)
        for step in journey.steps:
            for n, branch in enumerate(step.branch or []):
                programs[f"{step.id}#{n}"] = _compile(f"{where}, step {step.id!r}", branch.when)
        found[journey.name] = LoadedJourney(journey, text, programs)
    return found


@dataclass
class _Pass:
    """One run of :func:`run_journeys`: what it holds open and what it counted."""

    connection: Connection
    now: dt.datetime
    guardrails: Guardrails
    ledger: Ledger
    prepare: Prepare
    versions: dict[str, int]
    template_versions: dict[str, int]
    expires: dt.timedelta
    holdouts: HoldoutGroups
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


def _log(p: _Pass, run_id: int, step: str, outcome: str, detail: str, decision: str | None) -> None:
    p.connection.execute(
        insert(journey_steps).values(
            run_id=run_id, step=step, at=p.now, outcome=outcome, detail=detail,
            decision_id=decision,
        )
    )  # fmt: skip


def _end(p: _Pass, run_id: int, status: str, reason: str, step: str) -> None:
    p.connection.execute(
        update(journey_runs)
        .where(journey_runs.c.id == run_id)
        .values(status=status, ended_at=p.now, exit_reason=reason, step=step)
    )
    _log(p, run_id, step, status, reason, None)
    p.count(status)


def _early_exit(loaded: LoadedJourney, state: CustomerState, p: _Pass) -> tuple[str, str] | None:
    if state.stage == "churned":
        return "exited", "churned"
    contact = state.contacts[0] if state.contacts else None
    if contact is not None and any(
        p.ledger.consent.get((i, "all")) is False for i in contact.identifiers
    ):
        return "exited", "unsubscribed from all channels"
    if loaded.holds("goal", state):
        return "completed", f"goal reached: {loaded.journey.goal}"
    if loaded.holds("exit", state):
        return "exited", f"exit condition: {loaded.journey.exit}"
    return None


def _send(p: _Pass, loaded: LoadedJourney, run_id: int, step: Step, state: CustomerState) -> None:
    assert step.send is not None
    journey = loaded.journey
    rule = CompiledRule(
        policy=journey.name,
        rule=Rule(id=step.id, when=f"journey {journey.name}, step {step.id}", action=step.send),
        program=None,
        cooldown=None,
        fields={},
    )
    contact = state.contacts[0] if state.contacts else None
    checks = tuple(p.guardrails.check(p.ledger, state, contact, step.send))
    cycle = "j_" + hashlib.sha256(f"{run_id}\x1f{step.id}".encode()).hexdigest()[:16]
    the_id = decision_id(cycle, state.account_id)
    verdicts = {c.verdict for c in checks}
    delivery = None
    if Verdict.BLOCK not in verdicts:
        try:
            delivery = p.prepare(the_id, rule, state, contact)
        except TemplateError as error:
            checks = (*checks, Check("template", Verdict.BLOCK, str(error)))
            verdicts.add(Verdict.BLOCK)
    held = None
    if Verdict.BLOCK not in verdicts:
        # held out like a policy's action: decided, logged, not sent (the journey goes on)
        held = p.holdouts.check(state.account_id, step.send.campaign)
        if held is not None:
            checks = (*checks, held)
    if Verdict.BLOCK in verdicts:
        status = "blocked"
    elif held is not None and held.verdict is Verdict.HOLD:
        status = "holdout"
    elif Verdict.REVIEW in verdicts:
        status = "review"
    elif Verdict.DEFER in verdicts:
        status = "deferred"
    else:
        status = "queued"
    candidate = Candidate(rule, None, checks, "blocked" if status == "blocked" else "chosen")
    not_before = max([p.now, *(c.until for c in checks if c.until is not None)])
    decision = Decision(
        id=the_id, cycle_id=cycle, account_id=state.account_id, decided_at=p.now, status=status,
        chosen=None if status == "blocked" else candidate, candidates=(candidate,),
        contact=contact, state=state, not_before=not_before, explanation="",
    )  # fmt: skip
    decision = dataclasses.replace(decision, explanation=explain(decision))
    row = decision_row(decision, "journey", {journey.name: p.versions[journey.name]},
                        p.template_versions)  # fmt: skip
    p.connection.execute(insert(decisions).values(**row))
    if status in ("queued", "deferred") and delivery is not None:
        recipient, payload = delivery
        p.connection.execute(
            insert(outbox).values(**outbox_row(decision, recipient, payload, p.template_versions))
        )
        p.ledger.record(state.account_id, step.send.channel.value, step.send.campaign,
                        step.send.cost)  # fmt: skip
        p.count("sent")
    elif status == "review":
        review = next(c for c in checks if c.verdict is Verdict.REVIEW)
        p.connection.execute(
            insert(review_queue).values(
                decision_id=the_id, reason=review.detail, status="pending",
                requested_at=p.now, expires_at=p.now + p.expires,
            )
        )  # fmt: skip
        p.count("review")
    elif status == "holdout":
        p.count("holdout")
    else:
        p.count("blocked")
    blocked = next((c for c in checks if c.verdict is Verdict.BLOCK), None)
    detail = f"{blocked.guardrail}: {blocked.detail}" if blocked else status
    _log(p, run_id, step.id, "sent" if status in ("queued", "deferred") else status, detail,
         the_id)  # fmt: skip


def _advance(p: _Pass, loaded: LoadedJourney, run_id: int, step_id: str,
             state: CustomerState) -> None:  # fmt: skip
    """Run steps from *step_id* until a wait, the end, or an exit."""
    steps = loaded.journey.steps
    index = loaded.index(step_id)
    for _ in range(len(steps) + 1):
        early = _early_exit(loaded, state, p)
        if early is not None:
            _end(p, run_id, early[0], early[1], steps[min(index, len(steps) - 1)].id)
            return
        if index >= len(steps):
            _end(p, run_id, "completed", "end of journey", steps[-1].id)
            return
        step = steps[index]
        if step.send is not None:
            _send(p, loaded, run_id, step, state)
            index += 1
        elif step.wait is not None:
            nxt = steps[index + 1].id if index + 1 < len(steps) else step.id
            due = p.now + parse_duration(step.wait)
            if index + 1 >= len(steps):
                _end(p, run_id, "completed", "end of journey", step.id)
                return
            p.connection.execute(
                update(journey_runs)
                .where(journey_runs.c.id == run_id)
                .values(step=nxt, next_at=due)
            )
            _log(p, run_id, step.id, "waiting", f"until {due:%Y-%m-%d %H:%M} UTC", None)
            return
        else:
            target = next(
                (b.goto for n, b in enumerate(step.branch or [])
                 if loaded.holds(f"{step.id}#{n}", state)),
                None,
            )  # fmt: skip
            _log(p, run_id, step.id, "branch", f"to {target or 'the next step'}", None)
            if target in _END:
                _end(p, run_id, "completed", f"branch {step.id} → end", step.id)
                return
            index = loaded.index(target) if target is not None else index + 1
    _end(p, run_id, "exited", "loop: too many steps in one pass", steps[0].id)


def _may_enter(loaded: LoadedJourney, state: CustomerState, last_end: dt.datetime | None,
               now: dt.datetime) -> bool:  # fmt: skip
    journey = loaded.journey
    if journey.stages is not None and (state.stage or "") not in journey.stages:
        return False
    if last_end is not None and (
        journey.reenter == "never" or now - last_end < parse_duration(journey.reenter)
    ):
        return False
    return loaded.holds("enter", state)


def run_journeys(project: Project, *, now: dt.datetime | None = None,
                 actor: str = "tenure") -> JourneyReport:  # fmt: skip
    """Advance every due run, then enroll customers who now qualify; one transaction."""
    at = now or project.clock()
    settings = project.config.decide
    journeys = load_journeys(project.root / settings.journeys_dir)
    templates = load_templates(project.root / settings.templates_dir)
    with project.store.begin() as connection:
        decide_lock(connection)
        p = _Pass(
            connection=connection, now=at, guardrails=Guardrails(settings),
            ledger=Ledger.load(connection, settings, at), prepare=preparer(project, templates),
            versions={n: ensure_version(connection, "journey", n, j.source, at=at, actor=actor)
                      for n, j in journeys.items()},
            template_versions={n: ensure_version(connection, "template", n, t.source, at=at,
                                                 actor=actor)
                               for n, t in templates.templates.items()},
            expires=parse_duration(settings.review.expires_after),
            holdouts=HoldoutGroups(settings.holdouts),
        )  # fmt: skip
        states = {s.account_id: s for s in load_states(connection)}
        due = connection.execute(
            select(journey_runs)
            .where((journey_runs.c.status == "active") & (journey_runs.c.next_at <= at))
            .order_by(journey_runs.c.id)
        ).all()
        for run in due:
            loaded = journeys.get(run.journey)
            state = states.get(run.account_id)
            if loaded is None or state is None:
                why = "journey removed" if loaded is None else "customer no longer known"
                _end(p, run.id, "exited", why, run.step)
                continue
            p.count("advanced")
            _advance(p, loaded, run.id, run.step, state)
        for name, loaded in journeys.items():
            active = set(
                connection.execute(
                    select(journey_runs.c.account_id).where(
                        (journey_runs.c.journey == name) & (journey_runs.c.status == "active")
                    )
                ).scalars()
            )
            ended: Mapping[str, dt.datetime] = {
                str(account): at_
                for account, at_ in connection.execute(
                    select(journey_runs.c.account_id, func.max(journey_runs.c.ended_at))
                    .where((journey_runs.c.journey == name) & (journey_runs.c.status != "active"))
                    .group_by(journey_runs.c.account_id)
                ).all()
            }
            for account_id, state in states.items():
                if account_id in active or not _may_enter(loaded, state, ended.get(account_id), at):
                    continue
                run_id = connection.execute(
                    insert(journey_runs).values(
                        journey=name, journey_version=p.versions[name], account_id=account_id,
                        status="active", step=loaded.journey.steps[0].id, next_at=at,
                        entered_at=at,
                    ).returning(journey_runs.c.id)
                ).scalar_one()  # fmt: skip
                _log(p, run_id, loaded.journey.steps[0].id, "entered", loaded.journey.enter, None)
                p.count("entered")
                _advance(p, loaded, run_id, loaded.journey.steps[0].id, state)
        active_now = {
            str(name): int(n)
            for name, n in connection.execute(
                select(journey_runs.c.journey, func.count())
                .where(journey_runs.c.status == "active")
                .group_by(journey_runs.c.journey)
            ).all()
        }
    c = p.counts
    return JourneyReport(
        entered=c.get("entered", 0), advanced=c.get("advanced", 0), sent=c.get("sent", 0),
        blocked=c.get("blocked", 0), completed=c.get("completed", 0), exited=c.get("exited", 0),
        by_journey={str(k): int(v) for k, v in active_now.items()},
    )  # fmt: skip
