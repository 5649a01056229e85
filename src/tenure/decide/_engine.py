"""Arbitration: from matching rules to at most one action per customer per cycle.

For each customer the rules whose stage eligibility, cool-down and CEL
condition hold are the candidates. Each has a value: the expected value
``uplift × value − cost`` where the customer's state has an uplift estimate
for the action's treatment, else what the rule's own ``value`` expression
gives, else none. They are ranked by value (a candidate with one above every
candidate without), then by priority. An expected value below zero says acting
does more harm than good, or costs more than it saves: that candidate is
blocked ("value") and the customer left alone by it, unless
``decide.act_on_negative_value``. A rule's value expression is a ranking, not
money, so it is never a reason to block. The guardrails then look at the best
candidate; a blocked one gives way to the next, so a frequency cap on email
lets a CSM task through. The first candidate that is not blocked is the
decision: queued, deferred (quiet hours) or waiting for review.

A rule with an experiment is the candidate of the customer's arm (a hash, see
:class:`tenure.decide._holdouts.HoldoutGroups`): ranked and checked with that
arm's action, the control arm with the first treatment arm's, so that both
sides are selected alike. Then, like a campaign holdout, the control arm is
logged as ``holdout`` and nothing is sent or spent.

Everything is written down: each candidate and what became of it, each
guardrail's verdict, the scores, model versions and features used, and a
plain-words explanation (see :mod:`tenure.decide._explain`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenure.decide._explain import _amount, explain
from tenure.decide._guardrails import Check, Guardrails, Ledger, Verdict
from tenure.decide._holdouts import HoldoutGroups
from tenure.decide._policy import CompiledRule, PolicySet
from tenure.decide._state import Contact, CustomerState
from tenure.errors import TemplateError

__all__ = ["Candidate", "Decider", "Decision", "RankKey", "ValueSource", "decision_id", "rank_key"]

#: What a CEL evaluation may raise for one customer: a missing field (KeyError), a
#: type mismatch, an unknown function, a division by zero …
_EVALUATION_ERRORS = (KeyError, TypeError, RuntimeError, ValueError, ArithmeticError)
#: How a candidate sorts, best first: with a value before without, value, priority.
RankKey = tuple[bool, float, int]


def decision_id(cycle_id: str, account_id: str) -> str:
    return "d_" + hashlib.sha256(f"{cycle_id}\x1f{account_id}".encode()).hexdigest()[:24]


def _failure(error: Exception) -> str:
    """A CEL evaluation error in a few words."""
    if isinstance(error, KeyError):
        return f"no value for {error.args[0]!r}"
    return str(error).split(". ")[0]


class ValueSource(enum.StrEnum):
    """Where a candidate's value came from."""

    #: ``uplift × value − cost`` from the customer's uplift estimate: money, so below
    #: zero the action is expected to do more harm than good.
    UPLIFT = "uplift"
    #: The rule's ``value`` expression: a ranking, not money.
    RULE = "rule"


@dataclass(frozen=True, slots=True)
class Candidate:
    rule: CompiledRule
    value: float | None  # see value_from; None: ranked by priority
    checks: tuple[Check, ...] = ()
    outcome: str = "not reached"  # chosen | blocked | not reached
    value_from: ValueSource | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.key,
            "priority": self.rule.rule.priority,
            "value": self.value,
            "value_from": None if self.value_from is None else self.value_from.value,
            "outcome": self.outcome,
            "guardrails": [c.as_dict() for c in self.checks],
            **({"arm": self.rule.arm} if self.rule.arm is not None else {}),
        }


def rank_key(candidate: Candidate) -> RankKey:
    """How *candidate* sorts, smallest first: a value before none, higher value, higher priority."""
    value = candidate.value
    return (value is None, -(value or 0.0), -candidate.rule.rule.priority)


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
    #: rule → why its condition (or, for a candidate, its value) could not be evaluated
    errors: dict[str, str] = field(default_factory=dict)
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
        self.holdouts = HoldoutGroups(guardrails.settings.holdouts, policies.experiments)

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
        except _EVALUATION_ERRORS:
            results = None  # some rule fails for this customer: find which, one by one
        matched: list[CompiledRule] = []
        errors: dict[str, str] = {}
        for n, rule in enumerate(rules):
            if results is not None:
                outcome = results[n]
            else:
                try:
                    outcome = rule.program.execute(context)
                except _EVALUATION_ERRORS as error:
                    errors[rule.key] = _failure(error)
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

    def rank(
        self, state: CustomerState, rules: list[CompiledRule]
    ) -> tuple[list[Candidate], dict[str, str]]:
        """*rules* as candidates for *state*, best first, and the value expressions that failed.

        A candidate's value is ``uplift × value − cost`` where the state has an
        uplift estimate for the action's treatment, else its rule's value
        expression, else None (ranked by priority, after every one with a value).
        """
        candidates = []
        errors: dict[str, str] = {}
        context: dict[str, Any] | None = None
        for rule in rules:
            experiment = rule.rule.experiment
            if experiment is not None and rule.arm is None:
                rule = rule.with_arm(self.holdouts.arm(state.account_id, experiment.id))
            action = rule.action
            uplift = state.uplift.get(action.treatment)
            if uplift is not None:
                value = float(uplift) * state.value - action.cost
                candidates.append(Candidate(rule, value, value_from=ValueSource.UPLIFT))
                continue
            if rule.value_program is None:
                candidates.append(Candidate(rule, None))
                continue
            if context is None:
                context = self.policies.context(state.context())
            try:
                found = rule.value_program.execute(context)
            except _EVALUATION_ERRORS as error:
                errors[rule.key] = _failure(error)
                candidates.append(Candidate(rule, None))
                continue
            if isinstance(found, bool) or not isinstance(found, int | float):
                errors[rule.key] = f"gave {found!r}, not a number"
                candidates.append(Candidate(rule, None))
            elif not math.isfinite(found):
                errors[rule.key] = f"gave {found!r}, not a finite number"
                candidates.append(Candidate(rule, None))
            else:
                candidates.append(Candidate(rule, float(found), value_from=ValueSource.RULE))
        candidates.sort(key=lambda c: (rank_key(c), c.rule.key))
        return candidates, errors

    def value_check(self, state: CustomerState, candidate: Candidate) -> Check | None:
        """A block when *candidate*'s uplift says acting is worth less than nothing, else None.

        Only an uplift estimate's expected value is money; a rule's value
        expression ranks and never blocks. ``decide.act_on_negative_value``
        switches the block off.
        """
        value = candidate.value
        if (
            candidate.value_from is not ValueSource.UPLIFT
            or value is None
            or value >= 0
            or self.guardrails.settings.act_on_negative_value
        ):
            return None
        action = candidate.rule.action
        uplift = float(state.uplift[action.treatment])
        return Check(
            "value",
            Verdict.BLOCK,
            f"expected value {_amount(value)} < 0: uplift {_amount(uplift, 3)} × value "
            f"{_amount(state.value)} − cost {_amount(action.cost)}",
        )

    def first_choice(self, state: CustomerState, rules: list[CompiledRule]) -> Candidate | None:
        """The best ranked of *rules*' candidates that its value does not block, if any."""
        ranked, _ = self.rank(state, rules)
        return next((c for c in ranked if self.value_check(state, c) is None), None)

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
        ranked, failed = self.rank(state, eligible)
        errors = {**errors, **failed}
        contact = state.contacts[0] if state.contacts else None
        done: list[Candidate] = []
        chosen: Candidate | None = None
        status = "blocked"
        not_before = now
        delivery = None
        the_id = decision_id(cycle_id, state.account_id)
        for candidate in ranked:
            declined = self.value_check(state, candidate)
            if declined is not None:  # left alone: no guardrail needs asking
                done.append(dataclasses.replace(candidate, checks=(declined,), outcome="blocked"))
                continue
            checks = tuple(self.guardrails.check(ledger, state, contact, candidate.rule.action))
            verdicts = {c.verdict for c in checks}
            if Verdict.BLOCK not in verdicts and self.prepare is not None:
                try:
                    delivery = self.prepare(the_id, candidate.rule, state, contact)
                except TemplateError as error:
                    checks = (*checks, Check("template", Verdict.BLOCK, str(error)))
                    verdicts.add(Verdict.BLOCK)
            if Verdict.BLOCK in verdicts:
                done.append(dataclasses.replace(candidate, checks=checks, outcome="blocked"))
                continue
            experiment = candidate.rule.rule.experiment
            held = self.holdouts.check(
                state.account_id,
                candidate.rule.action.campaign,
                experiment=None if experiment is None else experiment.id,
            )
            if held is not None:
                checks = (*checks, held)
            chosen = dataclasses.replace(candidate, checks=checks, outcome="chosen")
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
        done.extend(ranked[len(done) :])
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
            action = chosen.rule.action
            ledger.record(state.account_id, action.channel.value, action.campaign, action.cost)
        return decision
