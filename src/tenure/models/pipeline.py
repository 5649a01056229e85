"""The batch steps that turn history into scores: build, train, score.

Each takes the project and the time it runs ``as_of`` (events at or after it are
ignored), so cron, an orchestrator, a backtest or the simulator's closed loop
can run them for any date and get the same result for the same inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from tenure.features import FeatureBuild, FeatureEntity, build_features, project_features
from tenure.lifecycle import HISTORY_TABLE, StageBuild, build_stages
from tenure.models._funnel import score_funnel, train_funnel
from tenure.models._score import SCORES_TABLE, ScoreReport, ScoringSettings
from tenure.models._score import score as score_warehouse
from tenure.models._sentiment_step import score_event_sentiment
from tenure.models._train import ChurnTraining, TrainingSettings, train_churn
from tenure.models.health import HealthBuild, build_health
from tenure.models.registry import registry_for

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "SCORES_TABLE",
    "AtRisk",
    "BuildReport",
    "ChurnTraining",
    "ScoreReport",
    "ScoringSettings",
    "TrainingSettings",
    "at_risk",
    "build",
    "score",
    "train",
]


@dataclass(frozen=True, slots=True)
class BuildReport:
    as_of: dt.datetime
    sentiment_scored: int
    features: list[FeatureBuild]
    stages: StageBuild
    health: HealthBuild
    seconds: dict[str, float] = field(default_factory=dict)


def build(project: Project, *, as_of: dt.datetime) -> BuildReport:
    """Score new text; materialize features, lifecycle stages and health as of *as_of*."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    scored = score_event_sentiment(project.warehouse)
    seconds["sentiment"] = time.perf_counter() - started
    chosen = project_features(project)
    builds = []
    for entity in project.config.features.entities:
        started = time.perf_counter()
        builds.append(build_features(project.warehouse, chosen, as_of=as_of, entity=entity))
        seconds[f"features_{entity.value}"] = time.perf_counter() - started
    config = project.config
    started = time.perf_counter()
    stages = build_stages(project.warehouse, config.lifecycle, as_of=as_of)
    seconds["stages"] = time.perf_counter() - started
    started = time.perf_counter()
    health = build_health(
        project.warehouse,
        chosen,
        config.health,
        as_of=as_of,
        lifecycle=config.lifecycle,
        history=project.warehouse.table(HISTORY_TABLE),
        current=_account_features(project, builds),
    )
    seconds["health"] = time.perf_counter() - started
    return BuildReport(
        as_of=as_of,
        sentiment_scored=scored,
        features=builds,
        stages=stages,
        health=health,
        seconds=seconds,
    )


def _account_features(project: Project, builds: list[FeatureBuild]) -> pd.DataFrame | None:
    """The account features this build just materialized, for health to reuse."""
    for item in builds:
        if item.entity is FeatureEntity.ACCOUNT:
            frame: pd.DataFrame = project.warehouse.backend.to_pyarrow(
                project.warehouse.table(item.table)
            ).to_pandas()
            return frame
    return None


def train(
    project: Project,
    *,
    as_of: dt.datetime,
    settings: TrainingSettings | None = None,
    actor: str = "system",
    promote: bool | None = None,
) -> ChurnTraining:
    """Train and register every model on history before *as_of*.

    Churn, survival, retention, expansion, promoter, CLV and next-product models
    (:mod:`tenure.models._train`), then the funnel's opportunity-win and
    lead-conversion models (:mod:`tenure.models._funnel`); one report for all.
    """
    chosen = project_features(project)
    settings = settings or TrainingSettings()
    registry = registry_for(project)
    churn = train_churn(
        project.warehouse,
        registry,
        chosen,
        as_of=as_of,
        settings=settings,
        actor=actor,
        promote=promote,
    )
    started = time.perf_counter()
    funnel = train_funnel(
        project.warehouse,
        registry,
        as_of=as_of,
        history_months=settings.history_months,
        validation_months=settings.validation_months,
        actor=actor,
        promote=promote,
        random_state=settings.random_state,
    )
    return dataclasses.replace(
        churn,
        versions={**churn.versions, **funnel.versions},
        promoted=[*churn.promoted, *funnel.promoted],
        skipped={**churn.skipped, **funnel.skipped},
        seconds={**churn.seconds, "funnel": time.perf_counter() - started},
    )


def score(
    project: Project, *, as_of: dt.datetime, settings: ScoringSettings | None = None
) -> ScoreReport:
    """Score every customer (``scores``), open opportunity and lead at *as_of*."""
    chosen = project_features(project)
    registry = registry_for(project)
    report = score_warehouse(project.warehouse, registry, chosen, as_of=as_of, settings=settings)
    funnel = score_funnel(project.warehouse, registry, as_of=as_of)
    return dataclasses.replace(
        report,
        versions={**report.versions, **funnel.versions},
        seconds={**report.seconds, "funnel": sum(funnel.seconds.values())},
    )


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A scored customer, as the demo and reports show one."""

    account_id: str
    name: str | None
    churn_probability: float
    renewal_probability: float | None
    mrr: float | None
    clv: float | None
    reasons: list[str]


def at_risk(project: Project, count: int = 10) -> list[AtRisk]:
    """The *count* customers of the latest scoring most likely to churn."""
    warehouse = project.warehouse
    scores = warehouse.table(SCORES_TABLE)
    accounts = warehouse.table("accounts").select("account_id", "name")
    joined = scores.left_join(accounts, "account_id")
    top = joined.order_by([joined.churn_probability.desc(), joined.account_id]).limit(count)
    rows = warehouse.backend.to_pyarrow(top).to_pylist()
    return [
        AtRisk(
            account_id=row["account_id"],
            name=row["name"],
            churn_probability=row["churn_probability"],
            renewal_probability=row["renewal_probability"],
            mrr=row["mrr"],
            clv=row["clv"],
            reasons=[r["text"] for r in json.loads(row["churn_reasons"])],
        )
        for row in rows
    ]
