"""Governance: model versions, their promotion and rollback, and the audit log.

Promoting and rolling back goes through the model registry, which writes each
change to the tamper-evident audit log with the calling key as its actor.
Nothing here loads a model artifact or opens the warehouse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, JsonResponse, error_responses
from tenure.api._pii import PLAIN
from tenure.errors import ModelError
from tenure.govern.keys import Scope
from tenure.models.registry import ModelStatus, ModelVersion, registry_for
from tenure.store import read_audit, verify_audit_chain

__all__ = ["router"]

router = APIRouter()

_READ_ERRORS = error_responses(401, 403, 422, 429)


# ------------------------------------------------------------------- models
class ModelInfo(BaseModel):
    name: str
    version: int
    status: ModelStatus
    created_at: dt.datetime
    created_by: str
    description: str
    training_start: dt.datetime | None
    training_end: dt.datetime | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    feature_hashes: dict[str, str]
    artifact_hash: str
    artifact_bytes: int
    promoted_at: dt.datetime | None
    retired_at: dt.datetime | None


_MODEL_EXAMPLE: dict[str, Any] = {
    "name": "churn",
    "version": 4,
    "status": "production",
    "created_at": "2024-05-30T02:00:00Z",
    "created_by": "tenure train",
    "description": "LightGBM churn, 90-day horizon",
    "training_start": "2023-05-30T00:00:00Z",
    "training_end": "2024-05-30T00:00:00Z",
    "metrics": {"auc": 0.83, "brier": 0.11},
    "params": {"n_estimators": 200},
    "feature_hashes": {"logins_30d": "2c6b…"},
    "artifact_hash": "b7e1…",
    "artifact_bytes": 482113,
    "promoted_at": "2024-05-31T09:00:00Z",
    "retired_at": None,
}
ModelInfo.model_config["json_schema_extra"] = {"examples": [_MODEL_EXAMPLE]}


class ModelList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"models": [_MODEL_EXAMPLE]}]})

    models: list[ModelInfo]


class Promotion(BaseModel):
    """Which version to promote, and to what."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"version": 4, "to": "production"}]}
    )

    version: int = Field(ge=1, le=2**31 - 1)
    to: Literal["production", "shadow"] = "production"


def _model(version: ModelVersion) -> dict[str, Any]:
    return {key: getattr(version, key) for key in ModelInfo.model_fields}


_MODEL_NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="e.g. churn")


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=_READ_ERRORS,
    tags=["models"],
    summary="Every registered model version and its status",
)
def models_route(
    request: Request,
    name: str | None = Query(None, min_length=1, max_length=100, pattern=PLAIN),
    _: Principal = Depends(require(Scope.MODELS_READ)),  # noqa: B008
) -> Response:
    registry = registry_for(request.app.state.tenure.project)
    return JsonResponse({"models": [_model(v) for v in registry.list(name)]})


@router.post(
    "/v1/models/{name}/promote",
    response_model=ModelInfo,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    tags=["models"],
    summary="Promote a version to production (retiring the one serving) or shadow",
    description="Admin keys only. Audited with the key as the actor.",
)
def promote_route(
    request: Request,
    body: Promotion,
    name: str = _MODEL_NAME,
    principal: Principal = Depends(require(Scope.MODELS_WRITE)),  # noqa: B008
) -> Response:
    registry = registry_for(request.app.state.tenure.project)
    try:
        promoted = registry.promote(name, body.version, to=body.to, actor=principal.actor)
    except ModelError as error:
        raise ApiError(409, "conflict", str(error), field="body.version") from None
    return JsonResponse(_model(promoted))


@router.post(
    "/v1/models/{name}/rollback",
    response_model=ModelInfo,
    responses=error_responses(401, 403, 409, 422, 429),
    tags=["models"],
    summary="Retire the production version and restore the one it replaced",
    description="Admin keys only. Audited with the key as the actor. Answers the version "
    "now in production.",
)
def rollback_route(
    request: Request,
    name: str = _MODEL_NAME,
    principal: Principal = Depends(require(Scope.MODELS_WRITE)),  # noqa: B008
) -> Response:
    registry = registry_for(request.app.state.tenure.project)
    try:
        restored = registry.rollback(name, actor=principal.actor)
    except ModelError as error:
        raise ApiError(409, "conflict", str(error), field="path.name") from None
    return JsonResponse(_model(restored))


# -------------------------------------------------------------------- audit
class AuditEntryOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str = Field(description="who: key:<id>, a CLI user, or tenure")
    action: str
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """Audit entries, newest first, and whether the whole hash chain holds."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entries": [
                        {
                            "id": 12,
                            "at": "2024-06-01T12:00:00Z",
                            "actor": "key:k_0a1b2c3d",
                            "action": "model.promote",
                            "target": "churn v4",
                            "detail": {"from": "candidate", "to": "production"},
                            "prev_hash": "3b9d…",
                            "hash": "c01f…",
                        }
                    ],
                    "chain_intact": True,
                    "first_broken_id": None,
                }
            ]
        }
    )

    entries: list[AuditEntryOut]
    chain_intact: bool = Field(description="every entry's hash covers it and its predecessor")
    first_broken_id: int | None = Field(description="the first entry whose hash does not hold")


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    responses=_READ_ERRORS,
    tags=["audit"],
    summary="The tamper-evident audit log, and whether its hash chain verifies",
)
def audit_route(
    request: Request,
    action: str | None = Query(
        None, min_length=1, max_length=100, pattern=PLAIN, description="e.g. model.promote"
    ),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require(Scope.AUDIT_READ)),  # noqa: B008
) -> Response:
    with request.app.state.tenure.project.store.connect() as connection:
        entries = read_audit(connection, action=action)
        broken = verify_audit_chain(connection)
    shown = [dataclasses.asdict(e) for e in reversed(entries[-limit:])]
    return JsonResponse(
        {"entries": shown, "chain_intact": broken is None, "first_broken_id": broken}
    )
