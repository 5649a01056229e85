"""Time to churn: a Cox proportional-hazards model on a customer feature table.

:class:`ChurnSurvival` wraps lifelines' ``CoxPHFitter`` behind the tenure model
contract and takes an ordinary pandas feature frame: categorical columns are
one-hot encoded against their most frequent level, missing numbers are filled
with the training median, and columns constant on the training rows are
dropped. Its questions are survival questions:

* ``predict_survival(X, times)`` — the probability of still being a customer at
  each time since the start (time in the units of ``duration``);
* ``conditional_survival(X, elapsed, horizon)`` — the probability of still being
  a customer ``horizon`` from now given ``elapsed`` so far, e.g. of renewing at
  the renewal date with ``elapsed = tenure`` and ``horizon = days_to_renewal``;
* ``predict_median_lifetime(X)`` — the time at which survival falls to one half.

The baseline cumulative hazard (Breslow) is known at the training durations;
between them it is interpolated linearly (as lifelines does), from 0 at time 0,
and past the longest training duration it stays flat. So survival beyond the
longest observed tenure is not extrapolated: a conditional survival whose
``elapsed`` lies past ``max_duration_`` is 1.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, Self, TypeAlias

import numpy as np
import pandas as pd

from tenure.errors import ModelError
from tenure.models._base import Estimator, check_fitted

__all__ = ["ChurnSurvival"]

_DURATION = "__tenure_duration__"
_EVENT = "__tenure_event__"

ArrayLike: TypeAlias = Sequence[float] | np.ndarray[Any, Any] | pd.Series


def _frame(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ModelError(
            f"X must be a pandas DataFrame of features, got {type(X).__name__}",
            hint="pass the feature table, e.g. pd.DataFrame(rows)",
        )
    return X


def _numbers(values: Any, field: str, rows: int | None) -> np.ndarray[Any, Any]:
    """*values* as a float vector of length *rows*, finite and ≥ 0."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"{field} must be numbers; got {values!r:.80}") from None
    if array.ndim == 0 and rows is not None:
        array = np.full(rows, float(array))
    if array.ndim != 1:
        raise ModelError(f"{field} must be one value per row, got shape {array.shape}")
    if rows is not None and len(array) != rows:
        raise ModelError(f"{field} has {len(array)} values but X has {rows} rows")
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ModelError(
            f"{field} has {int(bad.sum())} missing or infinite values (first at position {first})"
        )
    negative = array < 0
    if negative.any():
        first = int(np.flatnonzero(negative)[0])
        raise ModelError(
            f"{field} has {int(negative.sum())} negative values (first at position {first}: "
            f"{float(array[first])!r}); it is a time and must be ≥ 0"
        )
    return array


def _events(values: Any, rows: int) -> np.ndarray[Any, Any]:
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != rows:
        raise ModelError(f"event has shape {array.shape} but X has {rows} rows")
    try:
        numeric = array.astype(float)
    except (TypeError, ValueError):
        numeric = np.full(rows, np.nan)
    bad = ~np.isin(numeric, (0.0, 1.0))
    if bad.any():
        shown = sorted({str(v) for v in array[bad]})[:5]
        raise ModelError(
            f"event must be 0/1 or boolean (1 = churned, 0 = still a customer); "
            f"got {int(bad.sum())} other values, e.g. {', '.join(shown)}"
        )
    return numeric.astype(int)


class _FrameEncoder:
    """Turns a feature frame into the numeric design matrix learned on the training rows.

    Categorical columns (object, string, category) become one indicator per level
    except the most frequent, which is the reference: an unseen or missing level
    gets all zeros, i.e. is treated as the most common one. Numeric and boolean
    columns are kept, with missing values filled by the training median. Columns
    constant on the training rows carry no information for a Cox model and are dropped.
    """

    def fit(self, X: pd.DataFrame) -> Self:
        self.medians: dict[str, float] = {}
        self.levels: dict[str, list[Any]] = {}
        self.reference: dict[str, Any] = {}
        for column in X.columns:
            series = X[column]
            if pd.api.types.is_bool_dtype(series) or (
                pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_complex_dtype(series)
            ):
                self.medians[column] = float(series.astype(float).median())
            elif (
                pd.api.types.is_object_dtype(series)
                or pd.api.types.is_string_dtype(series)
                or isinstance(series.dtype, pd.CategoricalDtype)
            ):
                counts = series.value_counts(dropna=True)
                ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
                levels = [level for level, _ in ordered]
                if levels:
                    self.reference[column] = levels[0]
                self.levels[column] = levels[1:]
            else:
                raise ModelError(
                    f"column {column!r} has dtype {series.dtype}; features must be numbers, "
                    "booleans or categories",
                    hint="convert dates to numbers first, e.g. days since signup",
                )
        self.inputs = list(X.columns)
        full = self._encode(X)
        self.columns = [c for c in full.columns if full[c].nunique(dropna=False) > 1]
        self.dropped = [c for c in full.columns if c not in self.columns]
        return self

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.inputs if c not in X.columns]
        if missing:
            raise ModelError(
                f"X lacks {len(missing)} feature columns the model was fitted on: "
                f"{', '.join(map(repr, missing[:10]))}"
            )
        parts: dict[str, np.ndarray[Any, Any]] = {}
        for column in self.inputs:
            series = X[column]
            if column in self.medians:
                try:
                    values = pd.to_numeric(series, errors="raise").astype(float)
                except (TypeError, ValueError):
                    raise ModelError(
                        f"column {column!r} was numeric when the model was fitted but now "
                        f"holds non-numbers, e.g. {series.iloc[0]!r}"
                    ) from None
                median = self.medians[column]
                parts[column] = values.fillna(0.0 if math.isnan(median) else median).to_numpy()
            else:
                for level in self.levels[column]:
                    parts[f"{column}={level}"] = (series == level).to_numpy(dtype=float)
        return pd.DataFrame(parts, index=X.index)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._encode(X)[self.columns]


class ChurnSurvival(Estimator):
    """Cox proportional hazards for time to churn (lifelines ``CoxPHFitter``).

    *penalizer* is the L2 penalty on the coefficients (on standardised
    features); a little of it keeps the fit stable when indicator columns
    overlap, as "no internet service" levels do across several columns.
    """

    _fitted_attributes = ("coxph_", "encoder_")

    def __init__(self, penalizer: float = 0.1) -> None:
        self.penalizer = penalizer

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, duration: ArrayLike, event: ArrayLike) -> Self:
        """Fit on features *X*, time observed *duration* and *event* (1 = churned)."""
        from lifelines import CoxPHFitter
        from lifelines.exceptions import ConvergenceError, ConvergenceWarning

        if (
            isinstance(self.penalizer, bool)
            or not isinstance(self.penalizer, numbers.Real)
            or not self.penalizer >= 0
        ):
            raise ModelError(f"penalizer must be a number ≥ 0, got {self.penalizer!r}")
        X = _frame(X)
        if len(X) == 0:
            raise ModelError("X has no rows to fit on")
        durations = _numbers(duration, "duration", len(X))
        events = _events(event, len(X))
        if not events.any():
            raise ModelError(
                "event has no 1s: a survival model needs some observed churns to learn from"
            )
        encoder = _FrameEncoder().fit(X)
        if not encoder.columns:
            raise ModelError(
                f"no usable feature: every column of X ({', '.join(map(repr, X.columns))}) "
                "is constant on the training rows"
            )
        data = encoder.transform(X).assign(**{_DURATION: durations, _EVENT: events})
        fitter = CoxPHFitter(penalizer=float(self.penalizer))
        try:
            with warnings.catch_warnings():
                # lifelines warns about every column whose raw variance is below 1e-4,
                # then standardises the columns before fitting, so a feature on a small
                # scale (a rate in [0, 0.01]) does not harm convergence; the constant
                # columns the warning is meant for were dropped above. Separation and
                # convergence warnings still come through.
                warnings.filterwarnings(
                    "ignore",
                    message=r"Column\(s\) .* have very low variance\.",
                    category=ConvergenceWarning,
                )
                fitter.fit(data, duration_col=_DURATION, event_col=_EVENT)
        except ConvergenceError as error:
            raise ModelError(
                f"the Cox model did not converge: {str(error).splitlines()[0]}",
                hint="raise penalizer, or drop features that duplicate each other",
            ) from error
        baseline = fitter.baseline_cumulative_hazard_.iloc[:, 0]
        # from 0 at time 0, so times before the first training duration interpolate
        times = np.concatenate([[0.0], baseline.index.to_numpy(dtype=float)])
        hazard = np.concatenate([[0.0], baseline.to_numpy(dtype=float)])
        keep = np.concatenate([[True], times[1:] > 0])

        self.encoder_: _FrameEncoder = encoder
        self.coxph_: Any = fitter
        self.feature_names_in_: np.ndarray[Any, Any] = np.asarray(X.columns, dtype=object)
        self.n_features_in_: int = len(X.columns)
        self.design_columns_: list[str] = list(encoder.columns)
        self.dropped_columns_: list[str] = list(encoder.dropped)
        self.coef_: pd.Series = fitter.params_.copy()
        self.baseline_times_: np.ndarray[Any, Any] = times[keep]
        self.baseline_cumulative_hazard_: np.ndarray[Any, Any] = hazard[keep]
        self.max_duration_: float = float(durations.max())
        return self

    # -------------------------------------------------------------- predict
    def design_matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        """The numeric columns the Cox model sees for *X* (encoded and imputed)."""
        check_fitted(self)
        return self.encoder_.transform(_frame(X))

    def predict_log_partial_hazard(self, X: pd.DataFrame) -> pd.Series:
        """(x - mean x_train)·β per row: higher is riskier."""
        design = self.design_matrix(X)
        return self.coxph_.predict_log_partial_hazard(design).rename("log_partial_hazard")

    def _cumulative(self, times: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        hazard = np.interp(times, self.baseline_times_, self.baseline_cumulative_hazard_)
        return np.asarray(hazard, dtype=float)

    def predict_survival(self, X: pd.DataFrame, times: ArrayLike) -> pd.DataFrame:
        """P(still a customer at each of *times*): one row per row of X, one column per time."""
        at = _numbers(times, "times", None)
        risk = np.exp(self.predict_log_partial_hazard(X).to_numpy())
        survival = np.exp(-np.outer(risk, self._cumulative(at)))
        return pd.DataFrame(survival, index=X.index, columns=pd.Index(at, name="time"))

    def conditional_survival(
        self, X: pd.DataFrame, elapsed: ArrayLike | float, horizon: ArrayLike | float
    ) -> pd.Series:
        """S(elapsed + horizon) / S(elapsed) per row: still a customer *horizon* from now.

        *elapsed* and *horizon* are one number for all rows or one per row.
        """
        risk = np.exp(self.predict_log_partial_hazard(X).to_numpy())
        start = _numbers(elapsed, "elapsed", len(X))
        ahead = _numbers(horizon, "horizon", len(X))
        added = self._cumulative(start + ahead) - self._cumulative(start)
        return pd.Series(np.exp(-risk * added), index=X.index, name="conditional_survival")

    def predict_median_lifetime(self, X: pd.DataFrame) -> pd.Series:
        """The time at which survival falls to 0.5 per row; inf if not within the training span."""
        risk = np.exp(self.predict_log_partial_hazard(X).to_numpy())
        target = math.log(2) / risk  # S(t) = 0.5  ⇔  H0(t) = ln 2 / risk
        times, hazard = self.baseline_times_, self.baseline_cumulative_hazard_
        after = np.searchsorted(hazard, target, side="left")
        median = np.full(len(target), np.inf)
        inside = after < len(hazard)
        hi = after[inside]
        lo = hi - 1  # hazard[0] = 0 < target, so every hit has a predecessor
        share = (target[inside] - hazard[lo]) / (hazard[hi] - hazard[lo])
        median[inside] = times[lo] + share * (times[hi] - times[lo])
        return pd.Series(median, index=X.index, name="median_lifetime")

    # ---------------------------------------------------------------- score
    def score(self, X: pd.DataFrame, duration: ArrayLike, event: ArrayLike) -> float:
        """Harrell's concordance index of the predicted risk on (duration, event)."""
        from lifelines.utils import concordance_index

        risk = self.predict_log_partial_hazard(X).to_numpy()
        durations = _numbers(duration, "duration", len(X))
        events = _events(event, len(X))
        try:
            return float(concordance_index(durations, -risk, events))
        except ZeroDivisionError:
            raise ModelError(
                "no comparable pairs: the concordance index needs at least one churn "
                "that happened before another row's observed time"
            ) from None
