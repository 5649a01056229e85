"""The gamma-gamma model of the monetary value of repeat transactions."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln

from tenure.errors import ModelError
from tenure.models._base import check_fitted
from tenure.models.clv._base import (
    FloatArray,
    MaximumLikelihoodModel,
    as_customer_arrays,
    as_scalar,
    require_non_negative,
    require_positive,
    require_whole,
)
from tenure.models.clv.bgnbd import BetaGeo, validate_rfm

__all__ = ["GammaGamma"]


class GammaGamma(MaximumLikelihoodModel):
    """Gamma-gamma model of average transaction value.

    Reference: Fader, P. S. & Hardie, B. G. S. (2013), "The Gamma-Gamma Model of
    Monetary Value", note at brucehardie.com (the model of Colombo & Jiang 1999, as
    used in Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for
    Customer Base Analysis", *Journal of Marketing Research* 42(4)).

    A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, γ) across
    customers, independent of the purchase process. Each customer is summarised by
    ``frequency`` (x, the number of repeat transactions) and ``monetary_value`` (z̄,
    the mean value of those x transactions).

    **Fitting uses repeat customers only.** A customer with x = 0 has no repeat
    transaction to average, so ``fit`` rejects frequency 0 with a
    :class:`~tenure.errors.ModelError` rather than dropping rows silently; pass
    ``summary[summary.frequency > 0]``. Predictions accept x = 0: such a customer's
    expected spend is the population mean p·γ/(q − 1) and ``monetary_value`` is
    ignored.

    **Units.** γ is in the currency of ``monetary_value``; the model has no time unit.
    :meth:`customer_lifetime_value` works in the time unit of the BG/NBD it is given.

    Per-customer inputs are scalars or equal-length 1-D arrays; results are 1-D.

    ``params_`` has keys ``"p"``, ``"q"``, ``"gamma"``.
    """

    _param_names = ("p", "q", "gamma")

    def fit(
        self,
        frequency: npt.ArrayLike,
        monetary_value: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Estimate p, q, γ by maximum likelihood on repeat customers (frequency ≥ 1)."""
        x, z = _validate_spend(frequency, monetary_value)
        if (x == 0).any():
            count = int((x == 0).sum())
            position = int(np.flatnonzero(x == 0)[0])
            raise ModelError(
                f"frequency must be ≥ 1 to fit GammaGamma (repeat customers only); got 0 "
                f"for {count} customers, first at position {position}",
                hint="fit on summary[summary.frequency > 0]",
            )
        require_positive("monetary_value", z)
        if weights is None:
            w = np.ones_like(x)
        else:
            w, _ = as_customer_arrays(weights=weights, frequency=x)
            require_non_negative("weights", w)
        return self._fit_likelihood((x, z), w)

    def _log_likelihood_terms(self, params: FloatArray, data: tuple[FloatArray, ...]) -> FloatArray:
        p, q, gamma = params
        x, z = data
        # Density of the mean z̄ of x Gamma(p, ν) values, ν ~ Gamma(q, γ) integrated out.
        result: FloatArray = (
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(gamma)
            + p * x * np.log(x)
            + (p * x - 1) * np.log(z)
            - (p * x + q) * np.log(gamma + x * z)
        )
        return result

    def _log_likelihood_gradient(
        self, params: FloatArray, data: tuple[FloatArray, ...]
    ) -> FloatArray:
        p, q, gamma = params
        x, z = data
        shared = digamma(p * x + q)
        scale = np.log(gamma + x * z)
        d_p = x * (shared - digamma(p * x) + np.log(x) + np.log(z) - scale)
        d_q = shared - digamma(q) + np.log(gamma) - scale
        d_gamma = q / gamma - (p * x + q) / (gamma + x * z)
        # with respect to the log-parameters: d/d log θ = θ · d/dθ
        result: FloatArray = np.column_stack([p * d_p, q * d_q, gamma * d_gamma])
        return result

    def conditional_expected_average_spend(
        self, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
    ) -> FloatArray:
        """E[Z | x, z̄]: each customer's expected value per transaction.

        A weighted mean of the population mean p·γ/(q − 1) and the customer's own
        z̄: p(γ + x z̄)/(p x + q − 1). Customers with x = 0 get the population mean,
        which is infinite when q ≤ 1.
        """
        check_fitted(self)
        x, z = _validate_spend(frequency, monetary_value)
        return self._expected_spend(x, z)

    def _expected_spend(self, x: FloatArray, z: FloatArray) -> FloatArray:
        p, q, gamma = self._fitted_param_array()
        z = np.where(x > 0, z, 0.0)
        denominator = p * x + q - 1
        result: FloatArray = np.divide(
            p * (gamma + x * z),
            denominator,
            out=np.full_like(x, np.inf),
            where=denominator > 0,
        )
        return result

    def customer_lifetime_value(
        self,
        transaction_model: BetaGeo,
        frequency: npt.ArrayLike,
        recency: npt.ArrayLike,
        T: npt.ArrayLike,
        monetary_value: npt.ArrayLike,
        *,
        horizon: float,
        discount_rate: float,
        step: float = 1.0,
        margin: float = 1.0,
    ) -> FloatArray:
        """Discounted value of each customer's purchases over the next ``horizon``.

        CLV = margin · E[Z | x, z̄] · Σₖ (E[Y(tₖ)] − E[Y(tₖ₋₁)]) / (1 + discount_rate)^tₖ

        with E[Y(t)] the fitted BG/NBD's conditional expected purchases in (T, T + t]
        and t₀ = 0 < t₁ < … the ends of consecutive intervals of length ``step`` up to
        ``horizon`` (the last interval may be shorter). Purchases in an interval are
        discounted from its end.

        **Units.** ``recency``, ``T``, ``horizon`` and ``step`` are in the time unit the
        BG/NBD was fitted in, and ``discount_rate`` is per that unit: with weekly data
        and a 10 % annual rate pass ``discount_rate=1.10 ** (1 / 52) - 1`` and
        ``horizon=52`` for one year. ``margin`` is the fraction of spend kept (1 =
        revenue). The result is in the currency of ``monetary_value``.
        """
        check_fitted(self)
        x, t_x, age = validate_rfm(frequency, recency, T)
        _, z = _validate_spend(x, monetary_value)
        horizon = as_scalar("horizon", horizon)
        step = as_scalar("step", step)
        discount_rate = as_scalar("discount_rate", discount_rate)
        margin = as_scalar("margin", margin)
        if horizon <= 0:
            raise ModelError(f"horizon must be > 0 (in the BG/NBD's time unit); got {horizon:g}")
        if step <= 0:
            raise ModelError(f"step must be > 0 (in the BG/NBD's time unit); got {step:g}")
        if discount_rate < 0:
            raise ModelError(f"discount_rate must be ≥ 0 per time unit; got {discount_rate:g}")
        check_fitted(transaction_model)

        ends = np.append(np.arange(1, np.ceil(horizon / step)) * step, horizon)
        cumulative = transaction_model._conditional_expected_purchases(
            ends[:, np.newaxis], x, t_x, age
        )
        per_interval = np.diff(cumulative, axis=0, prepend=0.0)
        discount = (1 + discount_rate) ** -ends
        discounted_purchases: FloatArray = discount @ per_interval
        result: FloatArray = margin * self._expected_spend(x, z) * discounted_purchases
        return result


def _validate_spend(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    x, z = as_customer_arrays(frequency=frequency, monetary_value=monetary_value)
    require_non_negative("frequency", x)
    require_whole("frequency", x)
    require_non_negative("monetary_value", z)
    return x, z
