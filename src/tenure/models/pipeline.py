"""The batch steps that turn history into scores: build, train, score.

Each takes the project and the time it runs ``as_of`` (events at or after it are
ignored), so cron, an orchestrator, a backtest or the simulator's closed loop
can run them for any date and get the same result for the same inputs.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenure.features import FeatureBuild, build_features, feature_set
from tenure.models._score import SCORES_TABLE, ScoreReport, ScoringSettings
from tenure.models._score import score as score_warehouse
from tenure.models._sentiment_step import score_event_sentiment
from tenure.models._train import ChurnTraining, TrainingSettings, train_churn
from tenure.models.registry import registry_for

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "SCORES_TABLE",
    "BuildReport",
    "ChurnTraining",
    "ScoreReport",
    "ScoringSettings",
    "TrainingSettings",
    "build",
    "score",
    "train",
]


@dataclass(frozen=True, slots=True)
class BuildReport:
    as_of: dt.datetime
    sentiment_scored: int
    features: list[FeatureBuild]
    seconds: dict[str, float] = field(default_factory=dict)


def build(project: Project, *, as_of: dt.datetime) -> BuildReport:
    """Score new text, then materialize each configured entity's features as of *as_of*."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    scored = score_event_sentiment(project.warehouse)
    seconds["sentiment"] = time.perf_counter() - started
    chosen = feature_set(project.config.features, source=str(project.config_path))
    builds = []
    for entity in project.config.features.entities:
        started = time.perf_counter()
        builds.append(build_features(project.warehouse, chosen, as_of=as_of, entity=entity))
        seconds[f"features_{entity.value}"] = time.perf_counter() - started
    return BuildReport(as_of=as_of, sentiment_scored=scored, features=builds, seconds=seconds)


def train(
    project: Project,
    *,
    as_of: dt.datetime,
    settings: TrainingSettings | None = None,
    actor: str = "system",
    promote: bool | None = None,
) -> ChurnTraining:
    """Train and register the churn, survival and retention models on history before *as_of*."""
    chosen = feature_set(project.config.features, source=str(project.config_path))
    return train_churn(
        project.warehouse,
        registry_for(project),
        chosen,
        as_of=as_of,
        settings=settings,
        actor=actor,
        promote=promote,
    )


def score(
    project: Project, *, as_of: dt.datetime, settings: ScoringSettings | None = None
) -> ScoreReport:
    """Score every customer at *as_of* with the production models into ``scores``."""
    chosen = feature_set(project.config.features, source=str(project.config_path))
    return score_warehouse(
        project.warehouse, registry_for(project), chosen, as_of=as_of, settings=settings
    )
