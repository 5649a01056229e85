"""Reading customers: profiles, lookups by identifier, timelines.

Profiles come from ``customer_state``, which the batch steps publish into the
operational store; timelines from the Parquet lake, read-only, through a
private in-memory DuckDB connection per request (never the warehouse file).
Keys whose role must not see PII get pseudonyms (:mod:`tenure.govern.pii`);
every answer that shows PII in clear is written to the audit log as
``pii.read`` with the key as actor.

The in-app feed, consent, erasure and unsubscribe routes live in their own
modules and are mounted here, so the app includes one router.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from tenure.api import _consent, _feed
from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, error_responses
from tenure.api._pii import IDENTIFIER_PATTERN, PLAIN, audit_pii_read, masker_of
from tenure.decide._state import CustomerState, load_states
from tenure.errors import NotFoundError
from tenure.govern.erasure import holders, normalize_identifier
from tenure.govern.keys import Scope
from tenure.govern.pii import Pseudonymizer
from tenure.warehouse import EVENT_PARTITION

__all__ = ["router"]

router = APIRouter(tags=["customers"])

ACCOUNT_ID = Annotated[
    str,
    PathParam(min_length=1, max_length=64, pattern=PLAIN, description="the account's id"),
]
IDENTIFIER = Annotated[
    str,
    Query(
        min_length=3,
        max_length=320,
        pattern=IDENTIFIER_PATTERN,
        description="a typed identifier, e.g. `email:dee@acme.com` or `user_id:u1`",
    ),
]


# ------------------------------------------------------------------ models
class Identity(BaseModel):
    """A contact of the account and the typed identifiers it is known by."""

    profile_id: str
    email: str | None = None
    user_id: str | None = None
    name: str | None = None
    first_name: str | None = None
    timezone: str | None = None
    identifiers: list[str] = Field(description="email:…, user_id:…, profile:…")


class Health(BaseModel):
    score: float | None = Field(default=None, description="0–100")
    band: str | None = Field(default=None, description="e.g. green, yellow, red")
    change_30d: float | None = Field(default=None, description="points gained in 30 days")
    movers: str | None = Field(default=None, description="the components that moved it most")
    components: dict[str, Any] = Field(
        default_factory=dict, description="the components' own scores, where published"
    )


class ChurnRisk(BaseModel):
    probability: float | None = Field(default=None, description="of churning in the horizon")
    reasons: list[dict[str, Any]] = Field(
        default_factory=list, description="reason codes (feature, contribution, text)"
    )


class Value(BaseModel):
    clv: float | None = Field(default=None, description="customer lifetime value")
    mrr: float | None = None
    clv_transactional_12m: float | None = None
    probability_alive: float | None = None
    expected_purchases_12m: float | None = None


_PROFILE_EXAMPLE: dict[str, Any] = {
    "account_id": "acme",
    "name": "Acme Inc",
    "stage": "established",
    "days_in_stage": 41.0,
    "as_of": "2024-06-01T12:00:00Z",
    "traits": {"plan": "pro", "industry": "software"},
    "identities": [
        {
            "profile_id": "p_4f1c",
            "email": "dee@acme.com",
            "user_id": "u1",
            "name": "Dee Dee",
            "first_name": "Dee",
            "timezone": "Europe/Berlin",
            "identifiers": ["email:dee@acme.com", "user_id:u1", "profile:p_4f1c"],
        }
    ],
    "health": {"score": 42.0, "band": "yellow", "change_30d": -8.5, "components": {}},
    "churn": {
        "probability": 0.62,
        "reasons": [{"feature": "logins_30d", "text": "only 3 logins in 30 days"}],
    },
    "value": {"clv": 2400.0, "mrr": 100.0},
    "propensities": {"expansion_probability": 0.12, "renewal_probability": 0.55},
    "scores": {"churn_probability": 0.62, "clv": 2400.0, "mrr": 100.0},
    "features": {"logins_30d": 3.0},
    "models": {"churn": "churn v3"},
    "uplift": {},
    "pseudonymized": False,
}


class Profile(BaseModel):
    """What tenure knows about a customer account, as of the last publish."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PROFILE_EXAMPLE]})

    account_id: str
    name: str | None = None
    stage: str | None = None
    days_in_stage: float | None = None
    as_of: dt.datetime = Field(description="the time the published state describes")
    traits: dict[str, Any]
    identities: list[Identity]
    health: Health
    churn: ChurnRisk
    value: Value
    propensities: dict[str, float] = Field(description="probabilities other than churn")
    scores: dict[str, float] = Field(description="every published score")
    features: dict[str, float]
    models: dict[str, str] = Field(description="model → version used for the scores")
    uplift: dict[str, float]
    pseudonymized: bool = Field(description="whether personal values are pseudonyms")


class Match(BaseModel):
    account_id: str
    account_name: str | None = None
    stage: str | None = None
    contact: Identity


class Matches(BaseModel):
    """The contacts holding an identifier, with their accounts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "identifier": "email:dee@acme.com",
                    "matches": [
                        {
                            "account_id": "acme",
                            "account_name": "Acme Inc",
                            "stage": "established",
                            "contact": _PROFILE_EXAMPLE["identities"][0],
                        }
                    ],
                    "pseudonymized": False,
                }
            ]
        }
    )

    identifier: str
    matches: list[Match]
    pseudonymized: bool


class TimelineEvent(BaseModel):
    message_id: str
    type: str = Field(description="identify, track, group, page, screen or alias")
    event: str | None = Field(default=None, description="track event name, or page/screen name")
    timestamp: dt.datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    group_id: str | None = None
    email: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(description="where it came from: http, segment, stripe, …")


class Timeline(BaseModel):
    """The account's events, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acme",
                    "events": [
                        {
                            "message_id": "m-17",
                            "type": "track",
                            "event": "Report Exported",
                            "timestamp": "2024-05-30T10:00:00Z",
                            "user_id": "u1",
                            "anonymous_id": None,
                            "group_id": "acme",
                            "email": None,
                            "properties": {"format": "csv"},
                            "traits": {},
                            "context": {"groupId": "acme"},
                            "source": "http",
                        }
                    ],
                    "next_before": "WzE3MTcwNjMyMDAwMDAwMDAsIm0tMTciXQ",
                    "pseudonymized": False,
                }
            ]
        }
    )

    account_id: str
    events: list[TimelineEvent]
    next_before: str | None = Field(
        default=None, description="pass as `before` for the next page; null on the last page"
    )
    pseudonymized: bool


# ---------------------------------------------------------------- profiles
_CLV_KEYS = tuple(Value.model_fields)


def _profile(state: CustomerState) -> dict[str, Any]:
    health = dict(state.health)
    scores = dict(state.scores)
    known_health = {"score", "band", "change", "movers"}
    return {
        "account_id": state.account_id,
        "name": state.name,
        "stage": state.stage,
        "days_in_stage": state.days_in_stage,
        "as_of": state.as_of,
        "traits": dict(state.traits),
        "identities": [c.as_dict() for c in state.contacts],
        "health": {
            "score": health.get("score"),
            "band": health.get("band"),
            "change_30d": health.get("change"),
            "movers": health.get("movers"),
            "components": {k: v for k, v in health.items() if k not in known_health},
        },
        "churn": {"probability": scores.get("churn_probability"), "reasons": list(state.reasons)},
        "value": {k: scores.get(k) for k in _CLV_KEYS},
        "propensities": {
            k: v
            for k, v in scores.items()
            if k.endswith("_probability") and k != "churn_probability"
        },
        "scores": scores,
        "features": dict(state.features),
        "models": dict(state.models),
        "uplift": dict(state.uplift),
    }


_PERSONAL_PARTS = ("traits", "identities", "churn")


def _shown(
    document: dict[str, Any], principal: Principal, masker: Pseudonymizer
) -> tuple[dict[str, Any], bool]:
    """The document as *principal* may see it, and whether it shows PII in clear."""
    masked = {
        **document,
        **{part: masker.document(document[part]) for part in _PERSONAL_PARTS if part in document},
    }
    has_pii = masked != document
    if principal.sees_pii:
        return {**document, "pseudonymized": False}, has_pii
    return {**masked, "pseudonymized": True}, False


def _state(connection: Connection, account_id: str) -> CustomerState:
    states = load_states(connection, [account_id])
    if not states:
        raise NotFoundError(
            f"no published customer {account_id!r}",
            hint="customers appear once `tenure run` (or `tenure publish`) has published them",
        )
    return states[0]


@router.get(
    "/v1/customers/{account_id}",
    response_model=Profile,
    responses=error_responses(401, 403, 404, 422, 429),
    summary="A customer's profile: stage, health, churn risk and reasons, CLV, contacts",
)
def customer_profile(
    request: Request,
    account_id: ACCOUNT_ID,
    principal: Principal = Depends(require(Scope.PROFILES_READ)),  # noqa: B008
) -> dict[str, Any]:
    project = request.app.state.tenure.project
    with project.store.connect() as connection:
        state = _state(connection, account_id)
    shown, clear = _shown(_profile(state), principal, masker_of(request))
    if clear:
        with project.store.begin() as connection:
            audit_pii_read(
                connection, principal, project.clock(), "GET /v1/customers/{account_id}",
                [account_id],
            )  # fmt: skip
    return shown


@router.get(
    "/v1/profiles",
    response_model=Matches,
    responses=error_responses(401, 403, 422, 429),
    summary="Find the accounts and contacts holding a typed identifier",
)
def find_profiles(
    request: Request,
    identifier: IDENTIFIER,
    principal: Principal = Depends(require(Scope.PROFILES_READ)),  # noqa: B008
) -> dict[str, Any]:
    project = request.app.state.tenure.project
    try:
        wanted = normalize_identifier(identifier)
    except ValueError as error:
        raise ApiError(422, "invalid_request", str(error), field="query.identifier") from None
    with project.store.connect() as connection:
        found = holders(connection, wanted)
    masker = masker_of(request)
    matches = []
    clear_accounts = []
    for holder in found:
        contact = holder.contact.as_dict()
        masked = masker.document(contact)
        if principal.sees_pii and masked != contact:
            clear_accounts.append(holder.state.account_id)
        matches.append(
            {
                "account_id": holder.state.account_id,
                "account_name": holder.state.name,
                "stage": holder.state.stage,
                "contact": contact if principal.sees_pii else masked,
            }
        )
    if clear_accounts:
        with project.store.begin() as connection:
            audit_pii_read(
                connection, principal, project.clock(), "GET /v1/profiles", clear_accounts
            )
    return {
        "identifier": wanted if principal.sees_pii else masker.identifier(wanted),
        "matches": matches,
        "pseudonymized": not principal.sees_pii,
    }


# ---------------------------------------------------------------- timeline
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COLUMNS = (
    "message_id, type, event, user_id, anonymous_id, group_id, email, "
    "epoch_us(timestamp) AS ts, properties, traits, context, source"
)


def _cursor(ts: int, message_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, message_id])).decode().rstrip("=")


#: The microseconds a Python datetime can hold (years 1 to 9999), less a day either side.
_TS_RANGE = (-62_135_510_400_000_000, 253_402_214_400_000_000)


def _parse_before(before: str) -> tuple[int, str | None]:
    """(microseconds since the epoch, message id or None) from a cursor or an ISO 8601 time."""
    ts, message_id = _decode_before(before)
    if not _TS_RANGE[0] <= ts <= _TS_RANGE[1]:
        raise ApiError(
            422, "invalid_request", f"{before!r} is out of the range of times",
            field="query.before",
        )  # fmt: skip
    return ts, message_id


def _decode_before(before: str) -> tuple[int, str | None]:
    try:
        raw = base64.urlsafe_b64decode(before + "=" * (-len(before) % 4))
        value = orjson.loads(raw)
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], int)
            and isinstance(value[1], str)
        ):
            return value[0], value[1]
    except (binascii.Error, ValueError):
        pass
    try:
        at = dt.datetime.fromisoformat(before.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, "invalid_request",
            f"{before!r} is neither a next_before cursor nor an ISO 8601 time",
            field="query.before",
        ) from None  # fmt: skip
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds, None


def _months(events_dir: Path, until: dt.date | None) -> list[list[str]]:
    """The lake's event files, one list per event month, newest month first."""
    months = []
    for folder in sorted(events_dir.glob(f"{EVENT_PARTITION}=*"), reverse=True):
        try:
            first = dt.date.fromisoformat(folder.name.partition("=")[2] + "-01")
        except ValueError:
            continue
        if until is not None and first > until:
            continue
        files = sorted(str(f) for f in folder.glob("*.parquet"))
        if files:
            months.append(files)
    return months


def _read_events(
    events_dir: Path,
    *,
    account_id: str,
    user_ids: list[str],
    limit: int,
    before: tuple[int, str | None] | None,
) -> list[dict[str, Any]]:
    """Up to *limit* events of the account, newest first, older than *before*.

    Event months are read newest first in growing windows (1, 2, 4, … months),
    stopping once the page is full, so a recent page does not scan the lake.
    """
    until = None
    where = ["(group_id = $account OR list_contains($users, user_id))"]
    params: dict[str, Any] = {"account": account_id, "users": user_ids}
    if before is not None:
        ts, message_id = before
        until = (_EPOCH + dt.timedelta(microseconds=ts)).date()
        params["ts"] = ts
        if message_id is None:
            where.append("epoch_us(timestamp) < $ts")
        else:
            where.append(
                "(epoch_us(timestamp) < $ts OR (epoch_us(timestamp) = $ts AND message_id < $mid))"
            )
            params["mid"] = message_id
    months = _months(events_dir, until)
    rows: list[dict[str, Any]] = []
    con = duckdb.connect(":memory:", config={"threads": 2})
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute("SET TimeZone = 'UTC'")
        start, width = 0, 1
        while start < len(months) and len(rows) < limit:
            files = [f for month in months[start : start + width] for f in month]
            start, width = start + width, width * 2
            query = (
                f"SELECT {_COLUMNS} FROM read_parquet($files, union_by_name = true) "
                f"WHERE {' AND '.join(where)} "
                "ORDER BY timestamp DESC, message_id DESC LIMIT $limit"
            )
            cursor = con.execute(query, {**params, "files": files, "limit": limit - len(rows)})
            names = [d[0] for d in cursor.description]
            rows.extend(dict(zip(names, row, strict=True)) for row in cursor.fetchall())
    finally:
        con.close()
    return rows


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": row["message_id"],
        "type": row["type"],
        "event": row["event"],
        "timestamp": _EPOCH + dt.timedelta(microseconds=row["ts"]),
        "user_id": row["user_id"],
        "anonymous_id": row["anonymous_id"],
        "group_id": row["group_id"],
        "email": row["email"],
        "properties": _json_object(row["properties"]),
        "traits": _json_object(row["traits"]),
        "context": _json_object(row["context"]),
        "source": row["source"],
    }


@router.get(
    "/v1/customers/{account_id}/timeline",
    response_model=Timeline,
    responses=error_responses(401, 403, 404, 422, 429),
    summary="The account's events from the lake, newest first",
    description=(
        "Events whose group is the account, or whose user is one of its published contacts, "
        "as loaded into the lake (events still in the inbox appear after the next load). "
        "Page with `before`: the `next_before` of the previous page, or an ISO 8601 time."
    ),
)
def customer_timeline(
    request: Request,
    account_id: ACCOUNT_ID,
    limit: int = Query(50, ge=1, le=500, description="events per page"),
    before: str | None = Query(
        None,
        min_length=1,
        max_length=500,
        pattern=PLAIN,
        description="a `next_before` cursor, or an ISO 8601 time (events strictly older)",
    ),
    principal: Principal = Depends(require(Scope.PROFILES_READ)),  # noqa: B008
) -> dict[str, Any]:
    project = request.app.state.tenure.project
    cursor = _parse_before(before) if before is not None else None
    with project.store.connect() as connection:
        state = _state(connection, account_id)
    user_ids = sorted(
        {c.user_id for c in state.contacts if c.user_id}
        | {
            i.partition(":")[2]
            for c in state.contacts
            for i in c.identifiers
            if i.startswith("user_id:")
        }
    )
    try:
        rows = _read_events(
            project.lake.events_dir,
            account_id=account_id,
            user_ids=user_ids,
            limit=limit + 1,
            before=cursor,
        )
    except duckdb.IOException:
        # a crash leftover was removed by the loader while we listed the files: once more
        rows = _read_events(
            project.lake.events_dir,
            account_id=account_id,
            user_ids=user_ids,
            limit=limit + 1,
            before=cursor,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    events = [_event(row) for row in rows]
    masker = masker_of(request)
    masked = [_masked_event(event, masker) for event in events]
    if principal.sees_pii and masked != events:
        with project.store.begin() as connection:
            audit_pii_read(
                connection, principal, project.clock(), "GET /v1/customers/{account_id}/timeline",
                [account_id],
            )  # fmt: skip
    last = rows[-1] if more else None
    return {
        "account_id": account_id,
        "events": events if principal.sees_pii else masked,
        "next_before": _cursor(last["ts"], last["message_id"]) if last else None,
        "pseudonymized": not principal.sees_pii,
    }


def _masked_event(event: dict[str, Any], masker: Pseudonymizer) -> dict[str, Any]:
    return {
        **event,
        "user_id": masker.text(event["user_id"]) if event["user_id"] else None,
        "anonymous_id": masker.text(event["anonymous_id"]) if event["anonymous_id"] else None,
        "email": masker.value(event["email"]),
        "properties": masker.document(event["properties"]),
        "traits": masker.document(event["traits"]),
        "context": masker.document(event["context"]),
    }


for _module in (_feed, _consent):
    router.include_router(_module.router)
