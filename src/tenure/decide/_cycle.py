"""One decision cycle: load policies and state, decide, render, log and queue — in one transaction.

The transaction holds the decide lock from its first statement (see
:func:`tenure.decide._guardrails.decide_lock`), so what the guardrails counted
is still true when the actions land in the outbox. Decisions of one cycle have
ids derived from the cycle id and the account, so running the same cycle
again adds nothing.

Customers are decided in account order, streamed in chunks. While a budget
applies (``decide.budgets`` or ``decide.global_budget``), what is spent first
is gone for those who come later, so the cycle first ranks every customer a
rule may act on by their best candidate (:func:`tenure.decide._engine.rank_key`:
the highest value, then priority; ties by account) and decides in that order:
a budget for K actions goes to the K customers worth most.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, func, select

from tenure._config_decide import Channel, parse_duration
from tenure._gc import fewer_collections
from tenure._tracing import tracer
from tenure.decide._engine import Decider, Decision, Prepare, RankKey, rank_key
from tenure.decide._guardrails import Guardrails, Ledger, Verdict, decide_lock
from tenure.decide._policy import CompiledRule, PolicySet, load_policies
from tenure.decide._state import Contact, CustomerState, load_contexts, load_states
from tenure.decide._templates import TemplateSet, load_templates
from tenure.decide._versions import ensure_version
from tenure.errors import TemplateError
from tenure.govern.consent import unsubscribe_token
from tenure.govern.secrets import project_secret
from tenure.store._bulk import insert_rows
from tenure.store._tables import customer_state, decisions, outbox, review_queue

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "ACTED_STATUSES",
    "CycleReport",
    "decide",
    "decision_row",
    "outbox_row",
    "preparer",
    "preview_template",
    "render_action",
    "unsubscribe_secret",
]

#: Statuses that start a rule's cool-down: a held-out customer is exposed to the
#: decision like a treated one (and would only be held out again meanwhile).
ACTED_STATUSES = ("queued", "deferred", "review", "holdout")
#: A customer's matched rules and the rules whose condition could not be evaluated.
Matches = tuple[list[CompiledRule], dict[str, str]]
#: Full customer states loaded at once.
_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class CycleReport:
    cycle_id: str
    at: dt.datetime
    dry_run: bool
    customers: int
    decisions: tuple[Decision, ...]
    by_status: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    already_decided: bool = False
    seconds: float = 0.0


def unsubscribe_secret(project: Project) -> bytes:
    """The secret from the configured environment variable, else the project's own key file."""
    return project_secret(
        project.root, "unsubscribe", project.config.delivery.unsubscribe_secret_env
    )


def _variables(
    decision_id: str, rule: CompiledRule, state: CustomerState, contact: Contact | None,
    unsubscribe_url: str | None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "account": {
            "id": state.account_id,
            "name": state.name or state.account_id,
            "traits": state.traits,
            "value": state.value,
            "stage": state.stage,
        },
        "contact": contact.as_dict() if contact is not None else {},
        "scores": state.scores,
        "features": state.features,
        "health": state.health,
        "stage": state.stage,
        "reasons": [str(r.get("text")) for r in state.reasons if r.get("text")],
        "decision": {"id": decision_id, "rule": rule.key, "policy": rule.policy},
        **({"unsubscribe_url": unsubscribe_url} if unsubscribe_url else {}),
    }


def render_action(
    decision_id: str,
    rule: CompiledRule,
    state: CustomerState,
    contact: Contact | None,
    *,
    templates: TemplateSet,
    public_url: str,
    secret: bytes,
    csm_target: str | None,
) -> tuple[str, dict[str, Any]]:
    """The recipient and outbox payload of *rule*'s action; TemplateError if it cannot."""
    action = rule.action
    template = templates.get(action.template)
    if template.channel is not action.channel:
        raise TemplateError(
            f"template {template.name!r} is for {template.channel}, the action is {action.channel}"
        )
    identifiers = list(contact.identifiers) if contact is not None else []
    url = None
    if action.channel is Channel.EMAIL:
        assert contact is not None
        assert contact.email
        token = unsubscribe_token(f"email:{contact.email}", "email", secret)
        url = f"{public_url.rstrip('/')}/unsubscribe/{token}"
    parts = template.render(_variables(decision_id, rule, state, contact, url)).parts
    if action.channel is Channel.EMAIL:
        assert contact is not None
        assert contact.email
        payload = {"to": contact.email, **parts, "unsubscribe_url": url}
        payload.setdefault("html", None)
        recipient = contact.email
    elif action.channel is Channel.IN_APP:
        assert contact is not None
        payload = {"user_id": contact.user_id, **parts}
        recipient = contact.user_id or contact.profile_id
    elif action.channel is Channel.WEBHOOK:
        payload = {"target": action.target, "body": parts["body"]}
        recipient = str(action.target)
    else:
        payload = {"body": parts["body"]}
        recipient = csm_target or "csm"
    payload["consent_identifiers"] = identifiers
    return recipient, payload


def preparer(project: Project, templates: TemplateSet) -> Prepare:
    """render_action bound to the project's delivery settings and unsubscribe secret."""
    delivery = project.config.delivery
    return functools.partial(
        render_action,
        templates=templates,
        public_url=delivery.public_url,
        secret=unsubscribe_secret(project),
        csm_target=delivery.csm_task_webhook,
    )


def _history(
    connection: Connection, now: dt.datetime, policies: PolicySet
) -> tuple[dict[str, dict[str, dt.datetime]], set[str]]:
    """When each rule last acted on each account (within its cool-down), and accounts in review."""
    longest = max((r.cooldown for r in policies.rules if r.cooldown), default=None)
    fired: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    if longest is not None:
        rows = connection.execute(
            select(
                decisions.c.account_id,
                decisions.c.policy,
                decisions.c.rule_id,
                func.max(decisions.c.decided_at).label("at"),
            )
            .where(
                decisions.c.status.in_(ACTED_STATUSES) & (decisions.c.decided_at > now - longest)
            )
            .group_by(decisions.c.account_id, decisions.c.policy, decisions.c.rule_id)
        )
        for row in rows:
            fired[row.account_id][f"{row.policy}/{row.rule_id}"] = row.at
    pending = connection.execute(
        select(decisions.c.account_id)
        .join(review_queue, review_queue.c.decision_id == decisions.c.id)
        .where(review_queue.c.status == "pending")
    )
    return dict(fired), {row.account_id for row in pending}


def _candidates(
    connection: Connection,
    decider: Decider,
    accounts: list[str] | None,
    fired: dict[str, dict[str, dt.datetime]],
    in_review: set[str],
    at: dt.datetime,
    *,
    by_value: bool,
) -> tuple[int, Iterator[tuple[CustomerState, Matches | None]]]:
    """How many customers there are, and the ones a rule may act on, with their matches.

    Conditions are evaluated on contexts the database extracts from the stored
    state; only customers with an eligible rule are loaded whole (in chunks).
    They come in account order, or with *by_value* best first (see :func:`_by_value`).
    """
    policies = decider.policies
    contexts = load_contexts(
        connection, policies.condition_fields, accounts, guards=policies.guards
    )
    hits: list[tuple[str, Matches | None]]
    if contexts is None:  # a condition reads derived values: evaluate on full states
        query = select(customer_state.c.account_id).order_by(customer_state.c.account_id)
        if accounts is not None:
            query = query.where(customer_state.c.account_id.in_(sorted(set(accounts))))
        hits = [(account_id, None) for account_id in connection.execute(query).scalars()]
        customers = len(hits)
    else:
        hits = []
        for account_id, stage, context in contexts.found:
            if account_id in in_review:
                continue
            matched, errors = decider.matching_context(context)
            if decider.eligible(matched, stage, fired.get(account_id, {}), at):
                hits.append((account_id, (matched, errors)))
        customers = contexts.customers
    if by_value:
        hits = _by_value(connection, decider, hits, fired, in_review, at)
    return customers, _states(connection, hits)


def _states(
    connection: Connection, hits: list[tuple[str, Matches | None]]
) -> Iterator[tuple[CustomerState, Matches | None]]:
    """The full state of each of *hits*, in their order, loaded a chunk at a time."""
    for start in range(0, len(hits), _CHUNK):
        chunk = hits[start : start + _CHUNK]
        states = {s.account_id: s for s in load_states(connection, [a for a, _ in chunk])}
        for account_id, matches in chunk:
            yield states[account_id], matches


def _by_value(
    connection: Connection,
    decider: Decider,
    hits: list[tuple[str, Matches | None]],
    fired: dict[str, dict[str, dt.datetime]],
    in_review: set[str],
    at: dt.datetime,
) -> list[tuple[str, Matches | None]]:
    """*hits* in the order a budget should be spent: the customers worth most first.

    Each customer is keyed by the :func:`rank_key` of their first choice (the
    best candidate its value does not block: a value before none, the higher
    value, the higher priority), ties broken by account id; customers whose
    every candidate is blocked by its value come last. Customers no rule may
    act on are dropped (nothing would be decided for them). States are read a
    chunk at a time and only the key is kept, so the second pass loads them again.
    """
    keyed: list[tuple[tuple[bool, RankKey], str, Matches]] = []
    for state, matches in _states(connection, hits):
        if state.account_id in in_review:
            continue
        found = decider.matching(state) if matches is None else matches
        last_fired = fired.get(state.account_id, {})
        eligible = decider.eligible(found[0], state.stage, last_fired, at)
        if not eligible:
            continue
        first = decider.first_choice(state, eligible)
        key = (True, (True, 0.0, 0)) if first is None else (False, rank_key(first))
        keyed.append((key, state.account_id, found))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(account_id, found) for _, account_id, found in keyed]


def decision_row(
    decision: Decision, path: str, versions: dict[str, int], templates: dict[str, int]
) -> dict[str, Any]:
    chosen = decision.chosen
    action: dict[str, Any] = {}
    if chosen is not None:
        action = chosen.rule.action.model_dump(mode="json")
        action["template_version"] = templates.get(action["template"])
    state = decision.state
    return {
        "id": decision.id,
        "cycle_id": decision.cycle_id,
        "path": path,
        "account_id": decision.account_id,
        "profile_id": decision.contact.profile_id if decision.contact else None,
        "decided_at": decision.decided_at,
        "status": decision.status,
        "policy": chosen.rule.policy if chosen else None,
        "policy_version": versions.get(chosen.rule.policy) if chosen else None,
        "rule_id": chosen.rule.rule.id if chosen else None,
        "channel": chosen.rule.action.channel.value if chosen else None,
        "campaign": chosen.rule.action.campaign if chosen else None,
        "action": orjson.dumps(action).decode(),
        "value": chosen.value if chosen else None,
        "models": orjson.dumps(state.models).decode(),
        "scores": orjson.dumps({**state.scores, "health": state.health}).decode(),
        "features": orjson.dumps(state.features).decode(),
        "features_hash": state.features_hash,
        "as_of": state.as_of,
        "candidates": orjson.dumps([c.as_dict() for c in decision.candidates]).decode(),
        "guardrails": orjson.dumps([c.as_dict() for c in decision.checks]).decode(),
        "experiment": _experiment(decision),
        "explanation": decision.explanation,
    }


def _experiment(decision: Decision) -> str | None:
    """The holdout group that placed the customer, their arm (an experiment's arm by its
    name), and the stage they were in (the stratum the report breaks lifts down by);
    None when no group applied."""
    check = next((c for c in decision.checks if c.guardrail == "holdout"), None)
    if check is None or check.group is None:
        return None
    arm = check.arm or ("held out" if check.verdict is Verdict.HOLD else "treated")
    return orjson.dumps(
        {
            "group": check.group,
            "arm": arm,
            "percent": check.percent,
            "stage": decision.state.stage,
        }
    ).decode()


def decide(
    project: Project,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    path: str = "batch",
    accounts: list[str] | None = None,
    actor: str = "tenure",
) -> CycleReport:
    """Run one decision cycle at *now* (the project's clock by default)."""
    started = time.perf_counter()
    at = now or project.clock()
    settings = project.config.decide
    policies = load_policies(_dir(project, settings.policies_dir))
    templates = load_templates(_dir(project, settings.templates_dir))
    cycle_id = "c_" + hashlib.sha256(f"{path}\x1f{at.isoformat()}".encode()).hexdigest()[:16]
    decider = Decider(policies, Guardrails(settings), preparer(project, templates))
    with (
        fewer_collections(),
        tracer().start_as_current_span("decide.cycle") as span,
        project.store.connect() as connection,
    ):
        span.set_attribute("tenure.path", path)
        span.set_attribute("tenure.dry_run", dry_run)
        try:
            report = _run(
                connection,
                project,
                decider,
                templates,
                policies,
                cycle_id,
                at,
                dry_run=dry_run,
                path=path,
                accounts=accounts,
                actor=actor,
            )
        except BaseException:
            connection.rollback()
            raise
        if dry_run or report.already_decided:
            connection.rollback()
        else:
            connection.commit()
        span.set_attribute("tenure.customers", report.customers)
    return dataclasses.replace(report, seconds=time.perf_counter() - started)


def _run(
    connection: Connection,
    project: Project,
    decider: Decider,
    templates: TemplateSet,
    policies: PolicySet,
    cycle_id: str,
    at: dt.datetime,
    *,
    dry_run: bool,
    path: str,
    accounts: list[str] | None,
    actor: str,
) -> CycleReport:
    settings = project.config.decide
    made: list[Decision] = []
    if not dry_run:
        decide_lock(connection)
        seen = connection.execute(
            select(func.count()).select_from(decisions).where(decisions.c.cycle_id == cycle_id)
        ).scalar_one()
        if seen:
            return CycleReport(cycle_id, at, dry_run, 0, (), already_decided=True)
    policy_versions = {
        name: ensure_version(connection, "policy", name, text, at=at, actor=actor)
        for name, text in policies.sources.items()
    }
    template_versions = {
        name: ensure_version(connection, "template", name, t.source, at=at, actor=actor)
        for name, t in templates.templates.items()
    }
    ledger = Ledger.load(connection, settings, at)
    fired, in_review = _history(connection, at, policies)
    decision_rows: list[dict[str, Any]] = []
    outbox_rows: list[dict[str, Any]] = []
    review_rows: list[dict[str, Any]] = []
    expires = at + parse_duration(settings.review.expires_after)
    # while a budget applies, who comes first gets it: the customers worth most
    by_value = bool(settings.budgets) or settings.global_budget is not None
    customers, work = _candidates(
        connection, decider, accounts, fired, in_review, at, by_value=by_value
    )
    for state, matches in work:
        decision = decider.decide(
            ledger,
            state,
            cycle_id=cycle_id,
            last_fired=fired.get(state.account_id, {}),
            busy=state.account_id in in_review,
            matches=matches,
        )
        if decision is None:
            continue
        if decision.delivery is not None:
            recipient, payload = decision.delivery
            outbox_rows.append(outbox_row(decision, recipient, payload, template_versions))
        if decision.status == "review":
            review = next(c for c in decision.checks if c.verdict is Verdict.REVIEW)
            review_rows.append(
                {
                    "decision_id": decision.id,
                    "reason": review.detail,
                    "status": "pending",
                    "requested_at": at,
                    "expires_at": expires,
                }
            )
        made.append(decision)
        decision_rows.append(decision_row(decision, path, policy_versions, template_versions))
    if not dry_run:
        for table, rows in (
            (decisions, decision_rows),
            (outbox, outbox_rows),
            (review_queue, review_rows),
        ):
            insert_rows(connection, table, rows)
    return CycleReport(
        cycle_id=cycle_id,
        at=at,
        dry_run=dry_run,
        customers=customers,
        decisions=tuple(made),
        by_status=dict(Counter(d.status for d in made)),
        by_rule=dict(Counter(d.chosen.rule.key for d in made if d.chosen is not None)),
    )


def outbox_row(
    decision: Decision, recipient: str, payload: dict[str, Any], template_versions: dict[str, int]
) -> dict[str, Any]:
    assert decision.chosen is not None
    action = decision.chosen.rule.action
    return {
        "idempotency_key": "a_" + decision.id.removeprefix("d_"),
        "decision_id": decision.id,
        "account_id": decision.account_id,
        "profile_id": decision.contact.profile_id if decision.contact else None,
        "channel": action.channel.value,
        "recipient": recipient,
        "campaign": action.campaign,
        "cost": action.cost,
        "template": action.template,
        "template_version": template_versions.get(action.template),
        "payload": orjson.dumps(payload).decode(),
        "status": "queued",
        "attempts": 0,
        "resends": 0,
        "not_before": decision.not_before,
        "created_at": decision.decided_at,
    }


def _dir(project: Project, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else project.root / path


def preview_template(
    project: Project, name: str, account_id: str, *, rule: CompiledRule | None = None
) -> tuple[str, dict[str, Any]]:
    """Render template *name* for a real customer, exactly as a send would, without sending.

    Uses the account's published state and first contact; a missing variable
    raises the same :class:`TemplateError` a send would.
    """
    from tenure.decide._policy import Action, Rule
    from tenure.errors import NotFoundError

    templates = load_templates(_dir(project, project.config.decide.templates_dir))
    template = templates.get(name)
    with project.store.connect() as connection:
        found = load_states(connection, [account_id])
    if not found:
        raise NotFoundError(
            f"no published state for account {account_id!r} (run `tenure decide --dry-run` "
            "or `tenure score` first)"
        )
    state = found[0]
    if rule is None:
        action = Action(channel=template.channel, template=name, target="preview")
        rule = CompiledRule(
            "preview", Rule(id="preview", when="true", action=action), None, None, {}
        )
    contact = state.contacts[0] if state.contacts else None
    return preparer(project, templates)("d_preview", rule, state, contact)
