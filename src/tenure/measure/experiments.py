"""Experiments: deterministic assignment, holdouts, and their statistics.

Assignment (:func:`assign`, :func:`assign_many`, :func:`in_global_control`) hashes
``(salt, experiment, customer)`` with SHA-256, so an arm never needs to be looked
up to be known. The statistics take per-customer outcomes and arm labels:
:func:`analyze` (arm summaries with intervals, absolute and relative lift, CUPED),
:func:`srm_check` (sample-ratio mismatch), :func:`segment_breakdown` (per-segment
lifts with Holm or Benjamini–Hochberg control, post-stratified lifts) and
:func:`sequential_test` (always-valid p-values and intervals, safe to look at any
time). Definitions are in ``docs/measure.md``.
"""

from tenure.decide._assign import (
    Arm,
    Assignment,
    AssignmentReason,
    Experiment,
    ExperimentError,
    GlobalControl,
    assign,
    assign_many,
    assignment,
    bucket,
    buckets,
    in_global_control,
    in_global_control_many,
)
from tenure.measure._segments import (
    SegmentBreakdown,
    SegmentLift,
    segment_breakdown,
    stratified_lift,
)
from tenure.measure._sequential import (
    SequentialLook,
    SequentialResult,
    always_valid,
    sequential_test,
)
from tenure.measure._stats import (
    ArmSummary,
    Correction,
    CupedResult,
    Lift,
    MetricKind,
    MetricReport,
    SRMResult,
    adjust_pvalues,
    analyze,
    compare_arms,
    cuped,
    srm_check,
    summarize_arm,
)

__all__ = [
    "Arm",
    "ArmSummary",
    "Assignment",
    "AssignmentReason",
    "Correction",
    "CupedResult",
    "Experiment",
    "ExperimentError",
    "GlobalControl",
    "Lift",
    "MetricKind",
    "MetricReport",
    "SRMResult",
    "SegmentBreakdown",
    "SegmentLift",
    "SequentialLook",
    "SequentialResult",
    "adjust_pvalues",
    "always_valid",
    "analyze",
    "assign",
    "assign_many",
    "assignment",
    "bucket",
    "buckets",
    "compare_arms",
    "cuped",
    "in_global_control",
    "in_global_control_many",
    "segment_breakdown",
    "sequential_test",
    "srm_check",
    "stratified_lift",
    "summarize_arm",
]
