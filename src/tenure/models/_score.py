"""Scoring customers as of a time with the production models (and the shadows beside them).

Every score row names the model versions that produced it. Shadow versions of
the churn model score the same customers into ``shadow_scores``; they never
reach ``scores`` (which decisions read), and their agreement with production is
reported.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tenure.errors import ModelError
from tenure.features import FeatureEntity, FeatureSet, feature_frame, features_table
from tenure.models._labels import customer_outcomes, feature_usage, purchases
from tenure.models._train import (
    BGNBD_MODEL,
    CHURN_MODEL,
    EXPANSION_MODEL,
    GAMMAGAMMA_MODEL,
    PROMOTER_MODEL,
    RECOMMENDER_MODEL,
    RETENTION_MODEL,
    SURVIVAL_MODEL,
)
from tenure.models.churn import ChurnClassifier
from tenure.models.clv import (
    BetaGeo,
    GammaGamma,
    ShiftedBetaGeometric,
    rfm_summary,
    subscription_clv,
)
from tenure.models.propensity import PropensityClassifier
from tenure.models.recommend import CoUsageRecommender
from tenure.models.registry import ModelRegistry, ModelVersion, ShadowAgreement, shadow_agreement
from tenure.models.survival import ChurnSurvival
from tenure.warehouse import Warehouse

__all__ = [
    "RECOMMENDATIONS_TABLE",
    "SCORES_TABLE",
    "SHADOW_SCORES_TABLE",
    "ScoreReport",
    "ScoringSettings",
    "score",
]

SCORES_TABLE = "scores"
SHADOW_SCORES_TABLE = "shadow_scores"
RECOMMENDATIONS_TABLE = "recommendations"
_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    reasons: int = 3
    #: Cancellations this long after a renewal date still count against it.
    renewal_grace_days: float = 30.0
    gross_margin: float = 0.8
    annual_discount_rate: float = 0.10


@dataclass(frozen=True, slots=True)
class ScoreReport:
    as_of: dt.datetime
    rows: int
    versions: dict[str, str]
    shadows: dict[str, ShadowAgreement]
    seconds: dict[str, float] = field(default_factory=dict)


def _production(registry: ModelRegistry, name: str) -> tuple[ModelVersion, Any]:
    version = registry.production(name)
    if version is None:
        raise ModelError(
            f"no production version of model {name!r}",
            hint="run `tenure train` (a first training promotes its models), "
            "or `tenure models promote`",
        )
    return version, registry.load(version)


def score(
    warehouse: Warehouse,
    registry: ModelRegistry,
    features: FeatureSet,
    *,
    as_of: dt.datetime,
    settings: ScoringSettings | None = None,
) -> ScoreReport:
    """Score every customer at *as_of*: churn risk with reasons, renewal odds, CLV."""
    settings = settings or ScoringSettings()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    churn_version, churn = _production(registry, CHURN_MODEL)
    survival_version, survival = _production(registry, SURVIVAL_MODEL)
    retention_version, retention = _production(registry, RETENTION_MODEL)
    assert isinstance(churn, ChurnClassifier)
    assert isinstance(survival, ChurnSurvival)
    assert isinstance(retention, ShiftedBetaGeometric)

    customers = customer_outcomes(warehouse, [as_of], observed_until=as_of)
    frame = _built_features(warehouse, features, as_of)
    if frame is None:
        frame = feature_frame(
            warehouse, customers[["entity_id", "cutoff"]], features, FeatureEntity.ACCOUNT
        )
    frame = customers[["entity_id", "cutoff", "started_at"]].merge(
        frame, on=["entity_id", "cutoff"], validate="one_to_one"
    )
    seconds["features"] = time.perf_counter() - started
    names = list(churn.feature_names_in_)
    X = frame[names]

    started = time.perf_counter()
    probability = churn.predict_proba(X)[:, 1] if len(frame) else np.zeros(0)

    def describe(feature: str, value: object) -> str:
        try:
            return features.get(feature).render_reason(value)
        except KeyError:
            return f"{feature} = {value}"

    reasons = churn.explain(X, top_k=settings.reasons, describe=describe) if len(frame) else []
    seconds["churn"] = time.perf_counter() - started

    started = time.perf_counter()
    # P(renew) = P(still a customer a grace period after the renewal date)
    to_renewal = (
        frame["days_to_renewal"].fillna(365.25).clip(lower=0.0).to_numpy()
        + settings.renewal_grace_days
    )
    renewal = (
        survival.conditional_survival(X, 0.0, to_renewal) if len(frame) else pd.Series(dtype=float)
    )
    months = (pd.Timestamp(as_of) - frame["started_at"]).dt.total_seconds() / 86_400.0
    renewals = np.floor(months.to_numpy() / _DAYS_PER_MONTH)
    monthly_rate = (1 + settings.annual_discount_rate) ** (1 / 12) - 1
    clv = (
        subscription_clv(
            retention,
            renewals,
            frame["mrr"].fillna(0.0).to_numpy(),
            discount_rate=monthly_rate,
            gross_margin=settings.gross_margin,
        )
        if len(frame)
        else np.zeros(0)
    )
    seconds["survival_clv"] = time.perf_counter() - started

    labels = {
        CHURN_MODEL: churn_version.label,
        SURVIVAL_MODEL: survival_version.label,
        RETENTION_MODEL: retention_version.label,
    }
    started = time.perf_counter()
    missing = np.full(len(frame), np.nan)
    propensity: dict[str, np.ndarray[Any, Any]] = {}
    for name in (EXPANSION_MODEL, PROMOTER_MODEL):
        version = registry.production(name)
        propensity[name] = missing
        if version is not None and len(frame):
            model = registry.load(version)
            assert isinstance(model, PropensityClassifier)
            propensity[name] = model.predict_proba(frame[list(model.feature_names_in_)])[:, 1]
            labels[name] = version.label
    transactional = _transactional(warehouse, registry, frame, as_of, settings, labels)
    _recommend(warehouse, registry, frame, as_of, labels)
    seconds["propensities"] = time.perf_counter() - started
    table = pa.table(
        {
            "account_id": pa.array(frame["entity_id"], pa.string()),
            "as_of": pa.array([as_of] * len(frame), pa.timestamp("us", tz="UTC")),
            "churn_probability": pa.array(probability, pa.float64()),
            "churn_reasons": pa.array(
                [json.dumps([r.as_dict() for r in row]) for row in reasons], pa.string()
            ),
            "renewal_probability": pa.array(np.asarray(renewal, dtype=float), pa.float64()),
            "clv": pa.array(np.asarray(clv, dtype=float), pa.float64()),
            "expansion_probability": pa.array(
                propensity[EXPANSION_MODEL], pa.float64(), from_pandas=True
            ),
            "promoter_probability": pa.array(
                propensity[PROMOTER_MODEL], pa.float64(), from_pandas=True
            ),
            "probability_alive": pa.array(transactional["p_alive"], pa.float64(), from_pandas=True),
            "expected_purchases_12m": pa.array(
                transactional["purchases"], pa.float64(), from_pandas=True
            ),
            "clv_transactional_12m": pa.array(transactional["clv"], pa.float64(), from_pandas=True),
            "mrr": pa.array(frame["mrr"].to_numpy(dtype=float), pa.float64(), from_pandas=True),
            "churn_model": pa.array([labels[CHURN_MODEL]] * len(frame), pa.string()),
            "survival_model": pa.array([labels[SURVIVAL_MODEL]] * len(frame), pa.string()),
            "retention_model": pa.array([labels[RETENTION_MODEL]] * len(frame), pa.string()),
            "other_models": pa.array(
                [json.dumps({k: v for k, v in labels.items() if k not in _MAIN})] * len(frame),
                pa.string(),
            ),
        }
    )
    warehouse.replace_table(SCORES_TABLE, table)
    _write_snapshot(warehouse, "scores", as_of, table)

    shadows: dict[str, ShadowAgreement] = {}
    shadow_tables = []
    for version in registry.shadows(CHURN_MODEL):
        model = registry.load(version)
        assert isinstance(model, ChurnClassifier)
        shadow_p = model.predict_proba(frame[list(model.feature_names_in_)])[:, 1]
        if len(frame) >= 2:
            shadows[version.label] = shadow_agreement(probability, shadow_p)
        shadow_tables.append(
            pa.table(
                {
                    "account_id": pa.array(frame["entity_id"], pa.string()),
                    "as_of": pa.array([as_of] * len(frame), pa.timestamp("us", tz="UTC")),
                    "churn_probability": pa.array(shadow_p, pa.float64()),
                    "churn_model": pa.array([version.label] * len(frame), pa.string()),
                }
            )
        )
    if shadow_tables:
        warehouse.replace_table(SHADOW_SCORES_TABLE, pa.concat_tables(shadow_tables))
    return ScoreReport(
        as_of=as_of, rows=len(frame), versions=labels, shadows=shadows, seconds=seconds
    )


_MAIN = (CHURN_MODEL, SURVIVAL_MODEL, RETENTION_MODEL)


def _built_features(
    warehouse: Warehouse, features: FeatureSet, as_of: dt.datetime
) -> pd.DataFrame | None:
    """The features ``tenure build`` materialized for this *as_of*, if it did.

    Reused only when the table holds exactly this as_of and the build's snapshot
    records the same definition hashes as *features*; otherwise the caller
    recomputes them.
    """
    name = features_table(FeatureEntity.ACCOUNT)
    snapshot = (
        warehouse.lake.root
        / "features"
        / FeatureEntity.ACCOUNT.value
        / f"as_of={as_of.date().isoformat()}"
        / "definitions.json"
    )
    if not warehouse.has_table(name) or not snapshot.is_file():
        return None
    meta = json.loads(snapshot.read_text(encoding="utf-8"))
    built = {f["name"]: f["hash"] for f in meta["features"]}
    if meta["as_of"] != as_of.isoformat() or built != features.hashes(FeatureEntity.ACCOUNT):
        return None
    table = warehouse.table(name)
    wanted = features.names(FeatureEntity.ACCOUNT)
    if not set(wanted) <= set(table.columns):
        return None
    stamps = warehouse.backend.to_pyarrow(table.select("as_of").distinct()).column(0).to_pylist()
    if stamps != [as_of]:
        return None
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(
        table.select("entity_id", cutoff="as_of", **{n: table[n] for n in wanted})
    ).to_pandas()
    return frame


def _recommend(
    warehouse: Warehouse,
    registry: ModelRegistry,
    frame: pd.DataFrame,
    as_of: dt.datetime,
    labels: dict[str, str],
) -> None:
    """The next features each customer could adopt, into ``recommendations``."""
    version = registry.production(RECOMMENDER_MODEL)
    if version is None:
        return
    model = registry.load(version)
    assert isinstance(model, CoUsageRecommender)
    usage = feature_usage(warehouse, before=as_of)
    usage = usage[usage["account_id"].isin(set(frame["entity_id"]))]
    picks = model.recommend(usage, k=3) if len(usage) else pd.DataFrame()
    table = pa.table(
        {
            "account_id": pa.array(picks.get("entity", []), pa.string()),
            "as_of": pa.array([as_of] * len(picks), pa.timestamp("us", tz="UTC")),
            "feature": pa.array(picks.get("item", []), pa.string()),
            "score": pa.array(picks.get("score", []), pa.float64()),
            "rank": pa.array(picks.get("rank", []), pa.int64()),
            "because": pa.array(picks.get("because", []), pa.string()),
            "model": pa.array([version.label] * len(picks), pa.string()),
        }
    )
    warehouse.replace_table(RECOMMENDATIONS_TABLE, table)
    labels[RECOMMENDER_MODEL] = version.label


_WEEKS_PER_YEAR = 52.0


def _transactional(
    warehouse: Warehouse,
    registry: ModelRegistry,
    frame: pd.DataFrame,
    as_of: dt.datetime,
    settings: ScoringSettings,
    labels: dict[str, str],
) -> dict[str, np.ndarray[Any, Any]]:
    """P(alive), expected purchases and discounted spend over 12 months (BG/NBD + GG)."""
    empty = np.full(len(frame), np.nan)
    out = {"p_alive": empty, "purchases": empty, "clv": empty}
    bg_version = registry.production(BGNBD_MODEL)
    gg_version = registry.production(GAMMAGAMMA_MODEL)
    if bg_version is None or gg_version is None or not len(frame):
        return out
    bgnbd, gammagamma = registry.load(bg_version), registry.load(gg_version)
    assert isinstance(bgnbd, BetaGeo)
    assert isinstance(gammagamma, GammaGamma)
    bought = purchases(warehouse, before=as_of)
    bought = bought[bought["entity_id"].isin(set(frame["entity_id"]))]
    if bought.empty:
        return out
    summary = rfm_summary(
        bought,
        customer_col="entity_id",
        datetime_col="timestamp",
        monetary_col="amount",
        observation_end=as_of,
    )
    rfm = frame[["entity_id"]].merge(summary, left_on="entity_id", right_index=True, how="left")
    known = rfm["frequency"].notna().to_numpy()
    x, recency, age = (
        rfm.loc[known, c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")
    )
    spend = rfm.loc[known, "monetary_value"].fillna(0.0).to_numpy(dtype=float)
    weekly_rate = (1 + settings.annual_discount_rate) ** (1 / _WEEKS_PER_YEAR) - 1
    for key, values in (
        ("p_alive", bgnbd.probability_alive(x, recency, age)),
        ("purchases", bgnbd.conditional_expected_purchases(_WEEKS_PER_YEAR, x, recency, age)),
        (
            "clv",
            gammagamma.customer_lifetime_value(
                bgnbd,
                x,
                recency,
                age,
                spend,
                horizon=_WEEKS_PER_YEAR,
                discount_rate=weekly_rate,
                step=4.0,
                margin=settings.gross_margin,
            ),
        ),
    ):
        column = np.full(len(frame), np.nan)
        column[known] = values
        out[key] = column
    labels[BGNBD_MODEL] = bg_version.label
    labels[GAMMAGAMMA_MODEL] = gg_version.label
    return out


def _write_snapshot(warehouse: Warehouse, kind: str, as_of: dt.datetime, table: pa.Table) -> None:
    folder = warehouse.lake.root / kind / f"as_of={as_of.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{kind}.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / f"{kind}.parquet")
