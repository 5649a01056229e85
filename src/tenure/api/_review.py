"""The decision log and the review queue: read decisions back, approve or reject actions.

Readers without clear PII (analyst, read-only keys) see email addresses in
explanations and recipients as pseudonyms; one decision read in clear is
written to the audit log as ``pii.read``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select
from starlette.responses import Response

from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, JsonResponse, error_responses
from tenure.api._pii import PLAIN, audit_pii_read, masker_of
from tenure.decide import approve, explain_decision, get_decision, list_reviews, reject
from tenure.errors import NotFoundError
from tenure.govern.keys import Scope
from tenure.govern.pii import Pseudonymizer
from tenure.store._tables import decisions, review_queue

__all__ = ["CandidateRule", "GuardrailVerdict", "router"]

router = APIRouter(tags=["decisions"])


# ---------------------------------------------------------------- decisions
class GuardrailVerdict(BaseModel):
    guardrail: str = Field(description="consent, urgent_ticket, frequency_cap, budget, …")
    verdict: Literal["pass", "block", "defer", "review"]
    detail: str
    until: dt.datetime | None = Field(default=None, description="when a deferral ends")


class CandidateRule(BaseModel):
    rule: str = Field(description="policy/rule")
    priority: int
    value: float | None = Field(
        description="expected value (uplift × value − cost) where an uplift estimate exists, "
        "else what the rule's value expression gave; None: ranked by priority"
    )
    value_from: Literal["uplift", "rule"] | None = Field(
        default=None, description="where the value came from: an uplift estimate or the rule"
    )
    outcome: Literal["chosen", "blocked", "not reached"]
    guardrails: list[GuardrailVerdict]


class DecisionSummary(BaseModel):
    id: str
    decided_at: dt.datetime
    path: Literal["batch", "api", "journey"] | str
    account_id: str
    status: str = Field(description="queued, deferred, review, blocked, rejected or expired")
    policy: str | None
    policy_version: int | None
    rule_id: str | None
    channel: str | None
    campaign: str | None
    summary: str = Field(description="the explanation's first line")


class DecisionPage(BaseModel):
    """Decisions, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decisions": [
                        {
                            "id": "d_5b1f0e9c2a7d4e6f8a0b1c2d",
                            "decided_at": "2024-06-01T12:00:00Z",
                            "path": "api",
                            "account_id": "acme",
                            "status": "queued",
                            "policy": "retention",
                            "policy_version": 3,
                            "rule_id": "tips-in-app",
                            "channel": "in_app",
                            "campaign": "nurture",
                            "summary": "Acme (established, churn risk 64%): queued to send.",
                        }
                    ],
                    "next_before": "2024-06-01T12:00:00+00:00~d_5b1f0e9c2a7d4e6f8a0b1c2d",
                }
            ]
        }
    )

    decisions: list[DecisionSummary]
    next_before: str | None = Field(
        description="pass as `before` for the next page (None: this was the last)"
    )


class Delivery(BaseModel):
    id: int
    channel: str
    recipient: str
    status: str
    attempts: int
    resends: int
    sent_at: dt.datetime | None
    idempotency_key: str
    last_error: str | None


_REVIEW_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "decision_id": "d_5b1f0e9c2a7d4e6f8a0b1c2d",
    "account_id": "acme",
    "policy": "retention",
    "rule_id": "winback-offer",
    "channel": "email",
    "reason": "discount 25% is above 15%",
    "status": "pending",
    "requested_at": "2024-06-01T12:00:00Z",
    "expires_at": "2024-06-04T12:00:00Z",
    "decided_by": None,
    "decided_at": None,
    "note": None,
    "explanation": "Acme (renewal, churn risk 85%): waiting for a person's review.",
}


class ReviewItem(BaseModel):
    id: int
    decision_id: str
    account_id: str
    policy: str | None
    rule_id: str | None
    channel: str | None
    reason: str
    status: Literal["pending", "approved", "rejected", "expired"] | str
    requested_at: dt.datetime
    expires_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    note: str | None
    explanation: str

    model_config = ConfigDict(json_schema_extra={"examples": [_REVIEW_EXAMPLE]})


class DecisionDetail(BaseModel):
    """One logged decision with everything behind it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "d_5b1f0e9c2a7d4e6f8a0b1c2d",
                    "cycle_id": "c_0f3a9c1e2b4d6f80",
                    "path": "api",
                    "account_id": "acme",
                    "profile_id": "p_1",
                    "decided_at": "2024-06-01T12:00:00Z",
                    "status": "queued",
                    "policy": "retention",
                    "policy_version": 3,
                    "rule_id": "tips-in-app",
                    "channel": "in_app",
                    "campaign": "nurture",
                    "action": {"channel": "in_app", "template": "tips_in_app"},
                    "value": None,
                    "models": {"churn": "churn v4"},
                    "scores": {"churn_probability": 0.64},
                    "features": {"logins_30d": 2.0},
                    "features_hash": "9c1e…",
                    "as_of": "2024-06-01T06:00:00Z",
                    "candidates": [],
                    "guardrails": [
                        {"guardrail": "consent", "verdict": "pass", "detail": "granted"}
                    ],
                    "experiment": None,
                    "explanation": "Acme (established, churn risk 64%): queued to send.",
                    "explained": "Decision d_5b1f… at 2024-06-01 12:00 UTC (api cycle c_0f3a…).",
                    "deliveries": [],
                    "review": None,
                }
            ]
        }
    )

    id: str
    cycle_id: str
    path: str
    account_id: str
    profile_id: str | None
    decided_at: dt.datetime
    status: str
    policy: str | None
    policy_version: int | None
    rule_id: str | None
    channel: str | None
    campaign: str | None
    action: dict[str, Any]
    value: float | None
    models: dict[str, Any]
    scores: dict[str, Any]
    features: dict[str, Any]
    features_hash: str
    as_of: dt.datetime
    candidates: list[CandidateRule]
    guardrails: list[GuardrailVerdict]
    experiment: dict[str, Any] | None
    explanation: str = Field(description="the explanation written when it was decided")
    explained: str = Field(description="the explanation plus what happened since")
    deliveries: list[Delivery]
    review: ReviewItem | None


def _cursor(before: str) -> tuple[dt.datetime, str | None]:
    at_text, _, after_id = before.partition("~")
    try:
        at = dt.datetime.fromisoformat(at_text.strip())
    except ValueError:
        raise ApiError(
            422, "invalid_request",
            f"before must be an ISO 8601 time or a next_before cursor, not {before!r}",
            field="query.before",
        ) from None  # fmt: skip
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at, after_id or None


@router.get(
    "/v1/decisions",
    response_model=DecisionPage,
    responses=error_responses(401, 403, 422, 429),
    summary="The decision log, newest first",
)
def decisions_route(
    request: Request,
    account_id: str | None = Query(None, min_length=1, max_length=64, pattern=PLAIN),
    limit: int = Query(50, ge=1, le=500),
    before: str | None = Query(
        None,
        max_length=120,
        pattern=PLAIN,
        description="an ISO 8601 time, or a page's `next_before`",
    ),
    principal: Principal = Depends(require(Scope.DECISIONS_READ)),  # noqa: B008
) -> Response:
    state = request.app.state.tenure
    query = select(
        decisions.c.id, decisions.c.decided_at, decisions.c.path, decisions.c.account_id,
        decisions.c.status, decisions.c.policy, decisions.c.policy_version, decisions.c.rule_id,
        decisions.c.channel, decisions.c.campaign, decisions.c.explanation,
    )  # fmt: skip
    if account_id is not None:
        query = query.where(decisions.c.account_id == account_id)
    if before is not None:
        at, after_id = _cursor(before)
        older = decisions.c.decided_at < at
        if after_id is not None:
            older = older | ((decisions.c.decided_at == at) & (decisions.c.id < after_id))
        query = query.where(older)
    query = query.order_by(decisions.c.decided_at.desc(), decisions.c.id.desc()).limit(limit)
    with state.project.store.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    masker = masker_of(request)
    _audit_list(request, principal, "GET /v1/decisions", [str(r["account_id"]) for r in rows])
    for row in rows:
        summary = row.pop("explanation").split("\n", 1)[0]
        row["summary"] = summary if principal.sees_pii else masker.text(summary)
    last = rows[-1] if len(rows) == limit else None
    page = {
        "decisions": rows,
        "next_before": f"{last['decided_at'].isoformat()}~{last['id']}" if last else None,
    }
    return JsonResponse(page)


def _audit_list(request: Request, principal: Principal, route: str, accounts: list[str]) -> None:
    """A clear read of a list is audited like any other: one entry per account shown."""
    if principal.sees_pii and accounts:
        state = request.app.state.tenure
        with state.project.store.begin() as connection:
            audit_pii_read(connection, principal, state.project.clock(), route, accounts)


def _review_row(row: dict[str, Any], principal: Principal, masker: Pseudonymizer) -> dict[str, Any]:
    item = {key: row[key] for key in ReviewItem.model_fields}
    if not principal.sees_pii:
        item["explanation"] = masker.text(item["explanation"])
        item["note"] = masker.text(item["note"]) if item["note"] else item["note"]
    return item


@router.get(
    "/v1/decisions/{decision_id}",
    response_model=DecisionDetail,
    responses=error_responses(401, 403, 404, 422, 429),
    summary="One decision: rule, evidence, guardrail verdicts, delivery and review",
)
def decision_route(
    request: Request,
    decision_id: str = Path(min_length=1, max_length=40, pattern=PLAIN),
    principal: Principal = Depends(require(Scope.DECISIONS_READ)),  # noqa: B008
) -> Response:
    state = request.app.state.tenure
    with state.project.store.connect() as connection:
        found = get_decision(connection, decision_id)
        explained = explain_decision(connection, decision_id)
        review = found["review"]
        if review is not None:
            found["review"] = _review_item(connection, int(review["id"]), principal, state)
    found["explained"] = explained
    found["action"] = found["action"] or {}
    if principal.sees_pii:
        with state.project.store.begin() as connection:
            audit_pii_read(
                connection, principal, state.project.clock(), "GET /v1/decisions/{decision_id}",
                [found["account_id"]],
            )  # fmt: skip
    else:
        masker = masker_of(request)
        found["explanation"] = masker.text(found["explanation"])
        found["explained"] = masker.text(explained)
        for send in found["deliveries"]:
            send["recipient"] = masker.text(send["recipient"])
            if send["last_error"]:
                send["last_error"] = masker.text(send["last_error"])
    return JsonResponse({key: found[key] for key in DecisionDetail.model_fields})


# -------------------------------------------------------------------- review
_REVIEW_COLUMNS = (
    decisions.c.account_id,
    decisions.c.policy,
    decisions.c.rule_id,
    decisions.c.channel,
    decisions.c.explanation,
)


def _review_item(
    connection: Connection, review_id: int, principal: Principal, state: Any
) -> dict[str, Any]:
    row = connection.execute(
        select(review_queue, *_REVIEW_COLUMNS)
        .join(decisions, decisions.c.id == review_queue.c.decision_id)
        .where(review_queue.c.id == review_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no review item {review_id} (see GET /v1/review)")
    return _review_row(dict(row._mapping), principal, Pseudonymizer(state.pseudonym_secret))


class ReviewList(BaseModel):
    """Review items, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_REVIEW_EXAMPLE]}]})

    items: list[ReviewItem]


class ReviewNote(BaseModel):
    """Why (optional); kept on the item and in the audit log."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "checked with the CSM"}]}
    )

    note: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


class ReviewDecided(BaseModel):
    """The item after the decision, and what became of its action."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "review": _REVIEW_EXAMPLE
                    | {
                        "status": "approved",
                        "decided_by": "key:k_0a1b2c3d",
                        "decided_at": "2024-06-01T15:30:00Z",
                        "note": "checked with the CSM",
                    },
                    "action_status": "queued",
                }
            ]
        }
    )

    review: ReviewItem
    action_status: Literal["queued", "deferred", "blocked", "rejected"] = Field(
        description="approved: the guardrails ran again and the action is queued, deferred "
        "or (something changed) blocked; rejected: nothing is sent"
    )


_STATUS = Literal["pending", "approved", "rejected", "expired", "all"]


@router.get(
    "/v1/review",
    response_model=ReviewList,
    responses=error_responses(401, 403, 422, 429),
    summary="The review queue: actions waiting for a person's approval",
)
def review_list_route(
    request: Request,
    status: _STATUS = Query("pending"),  # noqa: B008
    principal: Principal = Depends(require(Scope.DECISIONS_READ)),  # noqa: B008
) -> Response:
    state = request.app.state.tenure
    with state.project.store.connect() as connection:
        rows = list_reviews(connection, status=None if status == "all" else status)
    masker = masker_of(request)
    _audit_list(request, principal, "GET /v1/review", [str(r["account_id"]) for r in rows])
    return JsonResponse({"items": [_review_row(row, principal, masker) for row in rows]})


_REVIEW_ID = Path(ge=1, le=2**53, description="The review item's id")


def _decided(
    request: Request, review_id: int, principal: Principal, action_status: str
) -> Response:
    state = request.app.state.tenure
    with state.project.store.connect() as connection:
        item = _review_item(connection, review_id, principal, state)
    return JsonResponse({"review": item, "action_status": action_status})


@router.post(
    "/v1/review/{review_id}/approve",
    response_model=ReviewDecided,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Approve: the guardrails run again now, and the action is queued",
)
def approve_route(
    request: Request,
    review_id: int = _REVIEW_ID,
    body: ReviewNote | None = Body(None),  # noqa: B008
    principal: Principal = Depends(require(Scope.REVIEW)),  # noqa: B008
) -> Response:
    project = request.app.state.tenure.project
    note = body.note if body is not None else ""
    status = approve(project, review_id, actor=principal.actor, note=note)
    return _decided(request, review_id, principal, status)


@router.post(
    "/v1/review/{review_id}/reject",
    response_model=ReviewDecided,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Reject: nothing is sent",
)
def reject_route(
    request: Request,
    review_id: int = _REVIEW_ID,
    body: ReviewNote | None = Body(None),  # noqa: B008
    principal: Principal = Depends(require(Scope.REVIEW)),  # noqa: B008
) -> Response:
    project = request.app.state.tenure.project
    reject(project, review_id, actor=principal.actor, note=body.note if body else "")
    return _decided(request, review_id, principal, "rejected")
