"""Fixed-horizon statistics of an experiment: arm summaries, lifts, CUPED, SRM, segments.

Numbers in, numbers out: every function takes per-customer outcomes and arm labels
(numpy arrays or pandas Series, aligned by position) and returns dataclasses.

Definitions (``z`` the normal and ``t`` the Student quantile at the chosen level):

* **Arm summary.** A *binary* metric (conversion, retention: each customer 0 or 1)
  reports the rate with a **Wilson score** interval, which stays inside [0, 1]
  and keeps its coverage for small counts and rates near 0 or 1. A *continuous*
  metric (revenue per customer) reports the mean with a Student-t interval
  ``mean ± t(n−1) · s / √n``.
* **Absolute lift** ``Δ = mean_t − mean_c`` with standard error
  ``√(v_t / n_t + v_c / n_c)`` from each arm's own variance (unpooled). For a binary
  metric ``v = p(1 − p)`` and the interval and p-value are normal (Wald, the same
  as statsmodels' ``confint_proportions_2indep`` / ``test_proportions_2indep`` with
  ``method="wald"``); for a continuous one ``v = s²`` and they are **Welch**'s t with
  Welch–Satterthwaite degrees of freedom (``scipy.stats.ttest_ind(equal_var=False)``).
  The interval and the p-value use the same variance, so ``p < α`` exactly when the
  interval excludes 0.
* **Relative lift** ``mean_t / mean_c − 1`` with an interval from the **delta method
  on the log of the ratio**: ``Var(log m) ≈ Var(m) / m²``, so
  ``log(ratio) ± z · √(Var(m_t)/m_t² + Var(m_c)/m_c²)``, exponentiated, minus 1.
  The interval is asymmetric and never goes below −100 %; for proportions it is
  statsmodels' ``compare="ratio", method="log"``. It needs both means positive
  (else NaN).
* **CUPED** (Deng et al. 2013): with a pre-period covariate ``X`` (e.g. last
  period's revenue) unaffected by the treatment, ``θ = cov(Y, X) / var(X)`` over all
  arms pooled and ``Y' = Y − θ (X − mean X)``. ``Y'`` has the same expected
  difference between arms and a within-arm variance smaller by the factor
  ``1 − ρ²`` (``ρ`` the correlation of Y and X). Lifts are then computed on ``Y'``
  (as a continuous metric), and the reported *variance reduction* is
  ``1 − Σ(n_a − 1) var_a(Y') / Σ(n_a − 1) var_a(Y)`` over the arms.
* **Sample-ratio mismatch** (SRM): Pearson's chi-square goodness of fit of the
  observed arm counts to the configured weights (``k − 1`` degrees of freedom);
  flagged when ``p`` is below 0.001 by default, a threshold strict enough that a
  fair split is almost never flagged, while a real break on a large experiment
  (50/50 intended, 52/48 seen over 100k customers: χ² = 160) is flagged at once.
* **Multiple comparisons**: Holm (controls the family-wise error rate) and
  Benjamini–Hochberg (controls the false discovery rate) adjusted p-values, the
  same as statsmodels' ``multipletests`` ``"holm"`` and ``"fdr_bh"``.

Per-segment breakdowns and the post-stratified lift are in ``_segments``; the
always-valid sequential test in ``_sequential``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from tenure.errors import ExperimentError

__all__ = [
    "ArmSummary",
    "Correction",
    "CupedResult",
    "Lift",
    "MetricKind",
    "MetricReport",
    "SRMResult",
    "adjust_pvalues",
    "analyze",
    "compare_arms",
    "cuped",
    "srm_check",
    "summarize_arm",
]

#: Per-customer values: a numpy array, a list or a pandas Series.
Values: TypeAlias = npt.ArrayLike | pd.Series


class MetricKind(enum.StrEnum):
    """Binary (conversion, retention: 0/1 per customer) or continuous (revenue)."""

    BINARY = "binary"
    CONTINUOUS = "continuous"


class Correction(enum.StrEnum):
    """How p-values of several comparisons are adjusted."""

    HOLM = "holm"  # family-wise error rate
    BH = "bh"  # false discovery rate (Benjamini–Hochberg)
    NONE = "none"


def _as_float(values: Values, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ExperimentError(f"{name} has shape {array.shape}; expected one value per customer")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ExperimentError(
            f"{name} has {bad} missing or infinite values; expected a number per customer",
            hint="fill missing outcomes (e.g. 0 revenue) or drop those customers first",
        )
    return array


def _kind(values: npt.NDArray[np.float64], kind: MetricKind | str | None) -> MetricKind:
    if kind is None:
        binary = bool(np.isin(values, (0.0, 1.0)).all())
        return MetricKind.BINARY if binary else MetricKind.CONTINUOUS
    kind = MetricKind(kind)
    if kind is MetricKind.BINARY and not np.isin(values, (0.0, 1.0)).all():
        raise ExperimentError("a binary metric has values other than 0 and 1")
    return kind


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ExperimentError(f"confidence level {level!r} is not in (0, 1); expected e.g. 0.95")
    return float(stats.norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class ArmSummary:
    """One arm's metric: its mean (a rate for a binary metric) and interval."""

    arm: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def summarize_arm(
    values: Values,
    *,
    arm: str = "",
    kind: MetricKind | str | None = None,
    level: float = 0.95,
) -> ArmSummary:
    """Mean and interval of one arm: Wilson for a binary metric, Student t otherwise."""
    y = _as_float(values, f"outcomes of arm {arm!r}")
    kind = _kind(y, kind)
    n = y.size
    if n < 2:
        raise ExperimentError(f"arm {arm!r} has {n} customers; expected at least 2")
    mean = float(y.mean())
    z = _z(level)
    if kind is MetricKind.BINARY:
        centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n))
        return ArmSummary(arm, n, mean, math.sqrt(mean * (1 - mean)), centre - half, centre + half)
    std = float(y.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n) if std > 0 else 0.0
    return ArmSummary(arm, n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Lift:
    """A treatment arm against the control: absolute and relative lift, p-value.

    *df* is infinite for a normal (z) test. *p_adjusted* is the p-value after the
    multiple-comparison correction of the report it belongs to (None alone).
    """

    treatment: str
    control: str
    absolute: float
    absolute_ci_low: float
    absolute_ci_high: float
    relative: float
    relative_ci_low: float
    relative_ci_high: float
    statistic: float
    df: float
    p_value: float
    p_adjusted: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _lift(
    treatment: str,
    control: str,
    moments: tuple[float, float, float, float],
    df: float,
    level: float,
) -> Lift:
    """A lift from each arm's mean and the variance of that mean."""
    mean_t, var_mean_t, mean_c, var_mean_c = moments
    z = _z(level)
    diff = mean_t - mean_c
    se = math.sqrt(var_mean_t + var_mean_c)
    if se == 0:
        statistic = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p, half = (1.0 if diff == 0 else 0.0), 0.0
    elif math.isinf(df):
        statistic = diff / se
        p, half = float(2 * stats.norm.sf(abs(statistic))), z * se
    else:
        statistic = diff / se
        p = float(2 * stats.t.sf(abs(statistic), df))
        half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    relative = low = high = math.nan
    if mean_t > 0 and mean_c > 0:
        relative = mean_t / mean_c - 1
        log_se = math.sqrt(var_mean_t / mean_t**2 + var_mean_c / mean_c**2)
        low = math.exp(math.log(mean_t / mean_c) - z * log_se) - 1
        high = math.exp(math.log(mean_t / mean_c) + z * log_se) - 1
    return Lift(
        treatment, control, diff, diff - half, diff + half, relative, low, high, statistic, df, p
    )


def _moments(y: npt.NDArray[np.float64], kind: MetricKind) -> tuple[float, float, int]:
    """Mean, variance of the mean and size of one arm's outcomes."""
    n = y.size
    mean = float(y.mean())
    var = mean * (1 - mean) if kind is MetricKind.BINARY else float(y.var(ddof=1))
    return mean, var / n, n


def compare_arms(
    treatment: Values,
    control: Values,
    *,
    kind: MetricKind | str | None = None,
    level: float = 0.95,
    names: tuple[str, str] = ("treatment", "control"),
) -> Lift:
    """Absolute and relative lift of *treatment* over *control* (see the module doc)."""
    y_t = _as_float(treatment, f"outcomes of arm {names[0]!r}")
    y_c = _as_float(control, f"outcomes of arm {names[1]!r}")
    kind = _kind(np.concatenate([y_t, y_c]), kind)
    for name, y in zip(names, (y_t, y_c), strict=True):
        if y.size < 2:
            raise ExperimentError(f"arm {name!r} has {y.size} customers; expected at least 2")
    mean_t, vm_t, n_t = _moments(y_t, kind)
    mean_c, vm_c, n_c = _moments(y_c, kind)
    df = math.inf
    if kind is MetricKind.CONTINUOUS and vm_t + vm_c > 0:
        df = (vm_t + vm_c) ** 2 / (vm_t**2 / (n_t - 1) + vm_c**2 / (n_c - 1))
    return _lift(names[0], names[1], (mean_t, vm_t, mean_c, vm_c), df, level)


def adjust_pvalues(p_values: npt.ArrayLike, method: Correction | str) -> npt.NDArray[np.float64]:
    """Holm or Benjamini–Hochberg adjusted p-values, in the order given."""
    p = np.asarray(p_values, dtype=np.float64)
    method = Correction(method)
    if p.ndim != 1 or ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise ExperimentError(f"p-values {p!r} are not a list of numbers in [0, 1]")
    m = p.size
    if m == 0 or method is Correction.NONE:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method is Correction.HOLM:
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adjusted = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True)
class CupedResult:
    """The CUPED adjustment: θ, the covariate mean and the variance it removed."""

    theta: float
    covariate_mean: float
    correlation: float
    variance_reduction: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def cuped(
    outcome: Values, covariate: Values, arm: Values
) -> tuple[npt.NDArray[np.float64], CupedResult]:
    """``Y − θ (X − mean X)`` with θ from all arms pooled, and how much variance went."""
    y = _as_float(outcome, "outcome")
    x = _as_float(covariate, "covariate")
    labels = np.asarray(arm, dtype=object)
    if not y.size == x.size == labels.size:
        raise ExperimentError(
            f"outcome, covariate and arm have {y.size}, {x.size} and {labels.size} values; "
            "expected one of each per customer"
        )
    var_x = float(x.var(ddof=1))
    if not var_x > 0:
        raise ExperimentError(
            "the CUPED covariate is constant; expected a varying pre-period value"
        )
    cov = float(np.cov(y, x, ddof=1)[0, 1])
    theta = cov / var_x
    adjusted = y - theta * (x - x.mean())
    raw = within = 0.0
    for value in pd.unique(labels):
        mask = labels == value
        if mask.sum() > 1:
            raw += float(y[mask].var(ddof=1)) * (mask.sum() - 1)
            within += float(adjusted[mask].var(ddof=1)) * (mask.sum() - 1)
    var_y = float(y.var(ddof=1))
    rho = cov / math.sqrt(var_x * var_y) if var_y > 0 else 0.0
    reduction = 1 - within / raw if raw > 0 else 0.0
    return adjusted, CupedResult(float(theta), float(x.mean()), float(rho), float(reduction))


@dataclass(frozen=True)
class MetricReport:
    """One metric of an experiment: every arm, and every treatment against control."""

    metric: str
    kind: MetricKind
    control: str
    arms: tuple[ArmSummary, ...]
    lifts: tuple[Lift, ...]
    correction: Correction
    cuped: CupedResult | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _split(
    outcome: Values, arm: Values, name: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.object_]]:
    y = _as_float(outcome, name)
    labels = np.asarray(arm, dtype=object)
    if labels.shape != y.shape:
        raise ExperimentError(
            f"{name} has {y.size} values and arm {labels.size}; expected one arm per customer"
        )
    return y, labels


def _arm_order(labels: npt.NDArray[np.object_], control: str) -> list[str]:
    arms = sorted({str(a) for a in labels if a is not None and a == a})
    if control not in arms:
        raise ExperimentError(
            f"control arm {control!r} has no customers; arms seen: {arms}",
            hint="pass control= the name of the arm the others are compared against",
        )
    return [control, *(a for a in arms if a != control)]


def analyze(
    outcome: Values,
    arm: Values,
    *,
    control: str = "control",
    metric: str = "metric",
    kind: MetricKind | str | None = None,
    covariate: Values | None = None,
    level: float = 0.95,
    correction: Correction | str = Correction.HOLM,
) -> MetricReport:
    """Summaries of every arm and the lift of every other arm over *control*.

    *kind* is guessed from the values when not given (all 0/1: binary). With a
    *covariate*, the lifts are CUPED-adjusted (the arm summaries stay raw). With
    several treatment arms their p-values are adjusted by *correction* (Holm).
    Customers with no arm (None) are left out.
    """
    y, labels = _split(outcome, arm, metric)
    correction = Correction(correction)
    arms = _arm_order(labels, control)
    kind = _kind(y, kind)
    cuped_result = None
    compared, compared_kind = y, kind
    has_arm = np.array([a is not None and a == a for a in labels], dtype=bool)
    if covariate is not None:
        x = _as_float(covariate, "covariate")
        if x.shape != y.shape:
            raise ExperimentError(f"covariate has {x.size} values for {y.size} customers")
        adjusted, cuped_result = cuped(y[has_arm], x[has_arm], labels[has_arm])
        compared = np.full_like(y, np.nan)
        compared[has_arm] = adjusted
        compared_kind = MetricKind.CONTINUOUS
    masks = {a: has_arm & (labels == a) for a in arms}
    summaries = tuple(summarize_arm(y[masks[a]], arm=a, kind=kind, level=level) for a in arms)
    lifts = [
        compare_arms(
            compared[masks[a]],
            compared[masks[control]],
            kind=compared_kind,
            level=level,
            names=(a, control),
        )
        for a in arms[1:]
    ]
    adjusted_p = adjust_pvalues([lift.p_value for lift in lifts], correction)
    lifts = [_with_p(lift, float(p)) for lift, p in zip(lifts, adjusted_p, strict=True)]
    return MetricReport(metric, kind, control, summaries, tuple(lifts), correction, cuped_result)


def _with_p(lift: Lift, p_adjusted: float) -> Lift:
    return Lift(**{**asdict(lift), "p_adjusted": p_adjusted})


@dataclass(frozen=True)
class SRMResult:
    """The sample-ratio check: observed against expected arm counts."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    df: int
    p_value: float
    threshold: float
    flagged: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def srm_check(
    observed: Mapping[str, int] | Values,
    weights: Mapping[str, float],
    *,
    threshold: float = 0.001,
) -> SRMResult:
    """Chi-square test of the arm counts against the weights; flagged when ``p < threshold``.

    *observed* is the count per arm, or the arm label of every assigned customer.
    An arm label that is not in *weights* is an error: that is broken assignment.
    """
    if isinstance(observed, Mapping):
        counts = {str(k): int(v) for k, v in observed.items()}
    else:
        labels = pd.Series(np.asarray(observed, dtype=object)).dropna()
        counts = {str(k): int(v) for k, v in labels.value_counts().items()}
    unknown = sorted(set(counts) - set(weights))
    if unknown:
        raise ExperimentError(
            f"arms {unknown} were observed but are not in the experiment's arms "
            f"{sorted(weights)}; assignment is broken"
        )
    total_weight = sum(weights.values())
    if len(weights) < 2 or not all(w > 0 for w in weights.values()):
        raise ExperimentError(f"weights {dict(weights)!r}: expected two or more positive weights")
    n = sum(counts.values())
    if n == 0:
        raise ExperimentError("no assigned customers to check")
    names = list(weights)
    obs = np.array([counts.get(a, 0) for a in names], dtype=np.float64)
    exp = np.array([n * weights[a] / total_weight for a in names])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    df = len(names) - 1
    p = float(stats.chi2.sf(chi2, df))
    return SRMResult(
        {a: int(o) for a, o in zip(names, obs, strict=True)},
        {a: float(e) for a, e in zip(names, exp, strict=True)},
        chi2,
        df,
        p,
        threshold,
        p < threshold,
    )
