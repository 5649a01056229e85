"""Propensities: the calibrated chance of a good outcome, with reasons.

One model per outcome — a lead becoming an opportunity, a deal being won, an
account expanding, a customer answering as a promoter — each a
:class:`PropensityClassifier` with the same machinery as churn
(:class:`~tenure.models._gbm.GradientBoostedClassifier`: native categorical
encoding, early stopping, isotonic-or-Platt calibration chosen on held-out
rows, TreeSHAP reason codes). ``target_name`` names the outcome in messages and
in the fitted ``target_`` the registry records.
"""

from __future__ import annotations

from tenure.errors import ModelError
from tenure.models._gbm import GradientBoostedClassifier, Reason

__all__ = ["PropensityClassifier", "Reason"]


class PropensityClassifier(GradientBoostedClassifier):
    """Calibrated probability of ``target_name`` (e.g. "win", "expansion") with reasons.

    ``y`` marks the rows where the outcome happened (booleans, 0/1 or two
    labels; the larger in sort order is the outcome). Every other parameter is
    that of :class:`~tenure.models._gbm.GradientBoostedClassifier`.
    """

    def __init__(
        self,
        target_name: str = "conversion",
        *,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 7,
        min_child_samples: int = 60,
        feature_fraction: float = 0.7,
        lambda_l2: float = 1.0,
        early_stopping_rounds: int = 100,
        validation_fraction: float = 0.2,
        n_jobs: int = 2,
        random_state: int | None = 0,
    ) -> None:
        super().__init__(
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            feature_fraction=feature_fraction,
            lambda_l2=lambda_l2,
            early_stopping_rounds=early_stopping_rounds,
            validation_fraction=validation_fraction,
            n_jobs=n_jobs,
            random_state=random_state,
        )
        self.target_name = target_name

    def _target_name(self) -> str:
        if not isinstance(self.target_name, str) or not self.target_name.strip():
            raise ModelError(
                f"target_name must name the outcome, e.g. 'win' (got {self.target_name!r})"
            )
        return self.target_name
