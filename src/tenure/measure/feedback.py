"""Feedback: randomized outcomes in the decision log become uplift models and scores.

:func:`train_uplift` learns, per treatment type, who an action helps and who it
harms from the decisions of campaigns with a holdout (``decide.holdouts``) and
what followed them; :func:`score_uplift` publishes the production models'
estimates for every customer, and ``publish_state`` hands them to the policies,
which rank by ``uplift × value − cost``. ``tenure train --from-outcomes`` and
``tenure score`` run them; :func:`retrain` (``tenure retrain``) retrains when the
production churn model is older than a cadence or its inputs drifted. See
docs/measure.md, "Feedback".
"""

from __future__ import annotations

from tenure.measure._feedback import (
    MIN_EVENTS_PER_ARM,
    UPLIFT_PREFIX,
    UPLIFT_TABLE,
    FeedbackReport,
    UpliftScoring,
    UpliftTraining,
    score_uplift,
    train_uplift,
    uplift_frame,
)
from tenure.measure._retrain import (
    FeatureDrift,
    RetrainCheck,
    RetrainReport,
    population_stability,
    retrain,
    retrain_check,
)

__all__ = [
    "MIN_EVENTS_PER_ARM",
    "UPLIFT_PREFIX",
    "UPLIFT_TABLE",
    "FeatureDrift",
    "FeedbackReport",
    "RetrainCheck",
    "RetrainReport",
    "UpliftScoring",
    "UpliftTraining",
    "population_stability",
    "retrain",
    "retrain_check",
    "score_uplift",
    "train_uplift",
    "uplift_frame",
]
