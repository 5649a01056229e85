"""Per-segment breakdowns with multiple-comparison control, and post-stratified lifts.

A breakdown compares every treatment arm with the control inside every segment
(lifecycle stage, plan, region …) and adjusts the p-values of all those tests
together (Holm by default, Benjamini–Hochberg on request), since among many
segments some look significant by chance alone.

The **post-stratified lift** over strata ``s`` with shares ``w_s = n_s / N`` (the
customers of both arms in the stratum over those in every used stratum) is
``Σ w_s (mean_t,s − mean_c,s)``, with variance ``Σ w_s² (v_t,s / n_t,s + v_c,s / n_c,s)``
and a normal interval; the relative lift uses the delta method on the log of
``Σ w_s mean_t,s / Σ w_s mean_c,s``. It is how an experiment that stratifies by
lifecycle stage is read: it removes the chance imbalance of stages between arms.
Strata without at least two customers in each of the two arms are left out (and
named in the result).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from tenure.errors import ExperimentError
from tenure.measure._stats import (
    Correction,
    Lift,
    MetricKind,
    Values,
    _arm_order,
    _as_float,
    _kind,
    _lift,
    _moments,
    _with_p,
    adjust_pvalues,
    compare_arms,
)

__all__ = ["SegmentBreakdown", "SegmentLift", "segment_breakdown", "stratified_lift"]


@dataclass(frozen=True)
class SegmentLift:
    """One treatment arm against control inside one segment."""

    segment: str
    n_treatment: int
    n_control: int
    lift: Lift

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SegmentBreakdown:
    """Every (segment, treatment arm) lift, adjusted together, and the stratified lifts."""

    control: str
    correction: Correction
    rows: tuple[SegmentLift, ...]
    #: Per treatment arm, the post-stratified lift over the segments.
    stratified: tuple[Lift, ...]
    #: ``(segment, arm)`` pairs with fewer than two customers in an arm.
    skipped: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _frame(outcome: Values, arm: Values, segment: Values) -> pd.DataFrame:
    y = _as_float(outcome, "outcome")
    labels = np.asarray(arm, dtype=object)
    segments = np.asarray(segment, dtype=object)
    if not y.size == labels.size == segments.size:
        raise ExperimentError(
            f"outcome, arm and segment have {y.size}, {labels.size} and {segments.size} "
            "values; expected one of each per customer"
        )
    frame = pd.DataFrame({"y": y, "arm": labels, "segment": segments})
    frame = frame[frame["arm"].notna() & frame["segment"].notna()]
    frame["arm"] = frame["arm"].astype(str)
    frame["segment"] = frame["segment"].astype(str)
    return frame


def stratified_lift(
    outcome: Values,
    arm: Values,
    stratum: Values,
    *,
    control: str = "control",
    treatment: str = "treatment",
    kind: MetricKind | str | None = None,
    level: float = 0.95,
) -> tuple[Lift, tuple[str, ...]]:
    """The post-stratified lift of *treatment* over *control*, and the strata left out."""
    frame = _frame(outcome, arm, stratum)
    kind = _kind(frame["y"].to_numpy(), kind)
    return _stratified(frame, control, treatment, kind, level)


def _stratified(
    frame: pd.DataFrame, control: str, treatment: str, kind: MetricKind, level: float
) -> tuple[Lift, tuple[str, ...]]:
    rows = []
    left_out = []
    for name, group in frame.groupby("segment", sort=True):
        y_t = group.loc[group["arm"] == treatment, "y"].to_numpy()
        y_c = group.loc[group["arm"] == control, "y"].to_numpy()
        if y_t.size < 2 or y_c.size < 2:
            left_out.append(str(name))
            continue
        rows.append((y_t.size + y_c.size, _moments(y_t, kind), _moments(y_c, kind)))
    if not rows:
        raise ExperimentError(
            f"no stratum has two or more customers in both {treatment!r} and {control!r}"
        )
    total = sum(size for size, _, _ in rows)
    mean_t = mean_c = var_t = var_c = 0.0
    for size, (m_t, vm_t, _), (m_c, vm_c, _) in rows:
        w = size / total
        mean_t += w * m_t
        mean_c += w * m_c
        var_t += w * w * vm_t
        var_c += w * w * vm_c
    return _lift(treatment, control, (mean_t, var_t, mean_c, var_c), math.inf, level), tuple(
        left_out
    )


def segment_breakdown(
    outcome: Values,
    arm: Values,
    segment: Values,
    *,
    control: str = "control",
    kind: MetricKind | str | None = None,
    level: float = 0.95,
    correction: Correction | str = Correction.HOLM,
) -> SegmentBreakdown:
    """Every treatment arm against *control* in every segment, p-values adjusted together."""
    frame = _frame(outcome, arm, segment)
    correction = Correction(correction)
    arms = _arm_order(frame["arm"].to_numpy(dtype=object), control)
    kind = _kind(frame["y"].to_numpy(), kind)
    rows: list[SegmentLift] = []
    skipped: list[tuple[str, str]] = []
    for name, group in frame.groupby("segment", sort=True):
        y_c: npt.NDArray[np.float64] = group.loc[group["arm"] == control, "y"].to_numpy()
        for treatment in arms[1:]:
            y_t = group.loc[group["arm"] == treatment, "y"].to_numpy()
            if y_t.size < 2 or y_c.size < 2:
                skipped.append((str(name), treatment))
                continue
            lift = compare_arms(y_t, y_c, kind=kind, level=level, names=(treatment, control))
            rows.append(SegmentLift(str(name), y_t.size, y_c.size, lift))
    adjusted = adjust_pvalues([row.lift.p_value for row in rows], correction)
    rows = [
        SegmentLift(row.segment, row.n_treatment, row.n_control, _with_p(row.lift, float(p)))
        for row, p in zip(rows, adjusted, strict=True)
    ]
    stratified = tuple(_stratified(frame, control, t, kind, level)[0] for t in arms[1:])
    return SegmentBreakdown(control, correction, tuple(rows), stratified, tuple(skipped))
