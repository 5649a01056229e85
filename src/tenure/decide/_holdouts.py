"""Holdouts: whether a customer a rule would act on gets the action or is held out.

A global control group is held out of every campaign; a campaign may hold out a
share of the customers its rules would act on. Both are deterministic hashes of
the account (:mod:`tenure.measure.experiments`), each with its own salt, so a
customer's group never changes between cycles or paths and two groups are
independent. The verdict is a :class:`Check` like a guardrail's, so it is in
the decision log beside them: who was held out, by which group, and who got
the action as its treated counterpart.
"""

from __future__ import annotations

from tenure._config_decide import Holdouts
from tenure.decide._assign import Arm, Experiment, GlobalControl, assign, in_global_control
from tenure.decide._guardrails import Check, Verdict

__all__ = ["CAMPAIGN_PREFIX", "GLOBAL", "HoldoutGroups"]

#: The ``group`` of a holdout verdict: the global control, or ``campaign:<name>``.
GLOBAL = "global"
CAMPAIGN_PREFIX = "campaign:"
_TREATMENT = "treatment"
_CONTROL = "control"


class HoldoutGroups:
    """The configured holdouts, ready to place accounts."""

    def __init__(self, settings: Holdouts) -> None:
        self._global = (
            GlobalControl(percent=settings.global_control_percent, salt=settings.salt)
            if settings.global_control_percent > 0
            else None
        )
        self._percent = settings.global_control_percent
        self._campaigns = {
            campaign: (
                Experiment(
                    id=f"campaign:{campaign}",
                    salt=settings.salt,
                    arms=(
                        Arm(_TREATMENT, 1.0 - percent / 100.0),
                        Arm(_CONTROL, percent / 100.0),
                    ),
                ),
                percent,
            )
            for campaign, percent in settings.campaigns.items()
        }

    @property
    def active(self) -> bool:
        return self._global is not None or bool(self._campaigns)

    def check(self, account_id: str, campaign: str | None) -> Check | None:
        """HOLD when the account is held out of *campaign*'s action; None when no group applies."""
        if self._global is not None and in_global_control(account_id, self._global):
            return Check(
                "holdout", Verdict.HOLD, f"global control ({self._percent:g} %)",
                group=GLOBAL, percent=self._percent,
            )  # fmt: skip
        found = self._campaigns.get(campaign) if campaign else None
        if found is None:
            if self._global is None:
                return None
            return Check(
                "holdout", Verdict.PASS, "treated (not in the global control)",
                group=GLOBAL, percent=self._percent,
            )  # fmt: skip
        experiment, percent = found
        group = f"{CAMPAIGN_PREFIX}{campaign}"
        if assign(account_id, experiment) == _CONTROL:
            held = f"campaign {campaign} holdout ({percent:g} %)"
            return Check("holdout", Verdict.HOLD, held, group=group, percent=percent)
        treated = f"treated in campaign {campaign} ({percent:g} % held out)"
        return Check("holdout", Verdict.PASS, treated, group=group, percent=percent)
