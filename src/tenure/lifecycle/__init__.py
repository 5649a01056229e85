"""Lifecycle stages: where each account is, how it got there, and the stage KPIs.

:func:`stage_history` derives every account's stays (prospect, opportunity,
onboarding, established, renewal, mature, churned, and the exits unqualified and
lost) from its events before an ``as_of`` time as one Ibis expression;
:func:`build_stages` materializes them; :func:`stage_report` summarizes the funnel.
"""

from tenure.lifecycle._history import (
    HISTORY_TABLE,
    STAGES_TABLE,
    StageBuild,
    build_stages,
    current_stages,
    stage_history,
)
from tenure.lifecycle._kpis import (
    LeadKPIs,
    OnboardingKPIs,
    RetentionKPIs,
    SalesKPIs,
    Unavailable,
)
from tenure.lifecycle._report import StageReport, StageStats, Transition, stage_report
from tenure.lifecycle._stages import CUSTOMER_STAGES, FUNNEL_NEXT, PRECEDENCE, Stage

__all__ = [
    "CUSTOMER_STAGES",
    "FUNNEL_NEXT",
    "HISTORY_TABLE",
    "PRECEDENCE",
    "STAGES_TABLE",
    "LeadKPIs",
    "OnboardingKPIs",
    "RetentionKPIs",
    "SalesKPIs",
    "Stage",
    "StageBuild",
    "StageReport",
    "StageStats",
    "Transition",
    "Unavailable",
    "build_stages",
    "current_stages",
    "stage_history",
    "stage_report",
]
