"""Customer health: a 0–100 score from weighted components of percentile-ranked features.

Each component (usage depth, breadth, engagement trend, support, sentiment,
billing by default; see ``health:`` in ``tenure.yaml``) reads a few features.

* **Inputs score 0–100 by percentile rank**: an input's score is the share of the
  *reference* accounts that the account does at least as well as — the share with
  a value ≤ its own for ``higher_is_better``, ≥ its own for ``lower_is_better``.
  Values above an input's ``cap`` count as the cap. So the best value scores 100,
  ties score alike, and a better value never scores lower.
* **The reference** is the distribution of the features *now* of the accounts
  being scored (the customers at ``as_of``), and the scores 30 days ago are ranked
  against the same reference. A change in health is therefore the account's own
  movement, not its peers' (with a reference per date, an account that stood still
  while everyone improved would seem to decline). Scores of different builds use
  different references; to compare builds, pass one fixed
  :class:`HealthReference` (e.g. from a baseline date's features) to
  :func:`health_scores`.
* **Missing values are skipped**: a component is the mean of the scores of its
  inputs that are present; a component with none present is left out and the
  health is the weighted mean of the remaining components, weights renormalized
  to sum to 1 over them. An account with no component at all has no health
  (null, and no band).
* **Bands**: green at or above ``bands.green`` (70), yellow at or above
  ``bands.yellow`` (40), else red.
* **Movers** name the components that moved the score most over the last 30 days,
  with how many health points each moved it, e.g. ``"support −12, usage_depth +8"``.
  The points of all components add up to ``change_30d``: a component scored both
  times moved it by its weight now × its score change; one that gained its first
  input by its weight × (its score − the health before); one that lost all its
  inputs by the shift its absence caused in the others' weights. A component
  whose score did not change, and that did not come or go, never moves it.

:func:`build_health` scores the customers at ``as_of`` into the warehouse table
``health``; :func:`health_auc` measures how well health computed at a past cutoff
ranks the customers who churned after it, to tune the weights against.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pyarrow as pa

from tenure.config import HealthDirection, HealthInput, HealthSettings, LifecycleSettings
from tenure.errors import ConfigError, ConfigProblem, ModelError
from tenure.features import FeatureEntity, FeatureSet, attributed_events, feature_frame, feature_set
from tenure.lifecycle import CUSTOMER_STAGES, stage_history

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = [
    "CHANGE_DAYS",
    "HEALTH_TABLE",
    "Band",
    "HealthAUC",
    "HealthBuild",
    "HealthReference",
    "build_health",
    "health_auc",
    "health_scores",
]

HEALTH_TABLE = "health"
#: The change column compares with the features this many days earlier.
CHANGE_DAYS = 30
_MINUS = "\u2212"
_TS = "timestamp('UTC', 6)"


class Band(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True, slots=True)
class HealthReference:
    """The values each feature is ranked against (sorted, missing values dropped)."""

    values: Mapping[str, np.ndarray[Any, np.dtype[np.float64]]]

    @classmethod
    def from_features(cls, frame: pd.DataFrame, settings: HealthSettings) -> HealthReference:
        names = sorted({i.feature for c in settings.components.values() for i in c.inputs})
        _require_columns(frame, names)
        values = {}
        for name in names:
            column = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            values[name] = np.sort(column[~np.isnan(column)])
        return cls(values)

    def score(
        self, spec: HealthInput, values: np.ndarray[Any, np.dtype[np.float64]]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """0–100: the share of the reference that *values* do at least as well as."""
        reference = self.values.get(spec.feature)
        out = np.full(len(values), np.nan)
        if reference is None or len(reference) == 0:
            return out
        if spec.cap is not None:
            reference = np.minimum(reference, spec.cap)
            values = np.minimum(values, spec.cap)
        present = ~np.isnan(values)
        x = values[present]
        if spec.direction is HealthDirection.HIGHER_IS_BETTER:
            at_least_as_good = np.searchsorted(reference, x, side="right")
        else:
            at_least_as_good = len(reference) - np.searchsorted(reference, x, side="left")
        out[present] = 100.0 * at_least_as_good / len(reference)
        return out


def _require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ModelError(
            f"the feature frame has no column {', '.join(missing)} that health.components read",
            hint="build the features with these names, or change health.components in tenure.yaml",
        )


def _account_ids(frame: pd.DataFrame) -> pd.Series:
    for column in ("account_id", "entity_id"):
        if column in frame.columns:
            return frame[column].astype(str)
    raise ModelError(
        "the feature frame needs an account_id (or entity_id) column",
        hint="pass features_account or a feature_frame result",
    )


def _component_scores(
    frame: pd.DataFrame, settings: HealthSettings, reference: HealthReference
) -> pd.DataFrame:
    scores = {}
    for name, component in settings.components.items():
        inputs = []
        for spec in component.inputs:
            values = pd.to_numeric(frame[spec.feature], errors="coerce").to_numpy(dtype=float)
            inputs.append(reference.score(spec, values))
        stacked = np.vstack(inputs)
        counts = (~np.isnan(stacked)).sum(axis=0)
        sums = np.nansum(stacked, axis=0)
        scores[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(scores, index=frame.index)


def _weights(components: pd.DataFrame, settings: HealthSettings) -> pd.DataFrame:
    """Each component's weight per account, normalized over the components it has."""
    raw = np.array([settings.components[c].weight for c in components.columns])
    present = ~components.isna().to_numpy()
    weights = present * raw
    totals = weights.sum(axis=1, keepdims=True)
    normalized = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    return pd.DataFrame(normalized, index=components.index, columns=components.columns)


def _health(components: pd.DataFrame, weights: pd.DataFrame) -> pd.Series:
    values = (components.fillna(0.0) * weights).sum(axis=1)
    has_any = weights.sum(axis=1) > 0
    return values.where(has_any)


def _band(health: float, settings: HealthSettings) -> str | None:
    if np.isnan(health):
        return None
    if health >= settings.bands.green:
        return Band.GREEN.value
    if health >= settings.bands.yellow:
        return Band.YELLOW.value
    return Band.RED.value


def _contributions(
    now: pd.DataFrame, now_weights: pd.DataFrame, before: pd.DataFrame, before_weights: pd.DataFrame
) -> pd.DataFrame:
    """How many health points each component added to each row's change; they sum to it.

    The four frames are aligned row by row (an account now and the same account
    before) and share their columns (the components). A component scored both
    times adds its weight now × its score change. One that appeared adds its
    weight × (its score − the health before). One that disappeared takes the
    shift its absence caused in the others' weights.
    """
    n, b = now.to_numpy(dtype=float), before.to_numpy(dtype=float)
    nw, bw = now_weights.to_numpy(dtype=float), before_weights.to_numpy(dtype=float)
    health_before = (np.nan_to_num(b) * bw).sum(axis=1, keepdims=True)
    both = ~np.isnan(n) & ~np.isnan(b)
    appeared = ~np.isnan(n) & np.isnan(b)
    gone = np.isnan(n) & ~np.isnan(b)
    out = np.where(both, nw * (n - b), 0.0)
    out += np.where(appeared, nw * (n - health_before), 0.0)
    shift = np.where(both, nw * (b - health_before), 0.0).sum(axis=1, keepdims=True)
    gone_weights = np.where(gone, bw, 0.0)
    total = gone_weights.sum(axis=1, keepdims=True)
    share = np.divide(gone_weights, total, out=np.zeros_like(gone_weights), where=total > 0)
    out += np.where(gone, shift * share, 0.0)
    return pd.DataFrame(out, index=now.index, columns=now.columns)


def _movers(contributions: pd.Series, count: int) -> str:
    """The components with the largest contributions to the change, in health points."""
    ranked = sorted(
        ((abs(v), name, int(np.round(v))) for name, v in contributions.items()),
        key=lambda item: (-item[0], item[1]),
    )
    return ", ".join(
        f"{name} {'+' if points > 0 else _MINUS}{abs(points)}"
        for _, name, points in ranked[:count]
        if points != 0
    )


def health_scores(
    features_now: pd.DataFrame,
    features_before: pd.DataFrame | None = None,
    settings: HealthSettings | None = None,
    *,
    reference: HealthReference | None = None,
) -> pd.DataFrame:
    """Health of each account in *features_now* (one row per account).

    Columns: ``account_id``, ``health`` (0–100), ``band``, ``change_30d`` (health
    now minus health from *features_before*, ranked against the same reference;
    null when the account has no earlier row), one column per component (0–100),
    and ``movers``. *reference* defaults to *features_now* (module documentation).
    """
    settings = settings if settings is not None else HealthSettings()
    names = sorted({i.feature for c in settings.components.values() for i in c.inputs})
    _require_columns(features_now, names)
    now = features_now.reset_index(drop=True)
    ids = _account_ids(now)
    if ids.duplicated().any():
        raise ModelError(
            f"features_now has several rows for account {ids[ids.duplicated()].iloc[0]!r}",
            hint="pass one row per account (one cutoff)",
        )
    reference = reference if reference is not None else HealthReference.from_features(now, settings)
    components = _component_scores(now, settings, reference)
    weights = _weights(components, settings)
    health = _health(components, weights)
    change = pd.Series(np.nan, index=now.index)
    movers = pd.Series([None] * len(now), index=now.index, dtype=object)
    if features_before is not None and len(features_before):
        _require_columns(features_before, names)
        before = features_before.reset_index(drop=True)
        before_ids = _account_ids(before)
        before_components = _component_scores(before, settings, reference)
        before_weights = _weights(before_components, settings)
        before_health = _health(before_components, before_weights)
        position = pd.Series(before.index, index=before_ids.to_numpy())
        position = position[~position.index.duplicated(keep="last")]
        earlier = ids.map(position)
        rows = earlier.notna().to_numpy()
        matched = earlier[rows].astype(int).to_numpy()
        change[rows] = health[rows].to_numpy() - before_health.to_numpy()[matched]
        rows &= change.notna().to_numpy()
        matched = earlier[rows].astype(int).to_numpy()
        parts = _contributions(
            components[rows],
            weights[rows],
            before_components.iloc[matched].set_axis(components.index[rows]),
            before_weights.iloc[matched].set_axis(components.index[rows]),
        )
        for row, contributions in parts.iterrows():
            movers[row] = _movers(contributions, settings.movers)
    out = pd.DataFrame(
        {
            "account_id": ids,
            "health": health.astype(float),
            "band": [_band(float(h), settings) for h in health],
            "change_30d": change.astype(float),
        }
    )
    for name in settings.components:
        out[name] = components[name].astype(float)
    out["movers"] = movers
    return out.sort_values("account_id", ignore_index=True)


def _check_inputs(settings: HealthSettings, features: FeatureSet) -> None:
    known = set(features.names(FeatureEntity.ACCOUNT))
    problems = [
        ConfigProblem(
            f"health.components.{name}.inputs[{index}].feature",
            "the name of an account feature (`tenure features` lists them)",
            spec.feature,
        )
        for name, component in settings.components.items()
        for index, spec in enumerate(component.inputs)
        if spec.feature not in known
    ]
    if problems:
        raise ConfigError(
            "tenure.yaml",
            problems,
            hint="fix health.components, or define or re-enable the features under features:",
        )


def _needed(features: FeatureSet, settings: HealthSettings) -> FeatureSet:
    """The features health reads (and the parts of its ratios): no need to compute more."""
    wanted = {i.feature for c in settings.components.values() for i in c.inputs}
    for name in list(wanted):
        definition = features.get(name)
        wanted.update(n for n in (definition.numerator, definition.denominator) if n)
    return FeatureSet(tuple(d for d in features.definitions if d.name in wanted))


def _customers_at(
    warehouse: Warehouse,
    lifecycle: LifecycleSettings,
    as_of: dt.datetime,
    *times: dt.datetime,
    history: ir.Table | None = None,
) -> list[set[str]]:
    """Accounts in a customer stage at each of *times* (by the history as of *as_of*)."""
    if history is None:
        history = stage_history(warehouse, lifecycle, as_of=as_of)
    paying = history.filter(history.stage.isin([s.value for s in CUSTOMER_STAGES]))
    out = []
    for moment in times:
        at = ibis.literal(moment, _TS)
        covering = paying.filter(
            (paying.entered <= at) & (paying.exited.isnull() | (at < paying.exited))
        )
        rows = warehouse.backend.to_pyarrow(covering.select("account_id").distinct()).to_pylist()
        out.append({str(r["account_id"]) for r in rows})
    return out


def _pairs(accounts: set[str], cutoff: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({"entity_id": sorted(accounts), "cutoff": [cutoff] * len(accounts)})


def _table_schema(settings: HealthSettings) -> pa.Schema:
    fields = [
        ("account_id", pa.string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("health", pa.float64()),
        ("band", pa.string()),
        ("change_30d", pa.float64()),
        *[(name, pa.float64()) for name in settings.components],
        ("movers", pa.string()),
    ]
    return pa.schema(fields)


@dataclass(frozen=True, slots=True)
class HealthBuild:
    """What :func:`build_health` wrote."""

    table: str
    as_of: dt.datetime
    accounts: int
    bands: dict[Band, int]
    mean_health: float | None
    seconds: float


def build_health(
    warehouse: Warehouse,
    features: FeatureSet | None = None,
    settings: HealthSettings | None = None,
    *,
    as_of: dt.datetime,
    lifecycle: LifecycleSettings | None = None,
    history: ir.Table | None = None,
    current: pd.DataFrame | None = None,
) -> HealthBuild:
    """Score the customers at *as_of* into the warehouse table ``health``.

    Features are computed point-in-time at *as_of* and 30 days earlier (for
    ``change_30d``; only for accounts that were customers then). Customers are the
    accounts in a customer stage at *as_of* (:mod:`tenure.lifecycle`); pass the
    ``stage_history`` table built for the same *as_of* as *history* to reuse it,
    and the features built for *as_of* (``entity_id`` plus feature columns, from
    the same definitions) as *current* to compute only the earlier ones.
    """
    started = time.perf_counter()
    settings = settings if settings is not None else HealthSettings()
    features = features if features is not None else feature_set()
    lifecycle = lifecycle if lifecycle is not None else LifecycleSettings()
    _check_inputs(settings, features)
    earlier = as_of - dt.timedelta(days=CHANGE_DAYS)
    now_customers, then_customers = _customers_at(
        warehouse, lifecycle, as_of, as_of, earlier, history=history
    )
    then_customers &= now_customers
    schema = _table_schema(settings)
    table = schema.empty_table()
    scores = table.to_pandas()
    if now_customers:
        needed = _needed(features, settings)
        names = [d.name for d in needed.definitions]
        if current is not None and set(names) <= set(current.columns):
            now_frame = current[current["entity_id"].isin(now_customers)]
            now_frame = now_frame.sort_values("entity_id", ignore_index=True)
            then_frame = feature_frame(warehouse, _pairs(then_customers, earlier), needed)
        else:
            pairs = pd.concat([_pairs(now_customers, as_of), _pairs(then_customers, earlier)])
            frame = feature_frame(warehouse, pairs, needed)
            now_frame = frame[frame["cutoff"] == pd.Timestamp(as_of)]
            then_frame = frame[frame["cutoff"] == pd.Timestamp(earlier)]
        scores = health_scores(now_frame, then_frame, settings)
        scores.insert(1, "as_of", pd.Timestamp(as_of))
        table = pa.Table.from_pandas(scores[schema.names], schema=schema, preserve_index=False)
    warehouse.replace_table(HEALTH_TABLE, table)
    counts = scores["band"].value_counts()
    return HealthBuild(
        table=HEALTH_TABLE,
        as_of=as_of,
        accounts=len(scores),
        bands={band: int(counts.get(band.value, 0)) for band in Band},
        mean_health=float(scores["health"].mean()) if scores["health"].notna().any() else None,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, slots=True)
class HealthAUC:
    """How well health at *cutoff* ranked the customers who churned within the horizon.

    ``auc`` is the ROC-AUC of (100 − health) against churn: 1.0 when every
    churner had a lower health than every customer who stayed, 0.5 for a random
    ranking; ``None`` when the customers were all churners or none was.
    """

    cutoff: dt.datetime
    horizon_days: int
    n: int
    churners: int
    auc: float | None


def health_auc(
    warehouse: Warehouse,
    settings: HealthSettings | None = None,
    *,
    cutoff: dt.datetime,
    horizon_days: int = 90,
    features: FeatureSet | None = None,
    lifecycle: LifecycleSettings | None = None,
) -> HealthAUC:
    """ROC-AUC of health at *cutoff* (point-in-time features) for churn in the next
    *horizon_days*, among the customers at *cutoff* that have a health score.

    Churn is a ``churn_events`` event (``Subscription Canceled``) of the account in
    ``[cutoff, cutoff + horizon_days)``. The lake must reach past that window, or
    late churners count as staying.
    """
    from sklearn.metrics import roc_auc_score

    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    settings = settings if settings is not None else HealthSettings()
    features = features if features is not None else feature_set()
    lifecycle = lifecycle if lifecycle is not None else LifecycleSettings()
    _check_inputs(settings, features)
    (customers,) = _customers_at(warehouse, lifecycle, cutoff, cutoff)
    if not customers:
        return HealthAUC(cutoff, horizon_days, 0, 0, None)
    frame = feature_frame(warehouse, _pairs(customers, cutoff), _needed(features, settings))
    scores = health_scores(frame, None, settings)
    scores = scores[scores["health"].notna()]
    churned = _churned(warehouse, lifecycle, cutoff, cutoff + dt.timedelta(days=horizon_days))
    label = scores["account_id"].isin(churned).to_numpy()
    churners = int(label.sum())
    auc = None
    if 0 < churners < len(scores):
        auc = float(roc_auc_score(label, 100.0 - scores["health"].to_numpy()))
    return HealthAUC(cutoff, horizon_days, len(scores), churners, auc)


def _churned(
    warehouse: Warehouse, lifecycle: LifecycleSettings, start: dt.datetime, end: dt.datetime
) -> set[str]:
    events = attributed_events(warehouse)
    window = events.filter(
        events.event.isin(lifecycle.churn_events)
        & events.account_id.notnull()
        & (events.timestamp >= ibis.literal(start, _TS))
        & (events.timestamp < ibis.literal(end, _TS))
    )
    rows = warehouse.backend.to_pyarrow(window.select("account_id").distinct()).to_pylist()
    return {str(r["account_id"]) for r in rows}
