"""The shifted-beta-geometric model of retention in a contractual setting."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, expit, hyp2f1

from tenure.errors import ModelError
from tenure.models.clv._base import (
    FloatArray,
    MaximumLikelihoodModel,
    as_customer_arrays,
    as_scalar,
    require_non_negative,
    require_whole,
)

__all__ = ["ShiftedBetaGeometric"]


class ShiftedBetaGeometric(MaximumLikelihoodModel):
    """sBG: shifted-beta-geometric model of customer retention (contract renewals).

    References: Fader, P. S. & Hardie, B. G. S. (2007), "How to Project Customer
    Retention", *Journal of Interactive Marketing* 21(1), 76-90; and for
    :meth:`discounted_expected_residual_lifetime`, Fader, P. S. & Hardie, B. G. S.
    (2010), "Customer-Base Valuation in a Contractual Setting: The Perils of Ignoring
    Heterogeneity", *Marketing Science* 29(1), 85-93.

    At the end of every period an active customer churns with probability θ, and
    θ ~ Beta(α, β) across customers. The customer's lifetime T (the period in which
    they churn) is then shifted-geometric given θ.

    **Time unit.** One contract period (a month, a year, …) is the unit: ``t`` counts
    whole periods, period 1 is the first one paid for, and ``discount_rate`` is per
    period. S(t) = P(T > t) is the probability of still being a customer after t
    periods (S(0) = 1).

    ``survival``, ``churn_probability`` and ``retention_rate`` return the shape of
    ``t``; ``params_`` has keys ``"alpha"``, ``"beta"``.
    """

    _param_names = ("alpha", "beta")

    def fit(self, survivors: npt.ArrayLike) -> Self:
        """Fit on one cohort: ``survivors[t]`` customers still active at the start of period t.

        ``survivors`` runs over t = 0, 1, …, n (e.g. ``[1000, 631, 468, …]``): whole
        numbers, not increasing. The n₀ − nₙ churners are exact observations; the nₙ
        still active are right-censored at n periods.
        """
        (counts,) = as_customer_arrays(survivors=survivors)
        if len(counts) < 2:
            raise ModelError(
                f"survivors needs the cohort size and at least one later count; "
                f"got {len(counts)} value(s)"
            )
        require_non_negative("survivors", counts)
        require_whole("survivors", counts)
        if counts[0] <= 0:
            raise ModelError(f"survivors[0] (the cohort size) must be > 0; got {counts[0]:g}")
        growth = np.flatnonzero(np.diff(counts) > 0)
        if growth.size:
            t = int(growth[0]) + 1
            raise ModelError(
                f"survivors must not increase; got survivors[{t}]={counts[t]:g} > "
                f"survivors[{t - 1}]={counts[t - 1]:g}"
            )
        periods = len(counts) - 1
        lifetimes = np.append(np.arange(1.0, periods + 1), periods)
        churned = np.append(np.ones(periods), 0.0)
        weights = np.append(-np.diff(counts), counts[-1])
        return self._fit_likelihood((lifetimes, churned), weights)

    def fit_durations(
        self,
        lifetimes: npt.ArrayLike,
        churned: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Fit on customers: periods each has been active, and whether they then churned.

        A churned customer with lifetime t left during period t (t ≥ 1); an active one
        has renewed t times so far and is right-censored (T > t).
        """
        periods, ended = as_customer_arrays(lifetimes=lifetimes, churned=churned)
        require_non_negative("lifetimes", periods)
        require_whole("lifetimes", periods)
        if not np.isin(ended, (0.0, 1.0)).all():
            position = int(np.flatnonzero(~np.isin(ended, (0.0, 1.0)))[0])
            raise ModelError(
                f"churned must be True/False (or 1/0); got {ended[position]:g} "
                f"at position {position}"
            )
        too_short = (ended == 1) & (periods < 1)
        if too_short.any():
            position = int(np.flatnonzero(too_short)[0])
            raise ModelError(
                f"lifetimes must be ≥ 1 for churned customers (period 1 is the first one "
                f"paid for); got {periods[position]:g} at position {position}"
            )
        if weights is None:
            w = np.ones_like(periods)
        else:
            w, _ = as_customer_arrays(weights=weights, lifetimes=periods)
            require_non_negative("weights", w)
        return self._fit_likelihood((periods, ended), w)

    # The search runs over (logit of the mean churn probability α/(α+β), log of the
    # concentration α+β). When customers churn alike, the likelihood keeps rising as
    # α+β grows with the mean fixed (the homogeneous, geometric limit): a ridge along
    # which an optimiser on (log α, log β) crawls until it runs out of iterations.
    # In this space the ridge is one bounded coordinate; at its bound (α+β = e^16 ≈ 9e6)
    # the Beta is a point mass for any purpose, and the fit converges there. The slope
    # along the ridge is so small that an optimiser may still stop partway (how far
    # depends on the scipy version): a second start at the bound, the geometric limit,
    # finds the limit whenever it is the better fit.
    def _search_start(self, data: tuple[FloatArray, ...], weights: FloatArray) -> FloatArray:
        t, churned = data
        exposure = float(weights @ np.maximum(t, 1.0))
        rate = float(weights @ churned) / exposure if exposure > 0 else 0.5
        rate = min(max(rate, 1e-4), 1 - 1e-4)
        return np.array([np.log(rate / (1 - rate)), 0.0])

    def _search_starts(self, data: tuple[FloatArray, ...], weights: FloatArray) -> list[FloatArray]:
        start = self._search_start(data, weights)
        at_limit = start.copy()
        at_limit[1] = self._search_bounds()[1][1]
        return [start, at_limit]

    def _search_bounds(self) -> list[tuple[float, float]]:
        return [(-30.0, 30.0), (-20.0, 16.0)]

    def _params_at(self, point: FloatArray) -> FloatArray:
        mean = expit(point[0])
        concentration = np.exp(point[1])
        return np.array([mean * concentration, (1 - mean) * concentration])

    def _log_likelihood_terms(self, params: FloatArray, data: tuple[FloatArray, ...]) -> FloatArray:
        alpha, beta = params
        t, churned = data
        # P(T = t) = B(α + 1, β + t − 1) / B(α, β);  S(t) = B(α, β + t) / B(α, β)
        t_churned = np.maximum(t, 1.0)
        log_churn = betaln(alpha + 1, beta + t_churned - 1)
        log_survive = betaln(alpha, beta + t)
        result: FloatArray = np.where(churned == 1, log_churn, log_survive) - betaln(alpha, beta)
        return result

    def _periods(self, name: str, t: npt.ArrayLike, minimum: int) -> tuple[FloatArray, FloatArray]:
        """Fitted (α, β) and ``t`` as whole periods ≥ ``minimum``, flattened."""
        params = self._fitted_param_array()
        (periods,) = as_customer_arrays(**{name: np.ravel(np.asarray(t, dtype=np.float64))})
        require_whole(name, periods)
        if (periods < minimum).any():
            position = int(np.flatnonzero(periods < minimum)[0])
            raise ModelError(
                f"{name} must be ≥ {minimum} periods; got {periods[position]:g} "
                f"at position {position}"
            )
        return params, periods

    def survival(self, t: npt.ArrayLike) -> FloatArray:
        """S(t) = P(T > t): probability of still being a customer after t periods."""
        (alpha, beta), periods = self._periods("t", t, minimum=0)
        result = np.exp(betaln(alpha, beta + periods) - betaln(alpha, beta))
        return np.asarray(result, dtype=np.float64).reshape(np.shape(t))

    def churn_probability(self, t: npt.ArrayLike) -> FloatArray:
        """P(T = t): probability that a new customer churns in period t (t ≥ 1)."""
        (alpha, beta), periods = self._periods("t", t, minimum=1)
        result = np.exp(betaln(alpha + 1, beta + periods - 1) - betaln(alpha, beta))
        return np.asarray(result, dtype=np.float64).reshape(np.shape(t))

    def retention_rate(self, t: npt.ArrayLike) -> FloatArray:
        """r_t = S(t) / S(t − 1) = (β + t − 1) / (α + β + t − 1): renewal rate in period t ≥ 1."""
        (alpha, beta), periods = self._periods("t", t, minimum=1)
        result = (beta + periods - 1) / (alpha + beta + periods - 1)
        return np.asarray(result, dtype=np.float64).reshape(np.shape(t))

    def discounted_expected_residual_lifetime(
        self, renewals: npt.ArrayLike, discount_rate: float
    ) -> FloatArray:
        """DERL: expected discounted number of future payments of an active customer.

        For a customer who has renewed n times (so has paid n + 1 periods) and is about
        to make their next renewal decision,

        DERL(d | n) = Σ_{k≥0} S(n + 1 + k) / S(n) / (1 + d)^k
                    = (β + n)/(α + β + n) · ₂F₁(1, β + n + 1; α + β + n + 1; 1/(1 + d))

        (Fader & Hardie 2010, eq. 6): the next payment counts undiscounted, weighted by
        the probability of renewing. ``discount_rate`` d is per period; with d = 0 the
        sum is the undiscounted expected residual lifetime, infinite when α ≤ 1.
        Multiply by the margin per period for the customer's residual value.

        ``renewals`` is one count per customer (or a scalar); the result is 1-D.
        """
        params, periods = self._periods("renewals", renewals, minimum=0)
        alpha, beta = params
        d = as_scalar("discount_rate", discount_rate)
        if d < 0:
            raise ModelError(f"discount_rate must be ≥ 0 per period; got {d:g}")
        renew = (beta + periods) / (alpha + beta + periods)
        result = renew * hyp2f1(1.0, beta + periods + 1, alpha + beta + periods + 1, 1 / (1 + d))
        return np.asarray(result, dtype=np.float64)
