"""``GET /v1/reports/experiments``: the latest holdout report, as ``tenure report
experiments`` last computed it.

The report reads outcomes from the lake through the warehouse's identity tables,
a batch-side read a request should not wait on (or lock the warehouse for); the
batch command keeps the latest one under the lake and this route serves it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tenure.api._auth import Principal, require
from tenure.api._errors import JsonResponse, error_responses
from tenure.govern.keys import Scope
from tenure.measure._report import load_saved_report

__all__ = ["router"]

router = APIRouter()

_GROUP_EXAMPLE: dict[str, Any] = {
    "group": "campaign save",
    "campaign": "save",
    "percent": 40.0,
    "customers": {"treated": 120, "held out": 80},
    "metrics": [
        {
            "metric": "retention",
            "kind": "binary",
            "arms": [
                {"arm": "held out", "n": 80, "mean": 0.7, "ci_low": 0.59, "ci_high": 0.79},
                {"arm": "treated", "n": 120, "mean": 0.9, "ci_low": 0.83, "ci_high": 0.94},
            ],
            "lifts": [{"treatment": "treated", "control": "held out", "absolute": 0.2}],
        }
    ],
    "srm": {"p_value": 0.61, "flagged": False},
    "sequential": [
        {
            "metric": "retention",
            "treatment": "treated",
            "control": "held out",
            "alpha": 0.05,
            "mixture_sd": 0.05,
            "p_value": 0.012,
            "p_adjusted": None,
            "ci_low": 0.04,
            "ci_high": 0.36,
            "significant_since": "2024-06-28",
            "looks": [{"look": "2024-06-28", "n_treatment": 96, "n_control": 64}],
        }
    ],
    "segments": None,
    "decisions": 200,
    "repeats": 0,
    "pending": 12,
    "notes": [],
}


class ExperimentsReport(BaseModel):
    """Treated against held out for every holdout group in the decision log."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2024-07-06T12:00:00+00:00",
                    "computed_at": "2024-07-06T12:00:05+00:00",
                    "window_days": 30.0,
                    "groups": [_GROUP_EXAMPLE],
                    "notes": [],
                }
            ]
        }
    )

    as_of: str = Field(description="the time the outcomes were read up to")
    computed_at: str = Field(description="when `tenure report experiments` computed it")
    window_days: float = Field(description="the attribution window after each decision")
    groups: list[dict[str, Any]] = Field(
        description=(
            "per holdout group: arms, metrics with intervals and lifts, SRM, stages, and "
            "each lift's always-valid test (`sequential`: safe to read at any time)"
        )
    )
    notes: list[str]


@router.get(
    "/v1/reports/experiments",
    response_model=ExperimentsReport,
    responses=error_responses(401, 403, 404, 429),
    tags=["reports"],
    summary="The latest holdout and experiments report (404 until one was computed)",
)
def experiments_report_route(
    request: Request,
    _: Principal = Depends(require(Scope.DECISIONS_READ)),  # noqa: B008
) -> Response:
    return JsonResponse(load_saved_report(request.app.state.tenure.project))
