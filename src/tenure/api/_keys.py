"""API keys over the API (admin only): create, list, rotate, revoke.

The same operations as ``tenure keys …``, audited with the calling key as the
actor. A key revoked or rotated here is forgotten by this process's key cache
at once; other server processes stop accepting it within ``key_cache_seconds``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, error_responses
from tenure.govern.keys import (
    ApiKey,
    ApiKeyError,
    NewKey,
    Role,
    Scope,
    create_key,
    list_keys,
    revoke_key,
    rotate_key,
)

__all__ = ["router"]

router = APIRouter(tags=["keys"])

_KEY_ID = Path(pattern=r"^[0-9a-f]{12}$", description="the key's public id")
_EXAMPLE: dict[str, Any] = {
    "id": "3f9c1a7e0b2d",
    "name": "web app",
    "role": "ingest",
    "created_at": "2026-11-22T10:00:00Z",
    "created_by": "cli",
    "expires_at": None,
    "revoked_at": None,
    "rotated_to": None,
    "last_used_at": "2026-11-22T10:05:00Z",
    "active": True,
}


class KeyInfo(BaseModel):
    """A key as lists show it: never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    id: str
    name: str
    role: Role
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rotated_to: str | None
    last_used_at: dt.datetime | None
    active: bool


class KeyList(BaseModel):
    keys: list[KeyInfo]


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "web app", "role": "ingest"}]},
    )

    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    role: Role
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_hours": 24}]})

    grace_hours: float = Field(default=24.0, ge=0, le=24 * 90)


class CreatedKey(BaseModel):
    """A new key. ``key`` is the whole key, shown this once: only its hash is stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"key": "tnr_3f9c1a7e0b2d_Zk…", "info": _EXAMPLE, "replaces": None}]
        }
    )

    key: str
    info: KeyInfo
    replaces: str | None = None


def _info(key: ApiKey, at: dt.datetime) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        name=key.name,
        role=key.role,
        created_at=key.created_at,
        created_by=key.created_by,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        rotated_to=key.rotated_to,
        last_used_at=key.last_used_at,
        active=key.active(at),
    )


def _created(new: NewKey, at: dt.datetime, replaces: str | None = None) -> CreatedKey:
    return CreatedKey(key=new.secret, info=_info(new.key, at), replaces=replaces)


@router.get(
    "/v1/keys",
    response_model=KeyList,
    responses=error_responses(401, 403, 429),
    summary="The API keys, their roles and state (never their secrets)",
)
def keys_route(
    request: Request,
    _: Principal = Depends(require(Scope.KEYS)),  # noqa: B008
) -> KeyList:
    project = request.app.state.tenure.project
    at = project.clock()
    with project.store.connect() as connection:
        return KeyList(keys=[_info(k, at) for k in list_keys(connection)])


@router.post(
    "/v1/keys",
    response_model=CreatedKey,
    status_code=201,
    responses=error_responses(401, 403, 422, 429),
    summary="Create a key (its secret is in this answer only)",
)
def create_key_route(
    request: Request,
    body: NewKeyRequest,
    principal: Principal = Depends(require(Scope.KEYS)),  # noqa: B008
) -> CreatedKey:
    project = request.app.state.tenure.project
    at = project.clock()
    expires = at + dt.timedelta(days=body.expires_days) if body.expires_days else None
    with project.store.begin() as connection:
        new = create_key(
            connection,
            name=body.name,
            role=body.role,
            at=at,
            actor=principal.actor,
            expires_at=expires,
        )
    return _created(new, at)


@router.post(
    "/v1/keys/{key_id}/rotate",
    response_model=CreatedKey,
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="Replace a key: a new one with its role; the old one works for the grace period",
)
def rotate_key_route(
    request: Request,
    key_id: str = _KEY_ID,
    body: RotateRequest | None = None,
    principal: Principal = Depends(require(Scope.KEYS)),  # noqa: B008
) -> CreatedKey:
    state = request.app.state.tenure
    at = state.project.clock()
    grace = dt.timedelta(hours=(body or RotateRequest()).grace_hours)
    try:
        with state.project.store.begin() as connection:
            new = rotate_key(connection, key_id, at=at, actor=principal.actor, grace=grace)
    except ApiKeyError as error:
        raise ApiError(409, "conflict", str(error), field="path.key_id") from None
    state.keys.forget(key_id)  # its expiry changed: look it up again
    return _created(new, at, replaces=key_id)


@router.post(
    "/v1/keys/{key_id}/revoke",
    response_model=KeyInfo,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    summary="End a key now",
)
def revoke_key_route(
    request: Request,
    key_id: str = _KEY_ID,
    principal: Principal = Depends(require(Scope.KEYS)),  # noqa: B008
) -> KeyInfo:
    state = request.app.state.tenure
    at = state.project.clock()
    try:
        with state.project.store.begin() as connection:
            revoked = revoke_key(connection, key_id, at=at, actor=principal.actor)
    except ApiKeyError as error:
        raise ApiError(409, "conflict", str(error), field="path.key_id") from None
    state.keys.forget(key_id)
    return _info(revoked, at)
