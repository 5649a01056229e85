"""Decide: policies (CEL rules), guardrails, arbitration, templates, review, decision log.

``publish_state`` copies what decisions need from the warehouse into the
operational store; ``decide`` runs one cycle over it; ``explain_decision``
reads one back in plain words.
"""

from tenure.decide._cycle import (
    CycleReport,
    decide,
    preview_template,
    render_action,
    unsubscribe_secret,
)
from tenure.decide._engine import Candidate, Decider, Decision, ValueSource
from tenure.decide._guardrails import Check, Guardrails, Ledger, Verdict, decide_lock
from tenure.decide._journeys import Journey, JourneyReport, load_journeys, run_journeys
from tenure.decide._log import explain_decision, get_decision, list_decisions
from tenure.decide._outcomes import Outcome, decision_outcomes
from tenure.decide._policy import Action, Policy, PolicySet, Rule, load_policies
from tenure.decide._review import approve, expire_reviews, list_reviews, reject
from tenure.decide._state import (
    Contact,
    CustomerState,
    load_states,
    publish_state,
    save_states,
)
from tenure.decide._templates import Rendered, Template, TemplateSet, load_templates
from tenure.decide._versions import ensure_version, versions

__all__ = [
    "Action",
    "Candidate",
    "Check",
    "Contact",
    "CustomerState",
    "CycleReport",
    "Decider",
    "Decision",
    "Guardrails",
    "Journey",
    "JourneyReport",
    "Ledger",
    "Outcome",
    "Policy",
    "PolicySet",
    "Rendered",
    "Rule",
    "Template",
    "TemplateSet",
    "ValueSource",
    "Verdict",
    "approve",
    "decide",
    "decide_lock",
    "decision_outcomes",
    "ensure_version",
    "expire_reviews",
    "explain_decision",
    "get_decision",
    "list_decisions",
    "list_reviews",
    "load_journeys",
    "load_policies",
    "load_states",
    "load_templates",
    "preview_template",
    "publish_state",
    "reject",
    "render_action",
    "run_journeys",
    "save_states",
    "unsubscribe_secret",
    "versions",
]
