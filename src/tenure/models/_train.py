"""Training the churn, survival and retention models on point-in-time frames.

Training pairs are (customer, cutoff) at monthly cutoffs that end one horizon
before the run's ``as_of``, so every label is fully observed by then. The churn
classifier is first fitted on the older cutoffs and scored on the newest
(out-of-time validation, the metrics it is registered with), then refitted on
all of them: the registered model learned from the most recent behaviour too.

The gradient-boosted fits (churn, expansion, promoter; each twice) run side by
side in threads, as LightGBM releases the GIL, while the survival, retention
and CLV models fit on the calling thread.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tenure.errors import ModelError
from tenure.features import FeatureEntity, FeatureSet, feature_frame
from tenure.models._labels import (
    churned_within,
    customer_outcomes,
    feature_usage,
    future_counts,
    monthly_cutoffs,
    purchases,
)
from tenure.models.churn import ChurnClassifier
from tenure.models.clv import BetaGeo, GammaGamma, ShiftedBetaGeometric, rfm_summary
from tenure.models.metrics import ClassificationMetrics, classification_report
from tenure.models.propensity import PropensityClassifier
from tenure.models.recommend import CoUsageRecommender
from tenure.models.registry import ModelRegistry, ModelStatus, ModelVersion
from tenure.models.survival import ChurnSurvival
from tenure.warehouse import Warehouse

__all__ = [
    "BGNBD_MODEL",
    "CHURN_MODEL",
    "EXPANSION_MODEL",
    "GAMMAGAMMA_MODEL",
    "PROMOTER_MODEL",
    "RECOMMENDER_MODEL",
    "RETENTION_MODEL",
    "SURVIVAL_MODEL",
    "ChurnTraining",
    "TrainingSettings",
    "train_churn",
]

CHURN_MODEL = "churn"
SURVIVAL_MODEL = "churn_survival"
RETENTION_MODEL = "retention_sbg"
EXPANSION_MODEL = "expansion"
PROMOTER_MODEL = "promoter"
BGNBD_MODEL = "clv_bgnbd"
GAMMAGAMMA_MODEL = "clv_gammagamma"
RECOMMENDER_MODEL = "next_product"
_MIN_CLASS = 10

#: A model to register: the fitted model, its metrics, its parameters, its description.
_Registered = tuple[object, dict[str, float], dict[str, object], str]
_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """How churn models are trained (defaults suit monthly SaaS data)."""

    horizon_days: int = 90
    history_months: int = 12
    validation_months: int = 3
    random_state: int = 0
    #: LightGBM threads; None: one for small frames (threads busy-wait and a
    #: shared machine makes them slower), two beyond 200k rows.
    n_jobs: int | None = None


@dataclass(frozen=True, slots=True)
class ChurnTraining:
    """What one training run produced."""

    as_of: dt.datetime
    rows: int
    churn_rate: float
    validation: ClassificationMetrics
    versions: dict[str, ModelVersion]
    promoted: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    #: Models not trained this run, and why (too few outcomes of a kind).
    skipped: dict[str, str] = field(default_factory=dict)


def training_frame(
    warehouse: Warehouse,
    features: FeatureSet,
    *,
    as_of: dt.datetime,
    settings: TrainingSettings,
) -> pd.DataFrame:
    """Customers at monthly cutoffs with their point-in-time features and outcome."""
    last = as_of - dt.timedelta(days=settings.horizon_days)
    cutoffs = monthly_cutoffs(last, settings.history_months)
    outcomes = customer_outcomes(warehouse, cutoffs, observed_until=as_of)
    if outcomes.empty:
        raise ModelError(
            f"no customers (accounts with a subscription) before {last:%Y-%m-%d}: "
            "nothing to train on",
            hint="ingest billing data (Subscription Started / Canceled) or pick a later --as-of",
        )
    outcomes["churned"] = churned_within(outcomes, settings.horizon_days)
    frame = feature_frame(
        warehouse, outcomes[["entity_id", "cutoff"]], features, FeatureEntity.ACCOUNT
    )
    return outcomes.merge(frame, on=["entity_id", "cutoff"], how="left", validate="one_to_one")


def train_churn(
    warehouse: Warehouse,
    registry: ModelRegistry,
    features: FeatureSet,
    *,
    as_of: dt.datetime,
    settings: TrainingSettings | None = None,
    actor: str = "system",
    promote: bool | None = None,
) -> ChurnTraining:
    """Train and register the churn classifier, the survival model and the sBG.

    New versions are candidates. ``promote=True`` makes them production;
    ``None`` (the default) promotes only when a model has no production version
    yet, so a first run leaves a project able to score.
    """
    settings = settings or TrainingSettings()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    frame = training_frame(warehouse, features, as_of=as_of, settings=settings)
    seconds["frame"] = time.perf_counter() - started
    names = features.names(FeatureEntity.ACCOUNT)
    y = frame["churned"].to_numpy()
    if y.sum() < 10 or (1 - y).sum() < 10:
        raise ModelError(
            f"too few outcomes to learn from: {int(y.sum())} churned and "
            f"{int((1 - y).sum())} retained customer-months (10 of each needed)",
            hint="train on more history (--history-months) or more accounts",
        )
    cutoffs = sorted(frame["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ModelError(
            f"out-of-time validation needs customers at 2 or more cutoffs, found {len(cutoffs)}",
            hint="train on more history (--history-months)",
        )
    split = (
        cutoffs[-settings.validation_months]
        if len(cutoffs) > settings.validation_months
        else cutoffs[-1]
    )
    older = (frame["cutoff"] < split).to_numpy()

    started = time.perf_counter()
    threads = settings.n_jobs or (1 if len(frame) < 200_000 else 2)
    params = {"random_state": settings.random_state, "n_jobs": threads}
    propensities = _propensity_labels(warehouse, frame, as_of, settings)
    seconds["labels"] = time.perf_counter() - started

    # The gradient-boosted models fit side by side (LightGBM releases the GIL) while
    # survival, retention and the CLV models fit here; each fit is deterministic.
    started = time.perf_counter()
    skipped: dict[str, str] = {}
    with ThreadPoolExecutor(_fit_workers(threads), thread_name_prefix="tenure-fit") as pool:
        churn_fits = [
            pool.submit(ChurnClassifier(**params).fit, frame.loc[older, names], y[older]),
            pool.submit(ChurnClassifier(**params).fit, frame[names], y),
        ]
        propensity_fits = []
        for name, labels, description in propensities:
            rows = labels.notna().to_numpy()
            y_p = labels.fillna(0).astype(int).to_numpy()
            positives, negatives = int(y_p[rows].sum()), int((1 - y_p[rows]).sum())
            old_rows, new_rows = rows & older, rows & ~older
            if (
                min(positives, negatives) < _MIN_CLASS
                or min(y_p[new_rows].sum(), (1 - y_p[new_rows]).sum()) < 1
            ):
                skipped[name] = f"{positives} positive and {negatives} negative outcomes"
                continue
            check, fitted = (PropensityClassifier(target_name=name, **params) for _ in range(2))
            propensity_fits.append(
                _PropensityFit(
                    name,
                    description,
                    pool.submit(check.fit, frame.loc[old_rows, names], y_p[old_rows]),
                    pool.submit(fitted.fit, frame.loc[rows, names], y_p[rows]),
                    frame.loc[new_rows, names],
                    y_p[new_rows],
                )
            )
        survival, survival_c = _fit_survival(frame, names, older)
        retention = _fit_retention(frame, as_of)
        clv_and_products = _fit_clv_and_products(warehouse, as_of, skipped)
        holdout_model, model = (fit.result() for fit in churn_fits)
        extra: dict[str, _Registered] = {}
        for fit in propensity_fits:
            metrics = classification_report(
                fit.check_y, fit.check.result().predict_proba(fit.check_x)[:, 1]
            ).as_dict()
            final = fit.final.result()
            extra[fit.name] = (final, metrics, final.get_params(), fit.description)
    extra.update(clv_and_products)
    validation = classification_report(
        y[~older], holdout_model.predict_proba(frame.loc[~older, names])[:, 1]
    )
    seconds["models"] = time.perf_counter() - started

    window = {"training_start": min(cutoffs).to_pydatetime(), "training_end": as_of}
    hashes = features.hashes(FeatureEntity.ACCOUNT)
    common = {"feature_hashes": hashes, "actor": actor, **window}
    versions = {
        CHURN_MODEL: registry.register(
            CHURN_MODEL,
            model,
            metrics={**validation.as_dict(), "rows": float(len(frame))},
            params={**model.get_params(), "horizon_days": settings.horizon_days},
            description=f"P(churn within {settings.horizon_days} days), out-of-time validated",
            **common,
        ),
        SURVIVAL_MODEL: registry.register(
            SURVIVAL_MODEL,
            survival,
            metrics={"concordance": float(survival_c)},
            params=survival.get_params(),
            description="time to churn (Cox), days; renewal probability at the renewal date",
            **common,
        ),
        RETENTION_MODEL: registry.register(
            RETENTION_MODEL,
            retention,
            metrics={k: float(v) for k, v in retention.params_.items()},
            params={"period": "month"},
            description="shifted-beta-geometric monthly retention, for subscription CLV",
            **common,
        ),
    }
    for name, (fitted_model, metrics, model_params, description) in extra.items():
        versions[name] = registry.register(
            name,
            fitted_model,
            metrics=metrics,
            params=model_params,
            description=description,
            **common,
        )
    promoted = []
    for name, version in versions.items():
        if promote or (promote is None and registry.production(name) is None):
            registry.promote(name, version.version, to=ModelStatus.PRODUCTION, actor=actor)
            promoted.append(name)
    return ChurnTraining(
        as_of=as_of,
        rows=len(frame),
        churn_rate=float(y.mean()),
        validation=validation,
        versions={name: registry.get(name, v.version) for name, v in versions.items()},
        promoted=promoted,
        seconds=seconds,
        skipped=skipped,
    )


@dataclass(frozen=True, slots=True)
class _PropensityFit:
    """A propensity model's two fits under way: on the older cutoffs, and on every row."""

    name: str
    description: str
    check: Future[PropensityClassifier]
    final: Future[PropensityClassifier]
    check_x: pd.DataFrame
    check_y: np.ndarray


def _fit_workers(threads: int) -> int:
    """How many gradient-boosted models fit at once, each with *threads* threads.

    Threads of one fit busy-wait for each other (OpenMP), so a fit with several
    threads gets the cores to itself; one-thread fits run side by side, as many as
    there are cores.
    """
    return max(1, min(4, (os.cpu_count() or 1) // threads))


def _fit_survival(
    frame: pd.DataFrame, names: list[str], older: np.ndarray
) -> tuple[ChurnSurvival, float]:
    """The Cox time-to-churn model on every row, and its concordance on the newest cutoffs."""
    survival = ChurnSurvival().fit(
        frame[names],
        frame["days_observed"].clip(lower=0.5),
        frame["ended_at"].notna().astype(int),
    )
    concordance = survival.score(
        frame.loc[~older, names],
        frame.loc[~older, "days_observed"].clip(lower=0.5),
        frame.loc[~older, "ended_at"].notna().astype(int),
    )
    return survival, float(concordance)


def _fit_clv_and_products(
    warehouse: Warehouse, as_of: dt.datetime, skipped: dict[str, str]
) -> dict[str, _Registered]:
    """BG/NBD, Gamma-Gamma and the co-usage recommender; what cannot be fitted goes to
    *skipped* with the reason."""
    extra: dict[str, _Registered] = {}
    transactional = _fit_transactional(warehouse, as_of)
    if isinstance(transactional, str):
        skipped[BGNBD_MODEL] = skipped[GAMMAGAMMA_MODEL] = transactional
    else:
        bgnbd, gammagamma = transactional
        extra[BGNBD_MODEL] = (
            bgnbd,
            {k: float(v) for k, v in bgnbd.params_.items()},
            {"time_unit": "weeks"},
            "BG/NBD repeat purchasing (invoices or orders), weeks",
        )
        extra[GAMMAGAMMA_MODEL] = (
            gammagamma,
            {k: float(v) for k, v in gammagamma.params_.items()},
            {},
            "Gamma-Gamma spend per purchase",
        )
    usage = feature_usage(warehouse, before=as_of)
    if usage["feature"].nunique() < 2:
        skipped[RECOMMENDER_MODEL] = "fewer than 2 features used in the last 90 days"
    else:
        recommender = CoUsageRecommender().fit(usage)
        extra[RECOMMENDER_MODEL] = (
            recommender,
            {
                "accounts": float(usage["account_id"].nunique()),
                "items": float(len(recommender.items_)),
            },
            recommender.get_params(),
            "next features to adopt, from co-usage over the last 90 days",
        )
    return extra


def _fit_retention(frame: pd.DataFrame, as_of: dt.datetime) -> ShiftedBetaGeometric:
    """sBG on every customer's months from start to cancellation (or to *as_of*)."""
    spells = frame.drop_duplicates("entity_id", keep="last")
    end = spells["ended_at"].fillna(pd.Timestamp(as_of))
    months = (end - spells["started_at"]).dt.total_seconds() / 86_400.0 / _DAYS_PER_MONTH
    churned = spells["ended_at"].notna().to_numpy()
    # a cancellation during month t (t ≥ 1); an active customer has renewed floor(months) times
    lifetimes = np.where(churned, np.maximum(np.ceil(months), 1), np.floor(months))
    return ShiftedBetaGeometric().fit_durations(lifetimes, churned)


def _propensity_labels(
    warehouse: Warehouse, frame: pd.DataFrame, as_of: dt.datetime, settings: TrainingSettings
) -> list[tuple[str, pd.Series, str]]:
    """(model, label per row — missing where the row does not count, description)."""
    horizon = settings.horizon_days
    expansion = future_counts(
        warehouse,
        frame,
        events=["Subscription Changed"],
        horizon_days=horizon,
        observed_until=as_of,
        numeric_property="mrr",
        above_property="previous_mrr",
    )
    promoters = future_counts(
        warehouse,
        frame,
        events=["NPS Submitted"],
        horizon_days=horizon,
        observed_until=as_of,
        numeric_property="score",
        at_least=9,
    )
    answered = promoters["seen"] > 0
    return [
        (
            EXPANSION_MODEL,
            (expansion["matched"] > 0).astype(float),
            f"P(MRR expands within {horizon} days)",
        ),
        (
            PROMOTER_MODEL,
            (promoters["matched"] > 0).astype(float).where(answered),
            f"P(an NPS answer within {horizon} days is 9 or 10), among those who answer",
        ),
    ]


def _fit_transactional(
    warehouse: Warehouse, as_of: dt.datetime
) -> tuple[BetaGeo, GammaGamma] | str:
    """BG/NBD and Gamma-Gamma on every account's purchases, or why they cannot be fitted."""
    bought = purchases(warehouse, before=as_of)
    if bought.empty:
        return "no purchases (Order Completed or Invoice Paid events)"
    summary = rfm_summary(
        bought,
        customer_col="entity_id",
        datetime_col="timestamp",
        monetary_col="amount",
        observation_end=as_of,
    )
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(summary) < 20 or len(repeat) < 20:
        return f"{len(summary)} purchasers, {len(repeat)} with repeat purchases (20 needed)"
    bgnbd = BetaGeo().fit(summary["frequency"], summary["recency"], summary["T"])
    gammagamma = GammaGamma().fit(repeat["frequency"], repeat["monetary_value"])
    return bgnbd, gammagamma
