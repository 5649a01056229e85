"""Uplift: who a treatment helps, who it harms, and how well a model tells them apart.

On any randomized table (a campaign with a random holdout, an A/B test) — features
``X``, ``treatment`` 0/1 and an outcome ``y``:

- :class:`TLearner` and :class:`XLearner` estimate each row's treatment effect,
  ``E[y | treated, x] − E[y | control, x]``, with LightGBM by default;
- :func:`qini_curve`, :func:`qini_coefficient`, :func:`uplift_curve` and
  :func:`uplift_at_k` score how well an uplift estimate ranks rows on held-out data;
- :func:`expected_value` turns an effect into what targeting a row is worth, so a
  policy ranks by ``uplift × value − cost`` rather than by raw risk and leaves the
  sleeping dogs (negative effect) alone.

See docs/measure.md, "Uplift models".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tenure.errors import ModelError
from tenure.measure._uplift_learners import MIN_ROWS_PER_ARM, TLearner, XLearner
from tenure.measure._uplift_metrics import qini_coefficient, qini_curve, uplift_at_k, uplift_curve

__all__ = [
    "MIN_ROWS_PER_ARM",
    "TLearner",
    "XLearner",
    "expected_value",
    "qini_coefficient",
    "qini_curve",
    "uplift_at_k",
    "uplift_curve",
]


def expected_value(
    uplift: npt.ArrayLike, value: npt.ArrayLike, cost: npt.ArrayLike = 0.0
) -> npt.NDArray[np.float64]:
    """What treating each row is worth: ``uplift × value − cost``, elementwise.

    ``uplift`` is the effect on the outcome you want more of (the probability of
    staying, say: if the model was fitted on a churn flag, pass ``-model.predict(X)``),
    ``value`` what one unit of that outcome is worth (a customer's CLV) and ``cost``
    what one treatment costs; each is an array or a scalar, broadcast together. Rank by
    it, highest first, and treat only rows above zero: a negative effect (a sleeping
    dog) or an effect too small for its cost comes out below zero.
    """
    arrays = {}
    for name, given in (("uplift", uplift), ("value", value), ("cost", cost)):
        try:
            array = np.asarray(given, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ModelError(f"{name} must hold numbers; got {given!r:.80}") from error
        if not np.isfinite(array).all():
            raise ModelError(f"{name} must be finite; it holds NaN or infinity")
        arrays[name] = array
    try:
        result = arrays["uplift"] * arrays["value"] - arrays["cost"]
    except ValueError as error:
        shapes = ", ".join(f"{name} {a.shape}" for name, a in arrays.items())
        raise ModelError(f"uplift, value and cost do not broadcast together: {shapes}") from error
    return np.asarray(result, np.float64)
