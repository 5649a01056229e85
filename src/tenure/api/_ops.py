"""Operations: liveness, readiness and Prometheus metrics (no key needed; nothing personal)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.responses import Response

from tenure.api._errors import JsonResponse
from tenure.store import current_revision, head_revision

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str = Field(description="ok")


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: list[Check]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "ready": True,
                    "checks": [
                        {"name": "store", "ok": True, "detail": "sqlite reachable"},
                        {"name": "migrations", "ok": True, "detail": "at 0005"},
                    ],
                }
            ]
        }
    }


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A store is unreachable or behind"}},
    summary="The stores are reachable and migrated",
)
def readyz(request: Request) -> Response:
    state = request.app.state.tenure
    engine = state.project.store
    checks: list[Check] = []
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks.append(Check(name="store", ok=True, detail=f"{engine.dialect.name} reachable"))
        current, head = current_revision(engine), head_revision()
        checks.append(
            Check(
                name="migrations",
                ok=current == head,
                detail=f"at {current}" if current == head else
                f"at {current}, code expects {head}: run `tenure db upgrade`",
            )
        )  # fmt: skip
    except Exception as error:
        checks.append(Check(name="store", ok=False, detail=f"{type(error).__name__}: {error}"))
    lake = state.project.lake.root
    checks.append(
        Check(name="lake", ok=lake.is_dir(), detail=str(lake) if lake.is_dir() else "missing")
    )
    if state.loader_error:
        checks.append(
            Check(name="loader", ok=True, detail=f"last load failed: {state.loader_error}")
        )
    ready = all(c.ok for c in checks)
    body = Readiness(ready=ready, checks=checks)
    return JsonResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(request: Request) -> Response:
    registry = request.app.state.tenure.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
