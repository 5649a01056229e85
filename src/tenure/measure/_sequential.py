"""Always-valid sequential monitoring: a mixture SPRT for the difference of two means.

A fixed-horizon test is valid only when looked at once; checking it every day and
stopping at the first ``p < 0.05`` rejects a true null far more often than 5 %.
The mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis
and Walsh ("Always valid inference", KDD 2017; Operations Research 2022) gives a
p-value and an interval that hold *at every look at once*: the chance that the
always-valid p-value *ever* drops below α under the null is at most α, however
often one looks and whenever one stops.

At a look, let ``Δ̂ = mean_t − mean_c`` and ``V = v_t / n_t + v_c / n_c`` its variance
(``v = p(1 − p)`` for a binary metric, ``s²`` otherwise; plugged in from the data
so far). Mixing the likelihood ratio of ``N(Δ, V)`` against ``N(0, V)`` over
``Δ ~ N(0, τ²)`` gives

    Λ = √(V / (V + τ²)) · exp( τ² Δ̂² / (2 V (V + τ²)) )

a nonnegative martingale under the null, so by Ville's inequality
``P(sup Λ ≥ 1/α) ≤ α``. The always-valid p-value is the running minimum of
``min(1, 1/Λ)``; the always-valid interval at a look is ``{Δ₀ : Λ(Δ̂ − Δ₀) < 1/α}``,

    Δ̂ ± √( 2 V (V + τ²) / τ² · (log(1/α) + ½ log((V + τ²) / V)) )

intersected with the intervals of all earlier looks.

**The mixture standard deviation τ** (``mixture_sd``, in the metric's units) is the
spread of effects the test expects. It never affects validity, only power: the
test detects soonest effects of about τ, and is slower for effects much smaller
or much larger (Johari et al. choose it from the effects of past experiments).
Set it to the smallest effect worth acting on, e.g. ``0.01`` for one percentage
point of conversion or the revenue change a campaign must bring to pay for itself.
There is deliberately no default: a τ that ignores the metric's scale (a 0.01
τ on revenue in dollars) makes the test powerless.

With the variance plugged in the guarantee is asymptotic (it needs each look to
have enough customers for the means to be near normal; a few dozen per arm); the
simulation in the tests checks the false-positive rate with 50 looks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from tenure.errors import ExperimentError
from tenure.measure._stats import MetricKind, Values, _as_float, _kind

__all__ = ["SequentialLook", "SequentialResult", "always_valid", "sequential_test"]

Floats = npt.NDArray[np.float64]


def _check(mixture_sd: float, alpha: float) -> None:
    if not (isinstance(mixture_sd, int | float) and math.isfinite(mixture_sd) and mixture_sd > 0):
        raise ExperimentError(
            f"mixture_sd {mixture_sd!r} is not a positive number; expected the size of "
            "effect worth detecting, in the metric's units"
        )
    if not 0 < alpha < 1:
        raise ExperimentError(f"alpha {alpha!r} is not in (0, 1); expected e.g. 0.05")


def always_valid(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    *,
    mixture_sd: float,
    alpha: float = 0.05,
) -> tuple[Floats, Floats, Floats]:
    """Always-valid p-values and interval bounds along the last axis (the looks).

    *estimate* and *variance* are the difference of means and its variance at each
    look; leading axes are independent experiments (e.g. simulation runs). A look
    with no variance yet (zero or NaN) carries no evidence: ``p = 1``, interval
    ``(−∞, ∞)``.
    """
    _check(mixture_sd, alpha)
    delta = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    tau2 = float(mixture_sd) ** 2
    usable = np.isfinite(v) & (v > 0) & np.isfinite(delta)
    v_safe = np.where(usable, v, 1.0)
    d_safe = np.where(usable, delta, 0.0)
    log_lambda = 0.5 * np.log(v_safe / (v_safe + tau2)) + tau2 * d_safe**2 / (
        2 * v_safe * (v_safe + tau2)
    )
    p_look = np.where(usable, np.exp(-np.maximum(log_lambda, 0.0)), 1.0)
    p = np.minimum.accumulate(p_look, axis=-1)
    half = np.sqrt(
        2 * v_safe * (v_safe + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * np.log1p(tau2 / v_safe))
    )
    low = np.maximum.accumulate(np.where(usable, d_safe - half, -np.inf), axis=-1)
    high = np.minimum.accumulate(np.where(usable, d_safe + half, np.inf), axis=-1)
    return p, low, high


@dataclass(frozen=True)
class SequentialLook:
    """The state of the test at one look: data so far, always-valid p and interval."""

    look: object
    n_treatment: int
    n_control: int
    estimate: float
    p_value: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SequentialResult:
    """Every look of an always-valid test of *treatment* against *control*."""

    treatment: str
    control: str
    kind: MetricKind
    alpha: float
    mixture_sd: float
    looks: tuple[SequentialLook, ...]

    @property
    def first_rejection(self) -> object | None:
        """The first look whose always-valid p-value is below α (None: not yet)."""
        return next((k.look for k in self.looks if k.p_value < self.alpha), None)

    @property
    def rejected(self) -> bool:
        return self.first_rejection is not None

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "rejected": self.rejected,
            "first_rejection": self.first_rejection,
        }


def _cumulative(
    y: Floats, at: npt.NDArray[np.int64], looks: int, kind: MetricKind
) -> tuple[Floats, Floats, Floats]:
    """Count, mean and variance of the mean of the data up to each look."""
    n = np.cumsum(np.bincount(at, minlength=looks)).astype(np.float64)
    total = np.cumsum(np.bincount(at, weights=y, minlength=looks))
    squares = np.cumsum(np.bincount(at, weights=y * y, minlength=looks))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        if kind is MetricKind.BINARY:
            var = mean * (1 - mean)
        else:
            var = (squares - n * mean * mean) / (n - 1)
        var_mean = np.where(n >= 2, np.maximum(var, 0.0) / n, np.nan)
    return n, mean, var_mean


def sequential_test(
    outcome: Values,
    arm: Values,
    look: Values,
    *,
    mixture_sd: float,
    control: str = "control",
    treatment: str = "treatment",
    kind: MetricKind | str | None = None,
    alpha: float = 0.05,
) -> SequentialResult:
    """Monitor *treatment* against *control* at every distinct value of *look*.

    *look* says, per customer, at which look their outcome was first seen (a day,
    a batch number); each look uses every customer seen at or before it. Other
    arms are ignored.
    """
    _check(mixture_sd, alpha)
    y = _as_float(outcome, "outcome")
    labels = np.asarray(arm, dtype=object)
    when = pd.Series(np.asarray(look, dtype=object))
    if not y.size == labels.size == when.size:
        raise ExperimentError(
            f"outcome, arm and look have {y.size}, {labels.size} and {when.size} values; "
            "expected one of each per customer"
        )
    if when.isna().any():
        raise ExperimentError("look has missing values; expected the look of every customer")
    codes, order = pd.factorize(when, sort=True)
    kind = _kind(y, kind)
    looks = len(order)
    stats = {}
    for name in (treatment, control):
        mask = labels == name
        if not mask.any():
            raise ExperimentError(f"arm {name!r} has no customers")
        stats[name] = _cumulative(y[mask], codes[mask], looks, kind)
    n_t, mean_t, vm_t = stats[treatment]
    n_c, mean_c, vm_c = stats[control]
    with np.errstate(invalid="ignore"):
        estimate = mean_t - mean_c
    p, low, high = always_valid(estimate, vm_t + vm_c, mixture_sd=mixture_sd, alpha=alpha)
    names = order.tolist()
    rows = tuple(
        SequentialLook(
            names[i],
            int(n_t[i]),
            int(n_c[i]),
            float(estimate[i]),
            float(p[i]),
            float(low[i]),
            float(high[i]),
        )
        for i in range(looks)
    )
    return SequentialResult(treatment, control, kind, alpha, float(mixture_sd), rows)
