"""Customer lifetime value: repeat purchasing, spend, retention, and RFM summaries.

Non-contractual (customers buy when they like): summarise transactions with
:func:`rfm_summary`, fit :class:`BetaGeo` (BG/NBD) for how many purchases are still
to come and :class:`GammaGamma` for what each will be worth, and combine them with
:meth:`GammaGamma.customer_lifetime_value`.

Contractual (customers renew a subscription): fit :class:`ShiftedBetaGeometric` on
cohort survival and value subscribers with :func:`subscription_clv`.

Every model is fitted by maximum likelihood and follows the tenure model contract;
the time unit is whatever the data used, as each class documents.
"""

from tenure.models.clv._rfm import TimeUnit, rfm_summary
from tenure.models.clv._subscription import subscription_clv
from tenure.models.clv.bgnbd import BetaGeo
from tenure.models.clv.gammagamma import GammaGamma
from tenure.models.clv.sbg import ShiftedBetaGeometric

__all__ = [
    "BetaGeo",
    "GammaGamma",
    "ShiftedBetaGeometric",
    "TimeUnit",
    "rfm_summary",
    "subscription_clv",
]
