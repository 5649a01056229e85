"""Scheduled retraining: retrain when the production churn model is old or its inputs drifted.

Run ``tenure retrain`` from a scheduler (daily, say); it retrains only when due:

* **cadence**: the production churn model was trained on data up to more than
  ``every`` before *as_of*;
* **drift**: some input of that model moved since then. Each feature's
  population stability index (PSI) compares the feature snapshot the build
  materialized at the model's training end (the latest one at or before it,
  ``lake/features/account/as_of=…``) with the latest snapshot at or before *as_of*.
  A PSI above ``drift`` (0.25 by default: "a significant shift" by the usual rule
  of thumb; 0.1–0.25 is "some") makes it due.

When due, it trains the churn family of models and the uplift models from the
decision log's outcomes (:func:`tenure.measure.feedback.train_uplift`), as
candidates unless asked to promote.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq

from tenure.errors import ModelError
from tenure.measure._feedback import FeedbackReport, train_uplift
from tenure.models.registry import ModelVersion, registry_for

if TYPE_CHECKING:
    from tenure.models.pipeline import ChurnTraining
    from tenure.project import Project

__all__ = [
    "FeatureDrift",
    "RetrainCheck",
    "RetrainReport",
    "population_stability",
    "retrain",
    "retrain_check",
]

_CHURN = "churn"
_BINS = 10
_FLOOR = 1e-4  # a bin's share is at least this, so an empty bin is not log(0)


def population_stability(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = _BINS
) -> float:
    """PSI of *current* against *reference*: ``Σ (c − r) ln(c / r)`` over bins.

    Bins are the reference's quantiles (ties merged), with missing values a bin of
    their own; shares below 1e-4 count as 1e-4. Returns NaN when either side is empty.
    """
    ref = np.asarray(reference, np.float64)
    cur = np.asarray(current, np.float64)
    if ref.size == 0 or cur.size == 0:
        return math.nan
    present = ref[~np.isnan(ref)]
    edges = (
        np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        if present.size
        else np.array([])
    )

    def shares(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        missing = np.isnan(values)
        counts = np.bincount(
            np.searchsorted(edges, values[~missing], side="right"), minlength=len(edges) + 1
        ).astype(np.float64)
        found = np.append(counts, missing.sum()) / len(values)
        return np.asarray(np.maximum(found, _FLOOR), np.float64)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    feature: str
    psi: float


@dataclass(frozen=True)
class RetrainCheck:
    as_of: dt.datetime
    due: bool
    reasons: tuple[str, ...]
    model: str | None  # the production churn model's label
    trained_until: dt.datetime | None
    reference: dt.date | None  # the feature snapshot compared against …
    current: dt.date | None  # … and the one compared
    drift: tuple[FeatureDrift, ...] = ()  # every input, largest PSI first

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "due": self.due,
            "reasons": list(self.reasons),
            "model": self.model,
            "trained_until": self.trained_until.isoformat() if self.trained_until else None,
            "reference": self.reference.isoformat() if self.reference else None,
            "current": self.current.isoformat() if self.current else None,
            "drift": [{"feature": d.feature, "psi": d.psi} for d in self.drift],
        }


@dataclass(frozen=True)
class RetrainReport:
    check: RetrainCheck
    churn: ChurnTraining | None = None
    uplift: FeedbackReport | None = None
    notes: tuple[str, ...] = field(default=())


def _snapshots(project: Project) -> dict[dt.date, Path]:
    root = project.lake.root / "features" / "account"
    found = {}
    for folder in root.glob("as_of=*") if root.is_dir() else []:
        parquet = folder / "features.parquet"
        if parquet.is_file():
            try:
                found[dt.date.fromisoformat(folder.name.removeprefix("as_of="))] = parquet
            except ValueError:
                continue
    return found


def _latest(snapshots: dict[dt.date, Path], at: dt.datetime) -> dt.date | None:
    dates = [d for d in snapshots if d <= at.date()]
    return max(dates) if dates else None


def _drift(reference: Path, current: Path, features: list[str]) -> tuple[FeatureDrift, ...]:
    old = pq.read_table(reference).to_pandas()
    new = pq.read_table(current).to_pandas()
    found = []
    for name in features:
        if name not in old.columns or name not in new.columns:
            continue
        psi = population_stability(
            pd.to_numeric(old[name], errors="coerce").to_numpy(np.float64),
            pd.to_numeric(new[name], errors="coerce").to_numpy(np.float64),
        )
        if math.isfinite(psi):
            found.append(FeatureDrift(name, round(psi, 4)))
    return tuple(sorted(found, key=lambda d: -d.psi))


def retrain_check(
    project: Project,
    *,
    as_of: dt.datetime,
    every: dt.timedelta | None = dt.timedelta(days=30),
    drift: float | None = 0.25,
) -> RetrainCheck:
    """Whether retraining is due at *as_of* (module doc); *every* or *drift* None: not checked."""
    production: ModelVersion | None = registry_for(project).production(_CHURN)
    if production is None:
        return RetrainCheck(as_of, True, ("no production churn model",), None, None, None, None)
    trained = production.training_end
    if trained is not None and trained.tzinfo is None:
        trained = trained.replace(tzinfo=dt.UTC)
    reasons = []
    if trained is None:
        reasons.append(f"{production.label} does not record when its training data ends")
    elif every is not None and as_of - trained > every:
        days = (as_of - trained).total_seconds() / 86_400
        reasons.append(
            f"{production.label} learned from data up to {trained:%Y-%m-%d}, "
            f"{days:.0f} days ago (retrain every {every.total_seconds() / 86_400:g} days)"
        )
    snapshots = _snapshots(project)
    reference = _latest(snapshots, trained) if trained is not None else None
    current = _latest(snapshots, as_of)
    found: tuple[FeatureDrift, ...] = ()
    if reference is not None and current is not None and current > reference:
        found = _drift(snapshots[reference], snapshots[current], sorted(production.feature_hashes))
        moved = [d for d in found if drift is not None and d.psi > drift]
        if moved:
            shown = ", ".join(f"{d.feature} (PSI {d.psi:.2f})" for d in moved[:5])
            more = f" and {len(moved) - 5} more" if len(moved) > 5 else ""
            reasons.append(f"inputs drifted since {reference}: {shown}{more} above {drift:g}")
    return RetrainCheck(
        as_of=as_of,
        due=bool(reasons),
        reasons=tuple(reasons),
        model=production.label,
        trained_until=trained,
        reference=reference,
        current=current,
        drift=found,
    )


def retrain(
    project: Project,
    *,
    as_of: dt.datetime,
    every: dt.timedelta | None = dt.timedelta(days=30),
    drift: float | None = 0.25,
    force: bool = False,
    actor: str = "system",
    promote: bool | None = None,
) -> RetrainReport:
    """Retrain the churn and uplift models when :func:`retrain_check` says so (or *force*)."""
    from tenure.models.pipeline import train

    check = retrain_check(project, as_of=as_of, every=every, drift=drift)
    if not (check.due or force):
        return RetrainReport(check)
    notes = []
    churn = None
    try:
        churn = train(project, as_of=as_of, actor=actor, promote=promote)
    except ModelError as error:
        notes.append(f"churn models not trained: {error}")
    uplift = train_uplift(project, as_of=as_of, actor=actor, promote=promote)
    return RetrainReport(check, churn, uplift, tuple(notes))
