"""Arbitration: from matching rules to at most one action per customer per cycle.

For each customer the rules whose stage eligibility, cool-down and CEL
condition hold are the candidates. They are ranked by expected value —
``uplift × value − cost``, where the customer's state has an uplift estimate
for the action's treatment — and otherwise by priority (a candidate with an
estimate ranks above one without). The guardrails then look at the best
candidate; a blocked one gives way to the next, so a frequency cap on email
lets a CSM task through. The first candidate that is not blocked is the
decision: queued, deferred (quiet hours) or waiting for review.

Everything is written down: each candidate and what became of it, each
guardrail's verdict, the scores, model versions and features used, and a
plain-words explanation (see :mod:`tenure.decide._explain`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenure.decide._explain import explain
from tenure.decide._guardrails import Check, Guardrails, Ledger, Verdict
from tenure.decide._holdouts import HoldoutGroups
from tenure.decide._policy import CompiledRule, PolicySet
from tenure.decide._state import Contact, CustomerState
from tenure.errors import TemplateError

__all__ = ["Candidate", "Decider", "Decision", "decision_id"]


def decision_id(cycle_id: str, account_id: str) -> str:
    return "d_" + hashlib.sha256(f"{cycle_id}\x1f{account_id}".encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Candidate:
    rule: CompiledRule
    value: float | None  # expected value when an uplift estimate exists
    checks: tuple[Check, ...] = ()
    outcome: str = "not reached"  # chosen | blocked | not reached

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.key,
            "priority": self.rule.rule.priority,
            "value": self.value,
            "outcome": self.outcome,
            "guardrails": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    id: str
    cycle_id: str
    account_id: str
    decided_at: dt.datetime
    status: str  # queued | deferred | review | blocked | holdout
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    contact: Contact | None
    state: CustomerState
    not_before: dt.datetime
    explanation: str
    errors: dict[str, str] = field(default_factory=dict)  # rule → condition error
    #: The rendered action: recipient and outbox payload (None when nothing is to be sent).
    delivery: tuple[str, dict[str, Any]] | None = None

    @property
    def checks(self) -> tuple[Check, ...]:
        if self.chosen is not None:
            return self.chosen.checks
        return self.candidates[0].checks if self.candidates else ()


#: Renders a candidate's action (decision id, rule, state, contact → recipient, payload);
#: raises TemplateError when it cannot, which blocks that candidate.
Prepare = Callable[[str, CompiledRule, CustomerState, Contact | None], tuple[str, dict[str, Any]]]


class Decider:
    """Policies, guardrails and the cool-down memory, applied one customer at a time."""

    def __init__(
        self, policies: PolicySet, guardrails: Guardrails, prepare: Prepare | None = None
    ) -> None:
        self.policies = policies
        self.guardrails = guardrails
        self.prepare = prepare
        self.holdouts = HoldoutGroups(guardrails.settings.holdouts)

    def matching(self, state: CustomerState) -> tuple[list[CompiledRule], dict[str, str]]:
        """Rules whose condition holds for *state*, and the rules whose condition failed."""
        return self.matching_context(self.policies.context(state.context()))

    def matching_context(
        self, context: dict[str, Any]
    ) -> tuple[list[CompiledRule], dict[str, str]]:
        """:meth:`matching` on a context already narrowed to the fields conditions read."""
        rules = self.policies.rules
        if not rules:
            return [], {}
        try:
            results = self.policies.combined.execute(context)
        except (KeyError, TypeError, RuntimeError, ValueError):
            results = None  # some rule fails for this customer: find which, one by one
        matched: list[CompiledRule] = []
        errors: dict[str, str] = {}
        for n, rule in enumerate(rules):
            if results is not None:
                outcome = results[n]
            else:
                try:
                    outcome = rule.program.execute(context)
                except KeyError as error:
                    errors[rule.key] = f"no value for {error.args[0]!r}"
                    continue
                except (TypeError, RuntimeError, ValueError) as error:
                    errors[rule.key] = str(error).split(". ")[0]
                    continue
            if outcome is True:
                matched.append(rule)
            elif not isinstance(outcome, bool):
                errors[rule.key] = f"condition gave {outcome!r}, not true or false"
        return matched, errors

    @staticmethod
    def eligible(
        matched: list[CompiledRule],
        stage: str | None,
        last_fired: dict[str, dt.datetime],
        now: dt.datetime,
    ) -> list[CompiledRule]:
        """The matched rules whose stage eligibility holds and that are not cooling down."""
        found = []
        for rule in matched:
            stages = rule.rule.stages
            if stages is not None and (stage or "") not in stages:
                continue
            fired = last_fired.get(rule.key)
            if rule.cooldown is not None and fired is not None and now - fired < rule.cooldown:
                continue
            found.append(rule)
        return found

    def rank(self, state: CustomerState, rules: list[CompiledRule]) -> list[Candidate]:
        candidates = []
        for rule in rules:
            action = rule.rule.action
            uplift = state.uplift.get(action.treatment)
            value = None if uplift is None else float(uplift) * state.value - action.cost
            candidates.append(Candidate(rule, value))
        candidates.sort(
            key=lambda c: (
                c.value is None,
                -(c.value or 0.0),
                -c.rule.rule.priority,
                c.rule.key,
            )
        )
        return candidates

    def decide(
        self,
        ledger: Ledger,
        state: CustomerState,
        *,
        cycle_id: str,
        last_fired: dict[str, dt.datetime],
        busy: bool = False,
        matches: tuple[list[CompiledRule], dict[str, str]] | None = None,
    ) -> Decision | None:
        """At most one action for *state*; None when no rule is a candidate.

        *last_fired* maps rule keys to when they last acted on this account (for
        cool-downs); *busy* means an earlier decision still waits for review;
        *matches* is :meth:`matching`'s answer when the caller already has it.
        """
        now = ledger.now
        matched, errors = self.matching(state) if matches is None else matches
        eligible = self.eligible(matched, state.stage, last_fired, now)
        if not eligible or busy:
            return None
        ranked = self.rank(state, eligible)
        contact = state.contacts[0] if state.contacts else None
        done: list[Candidate] = []
        chosen: Candidate | None = None
        status = "blocked"
        not_before = now
        delivery = None
        the_id = decision_id(cycle_id, state.account_id)
        for candidate in ranked:
            checks = tuple(
                self.guardrails.check(ledger, state, contact, candidate.rule.rule.action)
            )
            verdicts = {c.verdict for c in checks}
            if Verdict.BLOCK not in verdicts and self.prepare is not None:
                try:
                    delivery = self.prepare(the_id, candidate.rule, state, contact)
                except TemplateError as error:
                    checks = (*checks, Check("template", Verdict.BLOCK, str(error)))
                    verdicts.add(Verdict.BLOCK)
            if Verdict.BLOCK in verdicts:
                done.append(Candidate(candidate.rule, candidate.value, checks, "blocked"))
                continue
            held = self.holdouts.check(state.account_id, candidate.rule.rule.action.campaign)
            if held is not None:
                checks = (*checks, held)
            chosen = Candidate(candidate.rule, candidate.value, checks, "chosen")
            done.append(chosen)
            if held is not None and held.verdict is Verdict.HOLD:
                # decided like any other, so the treated and the held out are alike
                status = "holdout"
            elif Verdict.REVIEW in verdicts:
                status = "review"
            elif Verdict.DEFER in verdicts:
                status = "deferred"
                not_before = max(c.until for c in checks if c.until is not None)
            else:
                status = "queued"
            break
        done.extend(Candidate(c.rule, c.value) for c in ranked[len(done) :])
        decision = Decision(
            id=the_id,
            cycle_id=cycle_id,
            account_id=state.account_id,
            decided_at=now,
            status=status,
            chosen=chosen,
            candidates=tuple(done),
            contact=contact,
            state=state,
            not_before=not_before,
            explanation="",
            errors=errors,
            delivery=delivery if status in ("queued", "deferred") else None,
        )
        decision = dataclasses.replace(decision, explanation=explain(decision))
        if chosen is not None and status in ("queued", "deferred"):
            action = chosen.rule.rule.action
            ledger.record(state.account_id, action.channel.value, action.campaign, action.cost)
        return decision
