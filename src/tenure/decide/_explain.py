"""A decision in plain words: who, what, which rule and evidence, what each guardrail said."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenure.decide._guardrails import Verdict

if TYPE_CHECKING:
    from tenure.decide._engine import Candidate, Decision

__all__ = ["explain"]

_STATUS = {
    "queued": "queued to send",
    "deferred": "queued, waiting for quiet hours to end",
    "review": "waiting for a person's review before anything is sent",
    "blocked": "nothing sent: every candidate was blocked",
    "holdout": "nothing sent: held out, to measure what the action changes",
}


def _who(decision: Decision) -> str:
    state = decision.state
    facts = []
    if state.stage:
        facts.append(state.stage)
    churn = state.scores.get("churn_probability")
    if churn is not None:
        facts.append(f"churn risk {churn:.0%}")
    health = state.health.get("score")
    if health is not None:
        facts.append(f"health {health:.0f} {state.health.get('band', '')}".rstrip())
    if state.value:
        facts.append(f"worth {state.value:,.0f}")
    name = state.name or state.account_id
    return f"{name} ({', '.join(facts)})" if facts else name


def _amount(number: float, places: int = 2) -> str:
    """*number* with *places* decimals, thousands separated, and a true minus sign."""
    return f"{number:,.{places}f}".replace("-", "−")


def _number(value: float) -> str:
    """A value of any scale (a probability, a CLV) in a few significant digits."""
    return (f"{value:,.2f}" if abs(value) >= 10 else f"{value:.4g}").replace("-", "−")


def _value(decision: Decision, candidate: Candidate) -> str | None:
    """Where *candidate*'s value came from, in words (None: it has none)."""
    value = candidate.value
    if value is None:
        return None
    rule = candidate.rule.rule
    action = candidate.rule.action
    uplift = decision.state.uplift.get(action.treatment)
    # ValueSource is a StrEnum (importing _engine here would be circular)
    source = candidate.value_from
    if source == "uplift" and uplift is not None:
        return (
            f"expected value {_amount(value)}: uplift {_amount(uplift, 3)} × value "
            f"{_amount(decision.state.value)} − cost {_amount(action.cost)}"
        )
    if source == "rule" and rule.value:
        return f"value {_number(value)} by the rule's value expression {rule.value}"
    return f"value {_number(value)}"


def explain(decision: Decision) -> str:
    lines = [f"{_who(decision)}: {_STATUS.get(decision.status, decision.status)}."]
    chosen = decision.chosen
    if chosen is not None:
        rule = chosen.rule.rule
        action = chosen.rule.action
        what = f"{action.channel} '{action.template}'"
        if decision.contact is not None and action.channel.value in ("email", "in_app"):
            what += f" to {decision.contact.email or decision.contact.user_id}"
        extra = [f"priority {rule.priority}"]
        worth = _value(decision, chosen)
        if worth is not None:
            extra.insert(0, worth)
        if rule.experiment is not None and chosen.rule.arm is not None:
            extra.append(f"experiment {rule.experiment.id}, arm {chosen.rule.arm}")
        if action.campaign:
            extra.append(f"campaign {action.campaign}")
        if action.cost:
            extra.append(f"cost {action.cost:,.2f}")
        if action.discount:
            extra.append(f"discount {action.discount:.0%}")
        lines.append(
            f"Action: {what}, by rule {chosen.rule.key} ({'; '.join(extra)}), because {rule.when}."
        )
        if rule.description:
            lines.append(f"Rule: {rule.description}")
    reasons = [r.get("text") for r in decision.state.reasons if r.get("text")]
    if reasons:
        lines.append("Churn risk drivers: " + "; ".join(str(r) for r in reasons[:3]) + ".")
    checks = decision.checks
    if checks:
        said = []
        for check in checks:
            verb = {
                Verdict.PASS: "passed",
                Verdict.BLOCK: "BLOCKED",
                Verdict.DEFER: "deferred",
                Verdict.REVIEW: "sent to review",
                Verdict.HOLD: "held out",
            }[check.verdict]
            said.append(f"{check.guardrail} {verb} ({check.detail})")
        lines.append("Guardrails: " + "; ".join(said) + ".")
    others = [c for c in decision.candidates if c is not chosen]
    for other in others:
        if other.outcome == "blocked":
            block = next((c for c in other.checks if c.verdict is Verdict.BLOCK), None)
            why = f"{block.guardrail}: {block.detail}" if block else "blocked"
            lines.append(f"Also matched {other.rule.key}, blocked by {why}.")
        else:
            worth = _value(decision, other)
            note = f" ({worth})" if worth is not None else ""
            lines.append(f"Also matched {other.rule.key}{note}, ranked lower.")
    # a candidate's rule matched, so what failed for it was its value expression
    ranked = {c.rule.key for c in decision.candidates}
    conditions = {k: v for k, v in decision.errors.items() if k not in ranked}
    values = {k: v for k, v in decision.errors.items() if k in ranked}
    if conditions:
        failed = "; ".join(f"{k}: {v}" for k, v in sorted(conditions.items()))
        lines.append(f"Conditions that could not be evaluated: {failed}.")
    if values:
        failed = "; ".join(f"{k}: {v}" for k, v in sorted(values.items()))
        lines.append(f"Values that could not be evaluated, so ranked by priority: {failed}.")
    return "\n".join(lines)
