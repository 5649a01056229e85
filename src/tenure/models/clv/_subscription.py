"""Customer lifetime value of subscribers, from a fitted sBG retention model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tenure.models.clv._base import (
    FloatArray,
    as_customer_arrays,
    as_scalar,
    require_at_most,
    require_non_negative,
)
from tenure.models.clv.sbg import ShiftedBetaGeometric

__all__ = ["subscription_clv"]


def subscription_clv(
    model: ShiftedBetaGeometric,
    renewals: npt.ArrayLike,
    revenue_per_period: npt.ArrayLike,
    *,
    discount_rate: float,
    gross_margin: npt.ArrayLike = 1.0,
) -> FloatArray:
    """Residual lifetime value of each active subscriber.

    CLV = DERL(discount_rate | renewals) × revenue_per_period × gross_margin, with
    DERL from :meth:`ShiftedBetaGeometric.discounted_expected_residual_lifetime`
    (Fader & Hardie 2010): the value, just before their next renewal decision, of the
    margin on every payment the customer is still expected to make.

    ``renewals`` (renewals made so far), ``revenue_per_period`` and ``gross_margin``
    (fraction of revenue kept, in [0, 1]) are one value per customer or a scalar for
    all. ``discount_rate`` is per contract period of ``model`` (for monthly contracts
    and a 10 % annual rate, ``1.10 ** (1 / 12) - 1``). The result, one value per
    customer (1-D), is in the currency of ``revenue_per_period``.
    """
    count, revenue, margin = as_customer_arrays(
        renewals=renewals, revenue_per_period=revenue_per_period, gross_margin=gross_margin
    )
    require_non_negative("revenue_per_period", revenue)
    require_non_negative("gross_margin", margin)
    require_at_most("gross_margin", margin, "1", np.ones_like(margin))
    derl = model.discounted_expected_residual_lifetime(
        count, as_scalar("discount_rate", discount_rate)
    )
    result: FloatArray = derl * revenue * margin
    return result
