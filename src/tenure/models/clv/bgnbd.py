"""The BG/NBD model of repeat purchasing in a non-contractual setting."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, expit, gammaln, hyp2f1

from tenure.errors import ModelError
from tenure.models.clv._base import (
    FloatArray,
    MaximumLikelihoodModel,
    as_customer_arrays,
    require_at_most,
    require_non_negative,
    require_whole,
)

__all__ = ["BetaGeo"]


def validate_rfm(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, T: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Frequency, recency and T as arrays, checked against what the BG/NBD assumes."""
    x, t_x, age = as_customer_arrays(frequency=frequency, recency=recency, T=T)
    require_non_negative("frequency", x)
    require_whole("frequency", x)
    require_non_negative("recency", t_x)
    require_non_negative("T", age)
    require_at_most("recency", t_x, "T", age)
    no_repeat = (x == 0) & (t_x != 0)
    if no_repeat.any():
        position = int(np.flatnonzero(no_repeat)[0])
        raise ModelError(
            f"recency must be 0 where frequency is 0 (no repeat purchase, so no last "
            f"repeat purchase); got recency={t_x[position]:g} at position {position}"
        )
    return x, t_x, age


class BetaGeo(MaximumLikelihoodModel):
    """BG/NBD: beta-geometric / negative binomial distribution model of repeat purchases.

    Reference: Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "'Counting Your
    Customers' the Easy Way: An Alternative to the Pareto/NBD Model", *Marketing
    Science* 24(2), 275-284.

    While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after
    each purchase they drop out with probability p ~ Beta(a, b). Each customer is
    summarised by

    * ``frequency`` (x): number of *repeat* purchases (purchase days after the first),
    * ``recency`` (t_x): time from the first purchase to the last one (0 if x = 0),
    * ``T``: time from the first purchase to the end of the observation period,

    as :func:`~tenure.models.clv.rfm_summary` produces them.

    **Time unit.** The model has no unit of its own: ``recency``, ``T`` and every ``t``
    passed to the expectation functions must use the same one (weeks in the CDNOW
    application), and α is a time in that unit.

    Per-customer functions take scalars or equal-length 1-D arrays and return a 1-D
    array; :meth:`expected_purchases` returns the shape of ``t``.

    ``params_`` has keys ``"r"``, ``"alpha"``, ``"a"``, ``"b"``. Parameters of
    ``__init__`` (``penalizer``, ``tol``, ``max_iter``) are those of the shared
    maximum-likelihood fit; ``log_likelihood_`` is the log-likelihood of the training
    data.
    """

    _param_names = ("r", "alpha", "a", "b")

    def fit(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Estimate r, α, a, b by maximum likelihood; ``weights`` count identical customers."""
        x, t_x, age = validate_rfm(frequency, recency, T)
        if weights is None:
            w = np.ones_like(x)
        else:
            w, _ = as_customer_arrays(weights=weights, frequency=x)
            require_non_negative("weights", w)
        return self._fit_likelihood((x, t_x, age), w)

    def _log_likelihood_terms(self, params: FloatArray, data: tuple[FloatArray, ...]) -> FloatArray:
        r, alpha, a, b = params
        x, t_x, age = data
        # Fader, Hardie & Lee (2005), eq. (6), with the bracket summed in log space.
        common = betaln(a, b + x) - betaln(a, b) + gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        still_alive = -(r + x) * np.log(alpha + age)
        repeaters = x > 0
        x_safe = np.maximum(x, 1.0)  # the dropped-out term exists only for x > 0
        dropped_out = np.log(a) - np.log(b + x_safe - 1) - (r + x) * np.log(alpha + t_x)
        dropped_out = np.where(repeaters, dropped_out, -np.inf)
        result: FloatArray = common + np.logaddexp(still_alive, dropped_out)
        return result

    def _log_dropout_odds(self, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
        """log of P(dropped out after the last purchase) / P(alive), for x > 0 rows."""
        r, alpha, a, b = self._fitted_param_array()
        x_safe = np.maximum(x, 1.0)
        log_odds: FloatArray = (
            np.log(a)
            - np.log(b + x_safe - 1)
            + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
        )
        return np.where(x > 0, log_odds, -np.inf)

    def probability_alive(
        self,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
    ) -> FloatArray:
        """P(alive at T | x, t_x, T) for each customer (eq. 12 of the paper).

        A customer with no repeat purchase is alive with probability 1: in the BG/NBD a
        customer can only drop out right after a purchase.
        """
        x, t_x, age = validate_rfm(frequency, recency, T)
        result: FloatArray = expit(-self._log_dropout_odds(x, t_x, age))
        return result

    def expected_purchases(self, t: npt.ArrayLike) -> FloatArray:
        """E[X(t)]: expected repeat purchases of a new customer in (0, t] (eq. 7).

        ``t`` may have any shape; the result has the same shape.
        """
        r, alpha, a, b = self._fitted_param_array()
        times = np.asarray(t, dtype=np.float64)
        (flat,) = as_customer_arrays(t=times.ravel())
        require_non_negative("t", flat)
        ratio = np.exp(r * (np.log(alpha) - np.log(alpha + flat)))
        hyper = hyp2f1(r, b, a + b - 1, flat / (alpha + flat))
        result: FloatArray = (a + b - 1) / (a - 1) * (1 - ratio * hyper)
        return result.reshape(times.shape)

    def conditional_expected_purchases(
        self,
        t: npt.ArrayLike,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T + t] (eq. 10).

        ``t`` is a scalar or one value per customer, in the model's time unit.
        """
        x, t_x, age = validate_rfm(frequency, recency, T)
        horizon, _ = as_customer_arrays(t=t, frequency=x)
        require_non_negative("t", horizon)
        return self._conditional_expected_purchases(horizon, x, t_x, age)

    def _conditional_expected_purchases(
        self, t: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
    ) -> FloatArray:
        """Eq. (10) on validated arrays that broadcast against each other."""
        r, alpha, a, b = self._fitted_param_array()
        ratio = np.exp((r + x) * (np.log(alpha + age) - np.log(alpha + age + t)))
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
        if_alive = (a + b + x - 1) / (a - 1) * (1 - ratio * hyper)
        result: FloatArray = if_alive * expit(-self._log_dropout_odds(x, t_x, age))
        return result
