"""How well a score ranks customers by their response to a treatment: Qini and uplift@k.

All metrics take the observed outcome ``y``, the randomized ``treatment`` (0/1) and a
score ``uplift`` (the predicted effect, or anything to rank by) and order rows by the
score, highest first. They agree with scikit-uplift's ``qini_curve``,
``qini_auc_score``, ``uplift_curve`` and ``uplift_at_k(strategy=...)`` to rounding
(the tests check it), and accept continuous outcomes as well as binary ones.

Ties: the curves keep one point per distinct score, at the end of its run of tied
rows, so the order within a tie cannot move them. ``uplift_at_k`` cuts at a row count
and so has to order ties: tied rows go in *reverse* row order (a stable ascending sort,
reversed), which is scikit-uplift's order, so the two give the same figure.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tenure.errors import ModelError

__all__ = ["qini_coefficient", "qini_curve", "uplift_at_k", "uplift_curve"]

_FloatArray = npt.NDArray[np.float64]


def qini_curve(
    y: npt.ArrayLike, treatment: npt.ArrayLike, uplift: npt.ArrayLike
) -> tuple[_FloatArray, _FloatArray]:
    """The Qini curve of ``uplift``: incremental outcomes among the top-scored rows.

    Rows are sorted by ``uplift``, highest first. After the top ``k`` rows, with
    ``N_T(k)``/``N_C(k)`` treated/control rows among them whose outcomes sum to
    ``Y_T(k)``/``Y_C(k)``::

        Q(k) = Y_T(k) − Y_C(k) · N_T(k) / N_C(k)        (Q(k) = Y_T(k) while N_C(k) = 0)

    the treated outcomes in excess of what the control rate predicts for as many rows:
    for a binary outcome, the incremental responders of targeting the top ``k``.

    Returns ``(x, qini)``: ``x`` the number of rows targeted (not a fraction), from 0
    to ``n``, with one point per distinct score (at the end of its run of ties) after
    the starting point ``(0, 0)``; ``qini`` is in the outcome's units, not normalized.
    """
    y_, t, score = _check_inputs(y, treatment, uplift)
    return _qini_points(y_, t, score)


def qini_coefficient(y: npt.ArrayLike, treatment: npt.ArrayLike, uplift: npt.ArrayLike) -> float:
    """The Qini coefficient of ``uplift``: its area above random targeting, relative to the best.

    With ``A(s)`` the trapezoidal area under the Qini curve (:func:`qini_curve`) of a
    score ``s``, on ``x`` = rows targeted, and ``R`` the area under the straight line
    from ``(0, 0)`` to ``(n, Q(n))`` (random targeting; every curve ends at ``Q(n)``)::

        qini_coefficient = (A(uplift) − R) / (A(perfect) − R)

    where ``perfect`` is the ordering that knows the outcomes: treated rows by ``y``
    highest first, then control rows by ``y`` lowest first (the score ``y`` for treated
    and ``−y`` for control rows; for a binary outcome, treated responders first and
    control responders last). This is scikit-uplift's ``qini_auc_score`` with
    ``negative_effect=True``; it is 1 for the perfect ordering, about 0 for a random
    score and negative for one ranked backwards. Because it is a ratio of areas it does
    not depend on whether ``x`` is counted in rows or as a fraction. It can exceed 1 for
    continuous outcomes, where that ordering is a reference rather than the optimum.

    Raises :class:`~tenure.errors.ModelError` when the perfect curve has no area above
    the random line (for example a constant outcome), as the ratio is then undefined.
    """
    y_, t, score = _check_inputs(y, treatment, uplift)
    x, q = _qini_points(y_, t, score)
    px, pq = _qini_points(y_, t, np.where(t, y_, -y_))
    random_area = 0.5 * float(px[-1]) * float(pq[-1])
    perfect_gain = _area(px, pq) - random_area
    if not perfect_gain > 0:
        raise ModelError(
            "the Qini coefficient is undefined here: even the perfect ordering gains no area "
            f"over random targeting (its excess area is {perfect_gain:g}); the outcome may be "
            "constant or the arms' outcomes may not differ",
            hint="check y and treatment, or compare Qini curves instead",
        )
    return (_area(x, q) - random_area) / perfect_gain


def uplift_curve(
    y: npt.ArrayLike, treatment: npt.ArrayLike, uplift: npt.ArrayLike
) -> tuple[_FloatArray, _FloatArray]:
    """The uplift curve of ``uplift``: ``(mean_T(k) − mean_C(k)) · k`` among the top ``k`` rows.

    Like :func:`qini_curve` (same ``x``, same ties) but the difference of the arms'
    mean outcomes, scaled to ``k`` rows; an arm with no rows yet counts as mean 0.
    """
    y_, t, score = _check_inputs(y, treatment, uplift)
    ends, n_t, y_t, n_c, y_c = _cumulative(y_, t, score)
    mean_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    mean_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return np.r_[0.0, ends], np.r_[0.0, (mean_t - mean_c) * ends]


def uplift_at_k(
    y: npt.ArrayLike,
    treatment: npt.ArrayLike,
    uplift: npt.ArrayLike,
    k: float,
    *,
    strategy: Literal["overall", "by_group"] = "overall",
) -> float:
    """The observed uplift among the ``k`` top-scored rows: mean treated minus mean control outcome.

    ``k`` is a fraction of the rows in (0, 1] (``int(n · k)`` rows) or a whole number of
    rows in 1..n. With ``strategy="overall"`` (the default) the top ``k`` of all rows
    are taken and the two arms compared within them; with ``"by_group"`` the top ``k``
    of each arm separately (a fraction of that arm, or ``k`` rows of each). The same as
    scikit-uplift's ``uplift_at_k`` with that strategy (which takes ``k`` below 1 and
    below ``n`` only).
    """
    y_, t, score = _check_inputs(y, treatment, uplift)
    n = y_.size
    if strategy not in ("overall", "by_group"):
        raise ModelError(f"strategy must be 'overall' or 'by_group'; got {strategy!r}")
    order = np.argsort(score, kind="mergesort")[::-1]
    y_sorted, t_sorted = y_[order], t[order]
    if strategy == "overall":
        top = _top_count(k, n, "rows")
        treated, control = y_sorted[:top][t_sorted[:top]], y_sorted[:top][~t_sorted[:top]]
        where = f"the top {top} rows (k={k!r})"
    else:
        treated_all, control_all = y_sorted[t_sorted], y_sorted[~t_sorted]
        treated = treated_all[: _top_count(k, treated_all.size, "treated rows")]
        control = control_all[: _top_count(k, control_all.size, "control rows")]
        where = f"the top k={k!r} of each arm"
    for rows, arm in ((treated, "treated"), (control, "control")):
        if rows.size == 0:
            raise ModelError(
                f"{where} hold no {arm} row, so their uplift is undefined",
                hint="raise k, or use strategy='by_group'",
            )
    return float(treated.mean() - control.mean())


# ------------------------------------------------------------------ internals


def _top_count(k: object, n: int, what: str) -> int:
    """How many of ``n`` rows ``k`` names: a fraction in (0, 1] or a count in 1..n."""
    if isinstance(k, bool | np.bool_) or not isinstance(k, numbers.Real):
        raise ModelError(f"k must be a fraction in (0, 1] or a whole number of rows; got {k!r}")
    if isinstance(k, numbers.Integral):
        if not 1 <= int(k) <= n:
            raise ModelError(f"k={k} rows is outside 1..{n}, the number of {what}")
        return int(k)
    if not 0 < float(k) <= 1:
        raise ModelError(f"k as a fraction must be in (0, 1]; got {k!r}")
    count = int(n * float(k))
    if count == 0:
        raise ModelError(f"k={k!r} of {n} {what} is no row; raise k")
    return count


def _as_vector(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
    if array.ndim != 1:
        raise ModelError(f"{name} must be one-dimensional; got shape {array.shape}")
    try:
        numbers_ = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{name} must hold numbers; got dtype {array.dtype}") from error
    bad = np.flatnonzero(~np.isfinite(numbers_))
    if bad.size:
        raise ModelError(
            f"{name} must be finite; rows {bad[:5].tolist()} hold {numbers_[bad[:5]].tolist()}"
        )
    return np.asarray(numbers_, np.float64)


def _check_treatment(values: npt.ArrayLike, rows: int, against: str) -> npt.NDArray[np.bool_]:
    """``treatment`` as booleans: exactly 0/1 (or booleans), ``rows`` long, both arms present."""
    t = _as_vector(values, "treatment")
    if t.size != rows:
        raise ModelError(f"treatment has {t.size} rows but {against} has {rows}; they must match")
    bad = np.flatnonzero((t != 0) & (t != 1))
    if bad.size:
        raise ModelError(
            f"treatment must be 0 (control) or 1 (treated); rows {bad[:5].tolist()} hold "
            f"{t[bad[:5]].tolist()}"
        )
    treated = np.asarray(t == 1, dtype=np.bool_)
    if treated.all() or not treated.any():
        arm = "treated" if treated.any() else "control"
        raise ModelError(
            f"treatment holds only the {arm} arm ({rows} rows); uplift needs both arms",
            hint="include the randomized holdout (control) rows as well as the treated ones",
        )
    return treated


def _check_inputs(
    y: npt.ArrayLike, treatment: npt.ArrayLike, uplift: npt.ArrayLike
) -> tuple[_FloatArray, npt.NDArray[np.bool_], _FloatArray]:
    y_ = _as_vector(y, "y")
    score = _as_vector(uplift, "uplift")
    if score.size != y_.size:
        raise ModelError(f"uplift has {score.size} rows but y has {y_.size}; they must match")
    if y_.size == 0:
        raise ModelError("y is empty; the metrics need rows")
    t = _check_treatment(treatment, y_.size, "y")
    return y_, t, score


def _cumulative(
    y: _FloatArray, t: npt.NDArray[np.bool_], score: _FloatArray
) -> tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray, _FloatArray]:
    """Per distinct score, highest first: rows so far, and treated/control counts and sums."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y, t, score = y[order], t[order], score[order]
    ends = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    treated = t.astype(np.float64)
    n_t = np.cumsum(treated)[ends]
    y_t = np.cumsum(y * treated)[ends]
    y_c = np.cumsum(y * (1.0 - treated))[ends]
    rows = (ends + 1).astype(np.float64)
    return rows, n_t, y_t, rows - n_t, y_c


def _qini_points(
    y: _FloatArray, t: npt.NDArray[np.bool_], score: _FloatArray
) -> tuple[_FloatArray, _FloatArray]:
    rows, n_t, y_t, n_c, y_c = _cumulative(y, t, score)
    scaled = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return np.r_[0.0, rows], np.r_[0.0, y_t - y_c * scaled]


def _area(x: _FloatArray, q: _FloatArray) -> float:
    return float(np.sum(np.diff(x) * (q[1:] + q[:-1])) / 2.0)
