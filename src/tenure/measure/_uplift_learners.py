"""Meta-learners of each row's treatment effect from a randomized table: T- and X-learner.

Both fit ordinary outcome models, by default LightGBM, and read the effect off their
difference; they differ in how. Columns are read as the churn and propensity models
read them (:mod:`tenure.models._gbm`): numbers stay numbers; category, boolean,
object and string columns become LightGBM categoricals whose levels are those seen at
fit, and at predict time an unseen level is *missing*, like a blank cell.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import clone

from tenure.errors import ModelError
from tenure.measure._uplift_metrics import _as_vector, _check_treatment
from tenure.models._base import Estimator, check_fitted
from tenure.models._gbm import ColumnEncoding, ColumnKind, _check_frame, _encode, _learn_encoding

__all__ = ["TLearner", "XLearner"]

_FloatArray = npt.NDArray[np.float64]
Outcome = Literal["auto", "binary", "continuous"]

#: Fewest rows an arm must have for its outcome model to mean anything.
MIN_ROWS_PER_ARM = 10


def _whole(low: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= low


def _real(test: Callable[[float], bool]) -> Callable[[object], bool]:
    return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and test(float(v))


# Parameter rules as data, checked once at fit: name -> (test, what is expected).
_PARAMETER_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "outcome": (
        lambda v: v in ("auto", "binary", "continuous"),
        "'auto', 'binary' or 'continuous'",
    ),
    "n_estimators": (_whole(1), "a whole number ≥ 1"),
    "learning_rate": (_real(lambda v: v > 0), "a number > 0"),
    "num_leaves": (_whole(2), "a whole number ≥ 2"),
    "min_child_samples": (_whole(1), "a whole number ≥ 1"),
    "n_jobs": (_whole(1), "a whole number of threads ≥ 1"),
    "random_state": (lambda v: v is None or _whole(0)(v), "None or a whole number ≥ 0"),
}


class _MetaLearner(Estimator):
    """What the learners share: parameters, input checks, the column encoding, base models."""

    _fitted_attributes: tuple[str, ...] = ("encoding_", "control_model_", "treated_model_")

    outcome_: Literal["binary", "continuous"]
    encoding_: tuple[ColumnEncoding, ...]
    feature_names_in_: npt.NDArray[np.object_]
    n_features_in_: int
    treatment_share_: float
    control_model_: Any
    treated_model_: Any

    def __init__(
        self,
        base: Any = None,
        *,
        outcome: Outcome = "auto",
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        random_state: int | None = 0,
        n_jobs: int = 1,
    ) -> None:
        self.base = base
        self.outcome = outcome
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -------------------------------------------------------------- fit

    def fit(self, X: pd.DataFrame, treatment: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Learn the effect model from a randomized table.

        ``X`` holds the features (a DataFrame; numbers, categories or text, missing cells
        allowed), ``treatment`` is 1 for treated and 0 for control rows, and ``y`` the
        observed outcome (binary 0/1 or continuous). Returns ``self``.
        """
        self._check_params()
        frame = _check_frame(X, "X")
        rows = len(frame)
        treated = _check_treatment(treatment, rows, "X")
        values = _as_vector(y, "y")
        if values.size != rows:
            raise ModelError(f"y has {values.size} rows but X has {rows}; they must match")
        outcome = self._outcome_kind(values)
        for arm, mask in (("treated", treated), ("control", ~treated)):
            if mask.sum() < MIN_ROWS_PER_ARM:
                raise ModelError(
                    f"the {arm} arm has {int(mask.sum())} rows; each arm needs at least "
                    f"{MIN_ROWS_PER_ARM} to learn its outcome model",
                    hint="add rows to the smaller arm",
                )
            if outcome == "binary" and np.unique(values[mask]).size < 2:
                raise ModelError(
                    f"y is {values[mask][0]:g} for every {arm} row; a binary outcome needs "
                    "both values in each arm to estimate its rate",
                    hint="add rows, or pass outcome='continuous' to fit it by regression",
                )
        encoding = _learn_encoding(frame)
        matrix = _encode(frame, encoding)
        self.outcome_ = outcome
        self.encoding_ = encoding
        self.feature_names_in_ = np.asarray([c.name for c in encoding], dtype=object)
        self.n_features_in_ = len(encoding)
        self.treatment_share_ = float(treated.mean())
        self._fit_learner(matrix, treated, values)
        return self

    def _fit_learner(
        self, matrix: _FloatArray, treated: npt.NDArray[np.bool_], y: _FloatArray
    ) -> None:
        raise NotImplementedError

    def _check_params(self) -> None:
        name = type(self).__name__
        problems = [
            f"{param}={getattr(self, param)!r} (expected {expected})"
            for param, (test, expected) in _PARAMETER_RULES.items()
            if not test(getattr(self, param))
        ]
        if problems:
            raise ModelError(f"{name} has invalid parameters: " + "; ".join(problems))

    def _outcome_kind(self, y: _FloatArray) -> Literal["binary", "continuous"]:
        zero_one = bool(np.isin(y, (0.0, 1.0)).all())
        if self.outcome == "binary" and not zero_one:
            bad = np.unique(y[~np.isin(y, (0.0, 1.0))])[:5].tolist()
            raise ModelError(
                f"outcome='binary' but y holds values other than 0 and 1: {bad}",
                hint="code the outcome as 0/1, or pass outcome='continuous'",
            )
        if self.outcome == "continuous" or (self.outcome == "auto" and not zero_one):
            return "continuous"
        return "binary"

    # -------------------------------------------------------------- base models

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "n_estimators": int(self.n_estimators),
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_child_samples": int(self.min_child_samples),
            "random_state": self.random_state,
            "n_jobs": int(self.n_jobs),
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }

    def _new_outcome_model(self) -> Any:
        if self.base is not None:
            model = clone(self.base)
            if self.outcome_ == "binary" and not hasattr(model, "predict_proba"):
                raise ModelError(
                    f"base {type(model).__name__} has no predict_proba; a binary outcome "
                    "needs a classifier's probabilities",
                    hint="pass a classifier, or outcome='continuous' to use a regressor",
                )
            return model
        if self.outcome_ == "binary":
            return lgb.LGBMClassifier(**self._lgb_params())
        return lgb.LGBMRegressor(**self._lgb_params())

    def _fit_model(self, model: Any, matrix: _FloatArray, target: npt.ArrayLike) -> Any:
        if isinstance(model, lgb.LGBMModel):
            categorical = [i for i, c in enumerate(self.encoding_) if c.kind is ColumnKind.CATEGORY]
            model.fit(matrix, target, categorical_feature=categorical)
        else:
            model.fit(matrix, target)
        return model

    def _fit_outcome_model(self, matrix: _FloatArray, y: _FloatArray) -> Any:
        target = y.astype(np.int64) if self.outcome_ == "binary" else y
        return self._fit_model(self._new_outcome_model(), matrix, target)

    def _expected_outcome(self, model: Any, matrix: _FloatArray) -> _FloatArray:
        """The outcome model's prediction: P(y = 1) for a binary outcome, else E[y]."""
        if self.outcome_ == "binary":
            proba = np.asarray(model.predict_proba(matrix), np.float64)
            return np.asarray(proba[:, list(model.classes_).index(1)], np.float64)
        return np.asarray(model.predict(matrix), np.float64)

    # -------------------------------------------------------------- predict

    def predict(self, X: pd.DataFrame) -> _FloatArray:
        """Each row's estimated treatment effect: E[y | treated] − E[y | control] given ``X``.

        For a binary outcome, the difference of the two probabilities of ``y = 1``.
        ``X`` must have the columns the learner was fitted on (in any order).
        """
        check_fitted(self)
        matrix = self._matrix(X)
        if len(matrix) == 0:
            return np.zeros(0)
        return self._effect(matrix)

    def _effect(self, matrix: _FloatArray) -> _FloatArray:
        raise NotImplementedError

    def _matrix(self, X: pd.DataFrame) -> _FloatArray:
        frame = _check_frame(X, "X", allow_empty=True)
        names = [c.name for c in self.encoding_]
        missing = [name for name in names if name not in frame.columns]
        extra = [name for name in frame.columns if name not in set(names)]
        if missing or extra:
            raise ModelError(
                f"X must have the columns {type(self).__name__} was fitted on; "
                f"missing {missing}, unexpected {extra}",
                hint="pass the same feature columns as at fit (order does not matter)",
            )
        return _encode(frame[names], self.encoding_)


class TLearner(_MetaLearner):
    """The two-model learner: one outcome model per arm, the effect their difference.

    ``τ(x) = μ₁(x) − μ₀(x)``, with ``μ₁`` fitted on the treated rows and ``μ₀`` on the
    control rows. Simple and unbiased for randomized data, but each model sees only its
    arm, so with a small arm the difference is noisy; :class:`XLearner` borrows strength
    across the arms.

    Parameters
    ----------
    base:
        The outcome model to clone for each arm (a scikit-learn estimator; a classifier
        with ``predict_proba`` for a binary outcome). It is fitted on the encoded float
        matrix, categories as integer codes. ``None`` (the default) uses LightGBM:
        ``LGBMClassifier`` for a binary outcome, ``LGBMRegressor`` otherwise, built from
        the parameters below, with the categoricals passed as such.
    outcome:
        ``"auto"`` (binary when ``y`` holds only 0 and 1), ``"binary"`` or
        ``"continuous"``.
    n_estimators, learning_rate, num_leaves, min_child_samples:
        LightGBM's parameters of the same names. The defaults (100 trees of at most 15
        leaves, learning rate 0.05) suit thousands of rows.
    random_state:
        LightGBM's seed; the fit is deterministic for a given seed and ``n_jobs``.
    n_jobs:
        LightGBM threads.

    Attributes
    ----------
    control_model_, treated_model_:
        The fitted outcome models of the two arms.
    outcome_:
        ``"binary"`` or ``"continuous"``, as fitted.
    encoding_, feature_names_in_, n_features_in_:
        How the columns of ``X`` are read.
    treatment_share_:
        The share of treated rows in the training data.
    """

    def _fit_learner(
        self, matrix: _FloatArray, treated: npt.NDArray[np.bool_], y: _FloatArray
    ) -> None:
        self.control_model_ = self._fit_outcome_model(matrix[~treated], y[~treated])
        self.treated_model_ = self._fit_outcome_model(matrix[treated], y[treated])

    def _effect(self, matrix: _FloatArray) -> _FloatArray:
        return self._expected_outcome(self.treated_model_, matrix) - self._expected_outcome(
            self.control_model_, matrix
        )


class XLearner(_MetaLearner):
    """The X-learner (Künzel, Sekhon, Bickel and Yu, PNAS 2019).

    1. Outcome models per arm, as the :class:`TLearner`: ``μ₀`` on control rows,
       ``μ₁`` on treated rows.
    2. Imputed effects from the other arm's model: ``D₁ = y − μ₀(x)`` for treated rows,
       ``D₀ = μ₁(x) − y`` for control rows (in-sample, as in the paper).
    3. Effect models per arm, regressions of the imputed effects on ``x``: ``τ₁`` on the
       treated rows' ``D₁``, ``τ₀`` on the control rows' ``D₀``.
    4. ``τ(x) = g(x) · τ₀(x) + (1 − g(x)) · τ₁(x)`` with ``g`` the propensity, the
       probability of treatment: the larger arm's effect model, which learned from more
       rows, gets the larger weight.

    In a randomized table the propensity is the assignment probability, the same for
    every row, so by default ``g`` is the observed treated share. Pass it as
    ``propensity=0.5`` when the design is known, or pass a classifier (with
    ``predict_proba``) to fit ``g(x)`` on ``X``, for assignment that varied with
    observed traits (say a different holdout share per segment).

    Parameters are those of :class:`TLearner`, and:

    effect_base:
        The regressor cloned for the two effect models of step 3; ``None`` (the
        default) uses ``LGBMRegressor`` with the LightGBM parameters.
    propensity:
        ``None`` (the treated share), a number in (0, 1), or a classifier.

    Attributes are those of :class:`TLearner`, and ``control_effect_model_`` (``τ₀``),
    ``treated_effect_model_`` (``τ₁``), ``propensity_model_`` (the fitted classifier, or
    ``None`` when ``g`` is a constant) and ``propensity_`` (that constant; the treated
    share when ``g`` is fitted).
    """

    _fitted_attributes = (
        "encoding_",
        "control_model_",
        "treated_model_",
        "control_effect_model_",
        "treated_effect_model_",
    )

    control_effect_model_: Any
    treated_effect_model_: Any
    propensity_model_: Any
    propensity_: float

    def __init__(
        self,
        base: Any = None,
        *,
        effect_base: Any = None,
        propensity: Any = None,
        outcome: Outcome = "auto",
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        random_state: int | None = 0,
        n_jobs: int = 1,
    ) -> None:
        super().__init__(
            base,
            outcome=outcome,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            min_child_samples=min_child_samples,
            random_state=random_state,
            n_jobs=n_jobs,
        )
        self.effect_base = effect_base
        self.propensity = propensity

    def _check_params(self) -> None:
        super()._check_params()
        p = self.propensity
        if isinstance(p, numbers.Real) and not isinstance(p, bool):
            if not 0 < float(p) < 1:
                raise ModelError(f"XLearner.propensity must be in (0, 1); got {p!r}")
        elif p is not None and not hasattr(p, "predict_proba"):
            raise ModelError(
                "XLearner.propensity must be None (the treated share), a number in (0, 1) "
                f"or a classifier with predict_proba; got {type(p).__name__}"
            )

    def _fit_learner(
        self, matrix: _FloatArray, treated: npt.NDArray[np.bool_], y: _FloatArray
    ) -> None:
        control, treat = matrix[~treated], matrix[treated]
        self.control_model_ = self._fit_outcome_model(control, y[~treated])
        self.treated_model_ = self._fit_outcome_model(treat, y[treated])
        imputed_treated = y[treated] - self._expected_outcome(self.control_model_, treat)
        imputed_control = self._expected_outcome(self.treated_model_, control) - y[~treated]
        self.treated_effect_model_ = self._fit_model(
            self._new_effect_model(), treat, imputed_treated
        )
        self.control_effect_model_ = self._fit_model(
            self._new_effect_model(), control, imputed_control
        )
        if self.propensity is None or isinstance(self.propensity, numbers.Real):
            self.propensity_model_ = None
            self.propensity_ = (
                self.treatment_share_ if self.propensity is None else float(self.propensity)
            )
        else:
            model = self._fit_model(clone(self.propensity), matrix, treated.astype(np.int64))
            self.propensity_model_ = model
            self.propensity_ = self.treatment_share_

    def _new_effect_model(self) -> Any:
        if self.effect_base is not None:
            return clone(self.effect_base)
        return lgb.LGBMRegressor(**self._lgb_params())

    def _effect(self, matrix: _FloatArray) -> _FloatArray:
        if self.propensity_model_ is None:
            g: _FloatArray | float = self.propensity_
        else:
            proba = np.asarray(self.propensity_model_.predict_proba(matrix), np.float64)
            g = proba[:, list(self.propensity_model_.classes_).index(1)]
        tau_control = np.asarray(self.control_effect_model_.predict(matrix), np.float64)
        tau_treated = np.asarray(self.treated_effect_model_.predict(matrix), np.float64)
        return np.asarray(g * tau_control + (1 - g) * tau_treated, np.float64)
