"""An uplift model for scarce outcomes: the action shifts the log-odds of the churn model's risk.

Churn is rare (a few percent a month), so a randomized campaign of a few thousand
customers holds a few dozen churns per arm: far too few for meta-learners on trees
to find who responds (their out-of-time Qini is noise). What such data does pin
down is the average effect on the log-odds scale; and an effect on the log-odds
moves a customer's probability in proportion to ``p (1 − p)``: the same call
saves more of the customers more at risk. So this model takes the churn model's
risk at the decision as an offset and learns, by penalized maximum likelihood::

    logit P(churn | x, t) = logit(risk) + a + γ·z + t · (b + β·z)

``z`` are the standardized numeric inputs and one-hot categories; ``a`` and ``b``
are not penalized, ``γ`` and ``β`` get an L2 penalty ``λ`` chosen on the latest
fifth of the rows by their log-likelihood (a large ``λ`` is a constant effect).
The estimated effect of treating a row is ``P(churn | x, 1) − P(churn | x, 0)``,
like :class:`~tenure.measure.uplift.XLearner`'s ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from tenure.errors import ModelError

__all__ = ["RISK_COLUMN", "LogitShift"]

#: The column holding the churn model's probability at the decision.
RISK_COLUMN = "score.churn_probability"
_PENALTIES = (0.3, 3.0, 30.0, 300.0, 3000.0)
_VALIDATION = 0.2
_CLIP = 1e-4
_MAX_LEVELS = 50

F = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    mean: float = 0.0
    scale: float = 1.0
    levels: tuple[str, ...] = ()  # a category's one-hot levels (the first is the baseline)


class LogitShift:
    """The model of the module doc: ``fit(X, treatment, y)``, ``predict(X)`` → effect on y."""

    columns_: tuple[_Column, ...]
    risk_mean_: float
    coef_: F
    penalty_: float
    feature_names_in_: npt.NDArray[np.object_]

    def fit(self, X: pd.DataFrame, treatment: npt.ArrayLike, y: npt.ArrayLike) -> LogitShift:
        if RISK_COLUMN not in X.columns:
            raise ModelError(f"X needs the churn model's risk at the decision in {RISK_COLUMN!r}")
        t = np.asarray(treatment, np.float64)
        target = np.asarray(y, np.float64)
        if len(t) != len(X) or len(target) != len(X):
            raise ModelError("X, treatment and y must have the same number of rows")
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        risk = pd.to_numeric(X[RISK_COLUMN], errors="coerce")
        if risk.notna().sum() == 0:
            raise ModelError(f"{RISK_COLUMN!r} has no values: the decisions logged no churn risk")
        self.risk_mean_ = float(risk.mean())
        self.columns_ = _learn_columns(X.drop(columns=[RISK_COLUMN]))
        offset, z = self._design(X)
        cut = int(len(X) * (1 - _VALIDATION))
        best, best_score = _PENALTIES[-1], -np.inf
        for penalty in _PENALTIES:
            coef = _fit(offset[:cut], z[:cut], t[:cut], target[:cut], penalty)
            score = _log_likelihood(coef, offset[cut:], z[cut:], t[cut:], target[cut:])
            if score > best_score:
                best, best_score = penalty, score
        self.penalty_ = best
        self.coef_ = _fit(offset, z, t, target, best)
        return self

    def predict(self, X: pd.DataFrame) -> F:
        offset, z = self._design(X)
        k = z.shape[1]
        a, b, gamma, beta = self.coef_[0], self.coef_[1], self.coef_[2 : 2 + k], self.coef_[2 + k :]
        control = offset + a + z @ gamma
        return np.asarray(expit(control + b + z @ beta) - expit(control), np.float64)

    @property
    def average_log_odds_shift(self) -> float:
        """``b``: the action's shift of the churn log-odds for an average customer."""
        return float(self.coef_[1])

    def _design(self, X: pd.DataFrame) -> tuple[F, F]:
        # a customer without a risk (none scored yet) counts as the training average
        risk = pd.to_numeric(X[RISK_COLUMN], errors="coerce").to_numpy(np.float64)
        risk = np.clip(np.nan_to_num(risk, nan=self.risk_mean_), _CLIP, 1 - _CLIP)
        offset = np.log(risk / (1 - risk))
        parts: list[F] = []
        for column in self.columns_:
            values = (
                X[column.name] if column.name in X.columns else pd.Series(np.nan, index=X.index)
            )
            if column.levels:
                text = values.astype("string")
                parts.extend(
                    (text == level).fillna(False).to_numpy(np.float64)
                    for level in column.levels[1:]
                )
            else:
                number = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
                parts.append(np.nan_to_num((number - column.mean) / column.scale, nan=0.0))
        z = np.column_stack(parts) if parts else np.zeros((len(X), 0))
        return offset, np.asarray(z, np.float64)


def _learn_columns(X: pd.DataFrame) -> tuple[_Column, ...]:
    columns = []
    for name in X.columns:
        values = X[name]
        number = pd.to_numeric(values, errors="coerce")
        if number.notna().sum() == values.notna().sum() and number.notna().any():
            scale = float(number.std())
            if np.isfinite(scale) and scale > 0:
                columns.append(_Column(str(name), float(number.mean()), scale))
        else:
            levels = sorted(values.dropna().astype(str).unique())
            if 2 <= len(levels) <= _MAX_LEVELS:
                columns.append(_Column(str(name), levels=tuple(levels)))
    return tuple(columns)


def _log_likelihood(coef: F, offset: F, z: F, t: F, y: F) -> float:
    k = z.shape[1]
    eta = offset + coef[0] + z @ coef[2 : 2 + k] + t * (coef[1] + z @ coef[2 + k :])
    return float(np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta)))


def _fit(offset: F, z: F, t: F, y: F, penalty: float) -> F:
    k = z.shape[1]
    n = max(len(y), 1)
    design = np.column_stack([np.ones_like(t), t, z, t[:, None] * z])
    weights = np.r_[0.0, 0.0, np.full(2 * k, penalty)]

    def objective(coef: F) -> tuple[float, F]:
        eta = offset + design @ coef
        loss = -np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta)) / n
        loss += 0.5 * float(weights @ coef**2) / n
        gradient = design.T @ (expit(eta) - y) / n + weights * coef / n
        return float(loss), np.asarray(gradient, np.float64)

    result = minimize(objective, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(result.x)):
        raise ModelError(f"the logit-shift uplift model did not converge: {result.message}")
    return np.asarray(result.x, np.float64)
