"""How good a probability is: ranking, calibration and lift, for any binary score.

:func:`classification_report` gathers the numbers every churn and propensity model
is judged by into one :class:`ClassificationMetrics`. Ranking metrics and the Brier
score come from :mod:`sklearn.metrics`; scikit-learn has no expected calibration
error, so :func:`expected_calibration_error` is computed here from its textbook
definition, and :func:`lift_at` likewise.

Outcomes are 0/1 (or booleans) with 1 the event being predicted (churn, win, …);
probabilities are the predicted chance of that event.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from tenure.errors import ModelError

__all__ = [
    "ClassificationMetrics",
    "classification_report",
    "expected_calibration_error",
    "lift_at",
]

BinStrategy = Literal["quantile", "uniform"]

_FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassificationMetrics:
    """The scores of a binary probability on one labelled sample.

    ``roc_auc`` and ``pr_auc`` (average precision) measure ranking, ``brier`` and
    ``ece`` (10 quantile bins) calibration, ``top_decile_lift`` how much richer in
    events the top 10 % of scores is than the whole sample, whose event rate is
    ``base_rate`` over ``n`` rows.
    """

    roc_auc: float
    pr_auc: float
    brier: float
    ece: float
    top_decile_lift: float
    base_rate: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """The scores by name, as floats (for a registry's metrics column)."""
        return {name: float(value) for name, value in dataclasses.asdict(self).items()}


def classification_report(y_true: ArrayLike, p: ArrayLike) -> ClassificationMetrics:
    """Score probabilities ``p`` of the event against the outcomes ``y_true`` (0/1).

    Both outcomes must occur in ``y_true``; otherwise ranking is undefined and a
    :class:`~tenure.errors.ModelError` says so.
    """
    y, prob = _check_scores(y_true, p)
    if y.min() == y.max():
        raise ModelError(
            f"y_true holds only the outcome {int(y[0])} across {y.size} rows; "
            "ranking metrics need both outcomes (0 and 1)"
        )
    return ClassificationMetrics(
        roc_auc=float(roc_auc_score(y, prob)),
        pr_auc=float(average_precision_score(y, prob)),
        brier=float(brier_score_loss(y, prob)),
        ece=expected_calibration_error(y, prob),
        top_decile_lift=lift_at(y, prob, 0.1),
        base_rate=float(y.mean()),
        n=int(y.size),
    )


def expected_calibration_error(
    y_true: ArrayLike,
    p: ArrayLike,
    n_bins: int = 10,
    strategy: BinStrategy = "quantile",
) -> float:
    """Expected calibration error: the row-weighted mean over bins of |mean(p) − mean(y)|.

    With ``strategy="quantile"`` (the default) the bin edges are the quantiles of
    ``p``, so bins hold about equally many rows; with ``"uniform"`` they split
    [0, 1] into ``n_bins`` equal widths. A bin is the half-open interval
    (lower, upper], the first one also holding its lower edge. Empty bins (from
    tied quantiles, or uniform bins nobody falls in) carry no weight.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ModelError(f"n_bins must be a whole number ≥ 1 (got {n_bins!r})")
    y, prob = _check_scores(y_true, p)
    if strategy == "quantile":
        edges = np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ModelError(f"strategy must be 'quantile' or 'uniform' (got {strategy!r})")
    bins = np.searchsorted(edges[1:-1], prob, side="left")
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    p_sums = np.bincount(bins, weights=prob, minlength=n_bins)
    y_sums = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(p_sums[filled] - y_sums[filled]) / counts[filled]
    return float(np.sum(gaps * counts[filled]) / y.size)


def lift_at(y_true: ArrayLike, p: ArrayLike, fraction: float = 0.1) -> float:
    """The event rate among the top ``fraction`` of rows by ``p``, over the overall rate.

    The top is the ``round(fraction × n)`` highest scores (at least one row); ties
    at the cut are broken by position, earlier rows first. 2.0 means the top
    slice holds events twice as often as the whole sample.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ModelError(f"fraction must be a number in (0, 1] (got {fraction!r})")
    if not 0.0 < fraction <= 1.0:
        raise ModelError(f"fraction must be in (0, 1] (got {fraction!r})")
    y, prob = _check_scores(y_true, p)
    base_rate = y.mean()
    if base_rate == 0.0:
        raise ModelError("y_true holds no events (all 0), so lift is undefined")
    top = max(1, round(fraction * y.size))
    order = np.argsort(-prob, kind="stable")
    return float(y[order[:top]].mean() / base_rate)


def _check_scores(y_true: ArrayLike, p: ArrayLike) -> tuple[_FloatArray, _FloatArray]:
    """Outcomes and probabilities as float arrays, or a ModelError saying what is wrong."""
    y = np.asarray(y_true)
    prob = np.asarray(p)
    if y.ndim != 1 or prob.ndim != 1:
        raise ModelError(
            f"y_true and p must be one-dimensional (got shapes {y.shape} and {prob.shape})"
        )
    if y.size != prob.size:
        raise ModelError(f"y_true has {y.size} rows but p has {prob.size}; they must match")
    if y.size == 0:
        raise ModelError("y_true and p are empty; metrics need at least one row")
    if y.dtype == np.bool_:
        y = y.astype(np.float64)
    if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
        shown = [v for v in np.unique(y.astype(object)) if v not in (0, 1)][:5]
        raise ModelError(f"y_true must hold only 0 and 1 (or booleans); found {shown}")
    if not np.issubdtype(prob.dtype, np.number) or np.issubdtype(prob.dtype, np.complexfloating):
        raise ModelError(f"p must be numbers in [0, 1] (got dtype {prob.dtype})")
    prob = prob.astype(np.float64)
    outside = ~((prob >= 0.0) & (prob <= 1.0))  # also catches NaN
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        value = prob[first]
        raise ModelError(
            f"p must be probabilities in [0, 1]; row {first} is "
            f"{'NaN' if math.isnan(value) else value}"
        )
    return y.astype(np.float64), prob
