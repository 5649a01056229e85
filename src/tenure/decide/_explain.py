"""A decision in plain words: who, what, which rule and evidence, what each guardrail said."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenure.decide._guardrails import Verdict

if TYPE_CHECKING:
    from tenure.decide._engine import Decision

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


def explain(decision: Decision) -> str:
    lines = [f"{_who(decision)}: {_STATUS.get(decision.status, decision.status)}."]
    chosen = decision.chosen
    if chosen is not None:
        rule = chosen.rule.rule
        action = rule.action
        what = f"{action.channel} '{action.template}'"
        if decision.contact is not None and action.channel.value in ("email", "in_app"):
            what += f" to {decision.contact.email or decision.contact.user_id}"
        extra = [f"priority {rule.priority}"]
        if chosen.value is not None:
            extra.insert(0, f"expected value {chosen.value:,.2f}")
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
            lines.append(f"Also matched {other.rule.key}, ranked lower.")
    if decision.errors:
        failed = "; ".join(f"{k}: {v}" for k, v in sorted(decision.errors.items()))
        lines.append(f"Conditions that could not be evaluated: {failed}.")
    return "\n".join(lines)
