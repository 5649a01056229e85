"""Acting on one customer: the next-best action, through the same guardrails as batch.

The next-best action goes through the batch cycle's own :class:`Decider` and
:class:`Guardrails`, on the customer state batch steps published, inside one
transaction that holds the decide lock — so an API answer and a batch cycle
never both use the last send under a cap. What makes it fast enough to call
per page view: the policy and template files are compiled once per app and
compiled again only when a file changes (see :class:`ProjectFiles`); only
this account's state, sends, consent and cool-downs are read, by index, as
prepared reads; the guardrails' counts only when some rule may act; logged
decisions waiting at the same time share one transaction (group commit, one
lock turn and one synchronous commit per group); and a dry run on SQLite is
decided on the event loop, without a hand-over to a thread.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    func,
    insert,
    select,
)
from starlette.responses import Response

from tenure._config_decide import DecideSettings, parse_duration
from tenure._tracing import tracer
from tenure.api import _govern, _manage, _review
from tenure.api._auth import Principal, require
from tenure.api._errors import JsonResponse, error_responses
from tenure.api._manage import Compiled, ProjectFiles, Versions, project_files
from tenure.api._pii import PLAIN, masker_of
from tenure.api._review import CandidateRule, GuardrailVerdict
from tenure.decide import (
    Decider,
    Decision,
    Ledger,
    PolicySet,
    Verdict,
    decide_lock,
    ensure_version,
    get_decision,
)
from tenure.decide._cycle import ACTED_STATUSES, decision_row, outbox_row
from tenure.decide._engine import decision_id
from tenure.decide._guardrails import COUNTED_STATUSES
from tenure.decide._state import CustomerState
from tenure.decide._state import state_from_row as state_of
from tenure.errors import NotFoundError, TenureError
from tenure.govern.keys import Scope
from tenure.govern.pii import Pseudonymizer
from tenure.project import Project
from tenure.store._group import GroupCommitter
from tenure.store._reads import PreparedRead, one_of
from tenure.store._tables import (
    consent,
    customer_state,
    decisions,
    outbox,
    policy_versions,
    review_queue,
)

__all__ = ["router"]

router = APIRouter(tags=["act"])

_ACCOUNT = Path(min_length=1, max_length=64, pattern=PLAIN, description="The account's id")


# The per-request reads are built and compiled once and run as prepared reads (see
# tenure.store._reads): SQLAlchemy's per-execution work was a large share of this
# route's time. Nothing is expanded at execution: fixed status lists are written into
# the SQL, and consent has one statement per number of identifiers.
_LATEST_VERSION = (
    select(policy_versions.c.version, policy_versions.c.content_hash)
    .where(
        (policy_versions.c.kind == bindparam("kind"))
        & (policy_versions.c.name == bindparam("name"))
    )
    .order_by(policy_versions.c.version.desc())
    .limit(1)
)
_STATE = PreparedRead(
    select(customer_state).where(customer_state.c.account_id == bindparam("account"))
)
_LOGGED = PreparedRead(select(decisions.c.id).where(decisions.c.id == bindparam("id")))
_SENDS = PreparedRead(
    select(outbox.c.channel, outbox.c.created_at).where(
        (outbox.c.account_id == bindparam("account"))
        & (outbox.c.created_at > bindparam("since"))
        & one_of(outbox.c.status, COUNTED_STATUSES)
    )
)


@functools.cache
def _consent_of(identifiers: int) -> PreparedRead:
    """The latest consent statements per channel of *identifiers* identifiers ``i0``, ``i1``…"""
    named: list[BindParameter[str]] = [bindparam(f"i{n}") for n in range(identifiers)]
    latest = (
        select(func.max(consent.c.id))
        .where(consent.c.identifier.in_(named))
        .group_by(consent.c.identifier, consent.c.channel)
        .scalar_subquery()
    )
    return PreparedRead(
        select(consent.c.identifier, consent.c.channel, consent.c.granted).where(
            consent.c.id.in_(latest)
        )
    )


_SPENDING = select(func.coalesce(func.sum(outbox.c.cost), 0.0)).where(
    (outbox.c.created_at > bindparam("since")) & one_of(outbox.c.status, COUNTED_STATUSES)
)
_SPENT = PreparedRead(_SPENDING)


@functools.cache
def _spent_on(campaign: str) -> PreparedRead:
    return PreparedRead(_SPENDING.where(outbox.c.campaign == bindparam("campaign", campaign)))


_FIRED = PreparedRead(
    select(decisions.c.policy, decisions.c.rule_id, func.max(decisions.c.decided_at))
    .where(
        (decisions.c.account_id == bindparam("account"))
        & one_of(decisions.c.status, ACTED_STATUSES)
        & (decisions.c.decided_at > bindparam("since"))
    )
    .group_by(decisions.c.policy, decisions.c.rule_id)
)
_PENDING = PreparedRead(
    select(decisions.c.id, review_queue.c.id)
    .join(review_queue, review_queue.c.decision_id == decisions.c.id)
    .where((decisions.c.account_id == bindparam("account")) & (review_queue.c.status == "pending"))
    .limit(1)
)
_NEW_REVIEW = insert(review_queue).returning(review_queue.c.id)


def _peek_version(connection: Connection, kind: str, name: str, source: str) -> int:
    """The version :func:`ensure_version` would give *source*, writing nothing."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    latest = connection.execute(_LATEST_VERSION, {"kind": kind, "name": name}).first()
    if latest is None:
        return 1
    version = int(latest.version)
    return version if latest.content_hash == digest else version + 1


def _versions(
    connection: Connection, compiled: Compiled, *, at: dt.datetime, actor: str, record: bool
) -> Versions:
    """The policy and template versions a decision names; *record* writes new ones.

    Once recorded (after a commit) they are kept on *compiled*; a dry run's
    peek is kept too, since only a change of the files — which makes a new
    :class:`Compiled` — can give the same sources another version.
    """
    if compiled.recorded is not None:
        return compiled.recorded
    if not record and compiled.peeked is not None:
        return compiled.peeked
    version = (
        functools.partial(ensure_version, connection, at=at, actor=actor)
        if record
        else functools.partial(_peek_version, connection)
    )
    versions = (
        {n: version("policy", n, text) for n, text in compiled.policies.sources.items()},
        {n: version("template", n, t.source) for n, t in compiled.templates.templates.items()},
    )
    if not record:
        compiled.peeked = versions
    return versions


# ------------------------------------------------------ one account's ledger
def _ledger(
    connection: Connection,
    settings: DecideSettings,
    now: dt.datetime,
    account_id: str,
    identifiers: tuple[str, ...],
) -> Ledger:
    """:meth:`Ledger.load` narrowed to what one account's guardrail checks read."""
    ledger = Ledger(now=now)
    windows = [parse_duration(c.window) for c in settings.caps] or [dt.timedelta(0)]
    rows = _SENDS.rows(connection, {"account": account_id, "since": now - max(windows)})
    ledger.sends = {account_id: [(r.channel, r.created_at) for r in rows]}
    if settings.budgets or settings.global_budget is not None:
        ledger.spend = _spend(connection, settings, now)
    if identifiers:
        statements = _consent_of(len(identifiers)).rows(
            connection, {f"i{n}": identifier for n, identifier in enumerate(identifiers)}
        )
        ledger.consent = {(r.identifier, r.channel): bool(r.granted) for r in statements}
    return ledger


def _spend(
    connection: Connection, settings: DecideSettings, now: dt.datetime
) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Spend as the budget check sums it, one total per budget instead of one row per send.

    Each budgeted campaign gets its total over its own period; the global
    budget sums every entry, so one more entry holds the rest of the global
    total. All are dated *now*, inside every period.
    """
    spend: dict[str, list[tuple[dt.datetime, float]]] = {}
    for campaign, budget in settings.budgets.items():
        since = now - parse_duration(budget.period)
        total = _spent_on(campaign).scalar(connection, {"since": since})
        spend[campaign] = [(now, float(total))]
    if settings.global_budget is not None:
        since = now - parse_duration(settings.global_budget.period)
        total = float(_SPENT.scalar(connection, {"since": since}))
        named = sum(cost for rows in spend.values() for _, cost in rows)
        spend["\x00rest"] = [(now, total - named)]
    return spend


@dataclass(frozen=True, slots=True)
class _Decided:
    answer: dict[str, Any]
    #: a logged decision's files and the versions it recorded of them
    compiled: Compiled | None = None
    versions: Versions | None = None


@dataclass(frozen=True, slots=True)
class _History:
    fired: dict[str, dt.datetime] = field(default_factory=dict)
    #: (decision id, review item id) of an action of this account still waiting for review
    pending: tuple[str, int] | None = None


def _history(
    connection: Connection, now: dt.datetime, policies: PolicySet, account_id: str
) -> _History:
    """When each rule last acted on the account (within its cool-down), and a pending review."""
    longest = max((r.cooldown for r in policies.rules if r.cooldown), default=None)
    fired: dict[str, dt.datetime] = {}
    if longest is not None:
        rows = _FIRED.rows(connection, {"account": account_id, "since": now - longest})
        fired = {f"{policy}/{rule}": at for policy, rule, at in rows}
    pending = _PENDING.first(connection, {"account": account_id})
    return _History(fired, None if pending is None else (str(pending[0]), int(pending[1])))


# ---------------------------------------------------------------- the answer
class InAppMessage(BaseModel):
    title: str
    body: str


class ChosenAction(BaseModel):
    policy: str
    rule: str
    channel: Literal["email", "in_app", "webhook", "csm_task"]
    template: str
    template_version: int | None = None
    campaign: str | None = None
    cost: float = 0.0
    discount: float = 0.0
    message: InAppMessage | None = Field(
        default=None, description="the rendered in-app message, when one is queued"
    )


_NBA_EXAMPLE: dict[str, Any] = {
    "account_id": "acme",
    "decision_id": "d_5b1f0e9c2a7d4e6f8a0b1c2d",
    "decided_at": "2024-06-01T12:00:00Z",
    "dry_run": False,
    "logged": True,
    "status": "queued",
    "why": "Acme (established, churn risk 64%, health 41 yellow): queued to send.",
    "action": {
        "policy": "retention",
        "rule": "tips-in-app",
        "channel": "in_app",
        "template": "tips_in_app",
        "template_version": 1,
        "campaign": "nurture",
        "cost": 0.1,
        "discount": 0.0,
        "message": {"title": "Tips for Acme", "body": "You logged in 2 times this month."},
    },
    "explanation": "Acme (established, churn risk 64%, health 41 yellow): queued to send.\n"
    "Action: in_app 'tips_in_app' to u1, by rule retention/tips-in-app (priority 40), "
    "because features.logins_30d < 5.",
    "guardrails": [
        {"guardrail": "consent", "verdict": "pass", "detail": "no statement; in_app allowed"},
        {"guardrail": "frequency_cap", "verdict": "pass", "detail": "1/3 on in_app in 7d"},
    ],
    "candidates": [
        {
            "rule": "retention/tips-in-app",
            "priority": 40,
            "value": None,
            "outcome": "chosen",
            "guardrails": [],
        }
    ],
    "policy": "retention",
    "policy_version": 3,
    "not_before": None,
    "review_id": None,
}


class NextBestAction(BaseModel):
    """The action decided for the account now, or none and why."""

    model_config = ConfigDict(json_schema_extra={"examples": [_NBA_EXAMPLE]})

    account_id: str
    decision_id: str | None = Field(description="in the decision log (None: nothing decided)")
    decided_at: dt.datetime
    dry_run: bool
    logged: bool = Field(description="the decision is in the decision log")
    status: Literal[
        "queued", "deferred", "review", "blocked", "holdout", "rejected", "expired", "none"
    ] = Field(
        description="queued to send, deferred past quiet hours, waiting for review, "
        "blocked by a guardrail, held out (a control group: decided and logged, not sent), "
        "or none (no rule may act)"
    )
    why: str = Field(description="the answer in one line")
    action: ChosenAction | None
    explanation: str
    guardrails: list[GuardrailVerdict] = Field(description="each guardrail's verdict")
    candidates: list[CandidateRule]
    policy: str | None
    policy_version: int | None
    not_before: dt.datetime | None = Field(description="a deferred action's earliest send")
    review_id: int | None = Field(description="the review item, when waiting for review")


def _message(channel: str, payload: dict[str, Any] | None) -> dict[str, Any] | None:
    if channel != "in_app" or not payload:
        return None
    return {"title": str(payload.get("title", "")), "body": str(payload.get("body", ""))}


def _answer(
    row: dict[str, Any],
    *,
    dry_run: bool,
    logged: bool,
    payload: dict[str, Any] | None,
    not_before: dt.datetime | None,
    review_id: int | None,
) -> dict[str, Any]:
    """The answer from a decision-log row (its JSON fields parsed)."""
    action = None
    if row["policy"] is not None:
        stored = row["action"]
        action = {
            "policy": row["policy"],
            "rule": row["rule_id"],
            "channel": stored["channel"],
            "template": stored["template"],
            "template_version": stored.get("template_version"),
            "campaign": stored.get("campaign"),
            "cost": stored.get("cost", 0.0),
            "discount": stored.get("discount", 0.0),
            "message": _message(stored["channel"], payload),
        }
    return {
        "account_id": row["account_id"],
        "decision_id": row["id"],
        "decided_at": row["decided_at"],
        "dry_run": dry_run,
        "logged": logged,
        "status": row["status"],
        "why": row["explanation"].split("\n", 1)[0],
        "action": action,
        "explanation": row["explanation"],
        "guardrails": row["guardrails"],
        "candidates": row["candidates"],
        "policy": row["policy"],
        "policy_version": row["policy_version"],
        "not_before": not_before,
        "review_id": review_id,
    }


def _none(account_id: str, at: dt.datetime, dry_run: bool, why: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "decision_id": None,
        "decided_at": at,
        "dry_run": dry_run,
        "logged": False,
        "status": "none",
        "why": why,
        "action": None,
        "explanation": why,
        "guardrails": [],
        "candidates": [],
        "policy": None,
        "policy_version": None,
        "not_before": None,
        "review_id": None,
    }


def _why_none(
    decider: Decider, state: CustomerState, matches: tuple[list[Any], dict[str, str]],
    fired: dict[str, dt.datetime],
) -> str:  # fmt: skip
    """Why no rule may act on *state*: nothing matched, or each match's stage or cool-down."""
    matched, errors = matches
    if not decider.policies.rules:
        return "no policies are loaded, so no rule can act"
    reasons = []
    for rule in matched:
        stages = rule.rule.stages
        if stages is not None and (state.stage or "") not in stages:
            reasons.append(
                f"{rule.key} is for stage {', '.join(stages)}, not {state.stage or 'none'}"
            )
        elif rule.key in fired and rule.cooldown is not None:
            until = fired[rule.key] + rule.cooldown
            reasons.append(f"{rule.key} is cooling down until {until:%Y-%m-%d %H:%M} UTC")
    said = "; ".join(reasons) if reasons else "no rule's condition holds for this account"
    if errors:
        said += "; conditions that could not be evaluated: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(errors.items())
        )
    return said


def _logged(connection: Connection, the_id: str, dry_run: bool) -> dict[str, Any]:
    """A decision already in the log (the same account at the same instant), as an answer."""
    row = get_decision(connection, the_id)
    payload = connection.execute(
        select(outbox.c.payload).where(outbox.c.decision_id == the_id).limit(1)
    ).scalar_one_or_none()
    review = row["review"]
    return _answer(
        row,
        dry_run=dry_run,
        logged=True,
        payload=orjson.loads(payload) if payload else None,
        not_before=None,
        review_id=review["id"] if review and review["status"] == "pending" else None,
    )


def _decide_one(
    connection: Connection,
    project: Project,
    compiled: Compiled,
    account_id: str,
    at: dt.datetime,
    *,
    dry_run: bool,
    actor: str,
) -> _Decided:
    """One account's decision in *connection*'s transaction, logged and queued unless dry.

    Logged decisions need :func:`decide_lock` held in the transaction. Every
    error raised on purpose comes before the decision's first write, so a group
    of decisions in one transaction can answer it and go on.
    """
    settings = project.config.decide
    # a cycle of its own per account and instant: two accounts decided at the same
    # moment never look like one cycle run twice
    key = f"api\x1f{account_id}\x1f{at.isoformat()}"
    cycle_id = "c_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    the_id = decision_id(cycle_id, account_id)
    if not dry_run:
        seen = _LOGGED.scalar(connection, {"id": the_id})
        if seen is not None:
            return _Decided(_logged(connection, the_id, dry_run))
    stored = _STATE.first(connection, {"account": account_id})
    if stored is None:
        raise NotFoundError(
            f"no published state for account {account_id!r}; batch steps publish it "
            "(`tenure decide` or `tenure run`)"
        )
    state = state_of(stored)
    decider = compiled.decider
    history = _history(connection, at, decider.policies, account_id)
    if history.pending is not None:
        pending_id, pending_item = history.pending
        why = (
            f"an earlier action ({pending_id}) waits for review (item {pending_item}); "
            "nothing new is decided for this account until a person decides it"
        )
        return _Decided(_none(account_id, at, dry_run, why))
    matches = decider.matching(state)
    decision = None
    # the guardrails' counts are read only when some rule may act (often none may)
    if decider.eligible(matches[0], state.stage, history.fired, at):
        contact = state.contacts[0] if state.contacts else None
        identifiers = contact.identifiers if contact else ()
        ledger = _ledger(connection, settings, at, account_id, identifiers)
        decision = decider.decide(
            ledger, state, cycle_id=cycle_id, last_fired=history.fired, matches=matches
        )
    if decision is None:
        why = _why_none(decider, state, matches, history.fired)
        return _Decided(_none(account_id, at, dry_run, why))
    versions = _versions(connection, compiled, at=at, actor=actor, record=not dry_run)
    policy_versions_, template_versions = versions
    row = decision_row(decision, "api", policy_versions_, template_versions)
    review_id: int | None = None
    if not dry_run:
        connection.execute(insert(decisions), row)
        if decision.delivery is not None:
            recipient, payload = decision.delivery
            connection.execute(
                insert(outbox), outbox_row(decision, recipient, payload, template_versions)
            )
        if decision.status == "review":
            review_id = _request_review(connection, decision, settings, at)
    parsed = {
        **row,
        "action": orjson.loads(row["action"]),
        "guardrails": orjson.loads(row["guardrails"]),
        "candidates": orjson.loads(row["candidates"]),
    }
    answer = _answer(
        parsed,
        dry_run=dry_run,
        logged=not dry_run,
        payload=decision.delivery[1] if decision.delivery else None,
        not_before=decision.not_before if decision.status == "deferred" else None,
        review_id=review_id,
    )
    return _Decided(answer) if dry_run else _Decided(answer, compiled, versions)


def _request_review(
    connection: Connection, decision: Decision, settings: DecideSettings, at: dt.datetime
) -> int:
    review = next(c for c in decision.checks if c.verdict is Verdict.REVIEW)
    row = {
        "decision_id": decision.id,
        "reason": review.detail,
        "status": "pending",
        "requested_at": at,
        "expires_at": at + parse_duration(settings.review.expires_after),
    }
    return int(connection.execute(_NEW_REVIEW, row).scalar_one())


def _dry_run(project: Project, files: ProjectFiles, account_id: str, actor: str) -> dict[str, Any]:
    """The next-best action for *account_id* now, decided and answered, nothing written."""
    compiled = files.current()
    at = project.clock()
    with tracer().start_as_current_span("decide.api") as span:
        span.set_attribute("tenure.dry_run", True)
        with project.store.connect() as connection:
            try:
                decided = _decide_one(
                    connection, project, compiled, account_id, at, dry_run=True, actor=actor
                )
            finally:
                connection.rollback()
        span.set_attribute("tenure.status", decided.answer["status"])
    return decided.answer


@dataclass(frozen=True, slots=True)
class _Ask:
    account_id: str
    actor: str


def _decide_group(
    project: Project, files: ProjectFiles, connection: Connection, asks: Sequence[_Ask]
) -> list[_Decided | BaseException]:
    """Logged decisions for *asks*, one after another in one transaction.

    Each sees what the ones before it queued, exactly as if each had its own
    transaction in turn: the decide lock is held from the first read to the
    commit. An account's own error (no published state, a template that does
    not render) is its answer; the others stand.
    """
    decide_lock(connection)
    outcomes: list[_Decided | BaseException] = []
    for ask in asks:
        with tracer().start_as_current_span("decide.api") as span:
            span.set_attribute("tenure.dry_run", False)
            try:
                decided = _decide_one(
                    connection, project, files.current(), ask.account_id, project.clock(),
                    dry_run=False, actor=ask.actor,
                )  # fmt: skip
            except TenureError as error:
                outcomes.append(error)
                continue
            span.set_attribute("tenure.status", decided.answer["status"])
            outcomes.append(decided)
    return outcomes


def _remember_versions(outcomes: Sequence[_Decided | BaseException]) -> None:
    """Once committed, the versions decisions recorded need not be looked up again."""
    for outcome in outcomes:
        if not isinstance(outcome, _Decided) or outcome.compiled is None:
            continue
        if outcome.compiled.recorded is None:
            outcome.compiled.recorded = outcome.versions


def _masked(answer: dict[str, Any], masker: Pseudonymizer) -> dict[str, Any]:
    """The answer with identifiers pseudonymized for every role.

    The next-best action is a product's hot path, not a way to read people: an
    identifier it would name (a consent verdict's ``email:…``) is a pseudonym
    even for admin and operator keys, so no answer needs a ``pii.read`` audit
    entry. The in-app message is left as rendered: it is for the user it names.
    """
    for key in ("explanation", "why", "guardrails", "candidates"):
        answer[key] = masker.document(answer[key])
    return answer


@router.post(
    "/v1/customers/{account_id}/next-best-action",
    response_model=NextBestAction,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Decide the next-best action for an account now",
    description="Runs the batch cycle's policies, arbitration and guardrails for one "
    "account on its published state. The decision is logged (path `api`) and its "
    "action queued, deferred or sent to review — unless `dry_run`, which writes nothing. "
    "No body is needed.",
)
async def next_best_action_route(
    request: Request,
    account_id: str = _ACCOUNT,
    dry_run: bool = Query(False, description="decide and answer, but write nothing"),
    principal: Principal = Depends(require(Scope.DECIDE)),  # noqa: B008
) -> Response:
    state = request.app.state.tenure
    project: Project = state.project
    files = project_files(request)
    if not dry_run:
        decided = await _decisions(request).submit(_Ask(account_id, principal.actor))
        answer = decided.answer
    elif project.store.dialect.name == "sqlite":
        # Read-only on a local file (WAL readers never wait for the writer): a thread
        # would only add a hand-over per request, about a third of this route's time.
        answer = _dry_run(project, files, account_id, principal.actor)
    else:  # a network round trip per query: other requests go on meanwhile
        dry_run_one = functools.partial(_dry_run, project, files, account_id, principal.actor)
        answer = await anyio.to_thread.run_sync(dry_run_one, limiter=_deciders(request))
    return JsonResponse(_masked(answer, masker_of(request)))


def _decisions(request: Request) -> GroupCommitter[_Ask, _Decided]:
    """The app's committer of logged decisions, started on first use and closed with the app.

    Logged decisions are serialized by the decide lock anyway; one thread deciding
    each group of waiting requests in one transaction pays one lock turn and one
    synchronous commit per group instead of per request.
    """
    committer: GroupCommitter[_Ask, _Decided] | None = getattr(
        request.app.state, "tenure_decisions", None
    )
    if committer is None:
        state = request.app.state.tenure
        files = project_files(request)
        committer = GroupCommitter(
            state.project.store,
            functools.partial(_decide_group, state.project, files),
            name="tenure-decisions",
            most=_GROUP,
            after=_remember_versions,
        )
        request.app.state.tenure_decisions = committer
        state.on_close.append(committer.close)
    return committer


#: The most decisions one transaction takes; a long group only delays its first answers.
_GROUP = 64

#: Threads deciding dry runs at once per app on PostgreSQL. More only contend for the
#: interpreter: on 2 cores at 32 concurrent clients, 2 took p99 from ~180 ms (the
#: shared pool of 40) to ~110 ms.
_DECIDER_THREADS = 2


def _deciders(request: Request) -> anyio.CapacityLimiter:
    """The app's deciding threads; requests wait their turn for one, first come first served."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "tenure_deciders", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(_DECIDER_THREADS)
        request.app.state.tenure_deciders = limiter
    return limiter


# The decision log, the review queue and what steers decisions (policies, templates,
# journeys, models, audit) live in their own modules, mounted here: the app includes one router.
router.include_router(_review.router)
router.include_router(_manage.router)
router.include_router(_govern.router)
