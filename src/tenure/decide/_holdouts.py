"""Holdouts: whether a customer a rule would act on gets the action or is held out.

A global control group is held out of every campaign; a campaign may hold out a
share of the customers its rules would act on. Both are deterministic hashes of
the account (:mod:`tenure.measure.experiments`), each with its own salt, so a
customer's group never changes between cycles or paths and two groups are
independent. The verdict is a :class:`Check` like a guardrail's, so it is in
the decision log beside them: who was held out, by which group, and who got
the action as its treated counterpart.

A rule's experiment (``experiment:`` in a policy) places its customers the same
way, in one of several arms: the control arm is held out like a campaign
holdout, the others get their arm's action. It takes the place of the campaign
holdout for that rule's candidates (its control is their holdout); the global
control still comes first.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenure._config_decide import Holdouts
from tenure.decide._assign import Arm, Experiment, GlobalControl, assign, in_global_control
from tenure.decide._guardrails import Check, Verdict
from tenure.decide._policy import EXPERIMENT_PREFIX, RuleExperiment

__all__ = ["CAMPAIGN_PREFIX", "EXPERIMENT_PREFIX", "GLOBAL", "HoldoutGroups"]

#: The ``group`` of a holdout verdict: the global control, ``campaign:<name>`` or
#: ``experiment:<id>``.
GLOBAL = "global"
CAMPAIGN_PREFIX = "campaign:"
_TREATMENT = "treatment"
_CONTROL = "control"


class HoldoutGroups:
    """The configured holdouts and the policies' experiments, ready to place accounts."""

    def __init__(
        self, settings: Holdouts, experiments: Mapping[str, RuleExperiment] | None = None
    ) -> None:
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
        #: Each policy experiment's assignment, salted with the holdouts' salt.
        self._experiments = {
            name: (
                Experiment(
                    id=name,
                    salt=settings.salt,
                    arms=tuple(Arm(arm, spec.weight) for arm, spec in found.arms.items()),
                    control=found.control,
                ),
                found,
            )
            for name, found in (experiments or {}).items()
        }

    @property
    def active(self) -> bool:
        return self._global is not None or bool(self._campaigns)

    def arm(self, account_id: str, experiment: str) -> str:
        """The account's arm of the policy experiment *experiment* (an id)."""
        arm = assign(account_id, self._experiments[experiment][0])
        assert arm is not None  # no stages and no global control: every account has an arm
        return arm

    def check(
        self, account_id: str, campaign: str | None, *, experiment: str | None = None
    ) -> Check | None:
        """HOLD when the account is held out of *campaign*'s action, or is in the control
        arm of the rule's *experiment* (an id); None when no group applies."""
        if self._global is not None and in_global_control(account_id, self._global):
            return Check(
                "holdout", Verdict.HOLD, f"global control ({self._percent:g} %)",
                group=GLOBAL, percent=self._percent,
            )  # fmt: skip
        if experiment is not None:
            return self._experiment_check(account_id, experiment)
        found = self._campaigns.get(campaign) if campaign else None
        if found is None:
            if self._global is None:
                return None
            return Check(
                "holdout", Verdict.PASS, "treated (not in the global control)",
                group=GLOBAL, percent=self._percent,
            )  # fmt: skip
        holdout, percent = found
        group = f"{CAMPAIGN_PREFIX}{campaign}"
        if assign(account_id, holdout) == _CONTROL:
            held = f"campaign {campaign} holdout ({percent:g} %)"
            return Check("holdout", Verdict.HOLD, held, group=group, percent=percent)
        treated = f"treated in campaign {campaign} ({percent:g} % held out)"
        return Check("holdout", Verdict.PASS, treated, group=group, percent=percent)

    def _experiment_check(self, account_id: str, experiment: str) -> Check:
        spec = self._experiments[experiment][1]
        arm = self.arm(account_id, experiment)
        percent = spec.percents[arm]
        if arm == spec.control:
            held = f"experiment {experiment}: {arm} ({percent:.3g} %)"
            return Check("holdout", Verdict.HOLD, held, group=spec.group, percent=percent, arm=arm)
        treated = f"experiment {experiment}: arm {arm} ({percent:.3g} %)"
        return Check("holdout", Verdict.PASS, treated, group=spec.group, percent=percent, arm=arm)
