"""Experiments: assignment, and the statistics checked against scipy and statsmodels."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats import proportion
from statsmodels.stats.multitest import multipletests

from tenure.errors import TenureError
from tenure.measure import experiments
from tenure.measure.experiments import (
    Arm,
    AssignmentReason,
    Experiment,
    ExperimentError,
    GlobalControl,
    MetricKind,
    adjust_pvalues,
    always_valid,
    analyze,
    assign,
    assign_many,
    assignment,
    bucket,
    compare_arms,
    in_global_control,
    in_global_control_many,
    segment_breakdown,
    sequential_test,
    srm_check,
    stratified_lift,
    summarize_arm,
)

IDS = [f"cus_{i:06d}" for i in range(100_000)]
PRICING = Experiment("pricing-2025", "k7", (Arm("control", 2), Arm("a", 1), Arm("b", 1)))
HALVES = Experiment("welcome-email", "s1", (Arm("control"), Arm("treatment")))
GLOBAL = GlobalControl(5, "gc-2025")


def _binomial_ok(count: int, n: int, p: float, sds: float = 4.0) -> bool:
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


# --- assignment ---------------------------------------------------------------------------


def test_bucket_is_sha256_of_salt_experiment_customer() -> None:
    digest = hashlib.sha256(b"experiment|k7|pricing-2025|cus_001").digest()
    expected = (int.from_bytes(digest[:8], "big") >> 11) / 2**53
    assert bucket("cus_001", PRICING) == expected == 0.6297567592910469
    assert bucket(12345, PRICING) == bucket("12345", PRICING) == 0.9284634622533035


def test_assignment_is_fixed_across_runs_and_processes() -> None:
    # Computed once when the scheme was written; any change here reshuffles live experiments.
    assert {c: assign(c, PRICING) for c in ["cus_001", "cus_002", "cus_003", 12345]} == {
        "cus_001": "a",
        "cus_002": "a",
        "cus_003": "control",
        12345: "b",
    }
    first_100 = [f"cus_{i:03d}" for i in range(100)]
    assert [c for c in first_100 if in_global_control(c, GLOBAL)] == [
        "cus_001",
        "cus_012",
        "cus_038",
    ]


def test_arm_shares_match_the_weights_within_binomial_tolerance() -> None:
    counts = assign_many(IDS, PRICING).value_counts()
    for arm, weight in PRICING.weights.items():
        assert _binomial_ok(int(counts[arm]), len(IDS), weight), (arm, counts[arm])
    assert PRICING.weights == {"control": 0.5, "a": 0.25, "b": 0.25}
    assert not srm_check(counts.to_dict(), PRICING.weights).flagged


def test_two_experiments_assign_independently() -> None:
    table = pd.crosstab(assign_many(IDS, PRICING), assign_many(IDS, HALVES))
    assert table.shape == (3, 2)
    assert stats.chi2_contingency(table.to_numpy()).pvalue > 0.001
    # The same experiment under another salt is a fresh draw as well.
    resalted = Experiment("pricing-2025", "k8", PRICING.arms)
    again = pd.crosstab(assign_many(IDS, PRICING), assign_many(IDS, resalted))
    assert stats.chi2_contingency(again.to_numpy()).pvalue > 0.001


def test_global_control_share_and_independence_from_experiments() -> None:
    held = in_global_control_many(IDS, GLOBAL)
    assert _binomial_ok(int(held.sum()), len(IDS), 0.05)
    table = pd.crosstab(held, assign_many(IDS, PRICING).to_numpy())
    assert stats.chi2_contingency(table.to_numpy()).pvalue > 0.001
    assert not in_global_control_many(IDS[:1000], GlobalControl(0, "none")).any()


def test_vectorized_assignment_equals_scalar() -> None:
    experiment = Experiment(
        "winback", "w1", (Arm("control", 0.1), Arm("offer", 0.9)), stages={"churned", "lost"}
    )
    ids: list[str | int] = [*IDS[:2000], *range(500)]
    stages = ["churned", "lost", "mature", None] * (len(ids) // 4)
    series = pd.Series(ids, index=[f"r{i}" for i in range(len(ids))])
    vector = assign_many(series, experiment, stages=stages, control=GLOBAL)
    scalar = [
        assign(c, experiment, stage=s, control=GLOBAL) for c, s in zip(ids, stages, strict=True)
    ]
    assert vector.tolist() == scalar
    assert vector.index[0] == "r0"
    assert vector.notna().sum() > 800  # most churned/lost customers got an arm
    values = experiments.buckets(ids, experiment)
    assert values.tolist() == [bucket(c, experiment) for c in ids]


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=12) | st.integers(), min_size=1, max_size=40),
    weights=st.lists(st.floats(0.001, 1000.0), min_size=2, max_size=5),
    salt=st.text(min_size=1, max_size=8).filter(lambda s: "|" not in s),
)
def test_any_ids_and_weights_assign_the_same_one_by_one_and_together(
    ids: list[str | int], weights: list[float], salt: str
) -> None:
    arms = tuple(Arm(f"arm{i}", w) for i, w in enumerate(weights))
    experiment = Experiment("prop", salt, arms, control="arm0")
    together = assign_many(ids, experiment).tolist()
    assert together == [assign(c, experiment) for c in ids]
    assert together == [assign(c, experiment) for c in ids]  # and again: no state
    assert all(0 <= bucket(c, experiment) < 1 for c in ids)
    assert sum(experiment.weights.values()) == pytest.approx(1.0)


def test_assignment_records_why() -> None:
    arms = (Arm("control"), Arm("tips"))
    experiment = Experiment(
        "onboarding-tips", "t1", arms, stages={"onboarding"}, stratify_by_stage=True
    )
    held = assignment("cus_001", experiment, stage="onboarding", control=GLOBAL)
    assert held.arm is None
    assert held.reason is AssignmentReason.GLOBAL_CONTROL
    other = assignment("cus_002", experiment, stage="mature", control=GLOBAL)
    assert other.arm is None
    assert other.reason is AssignmentReason.INELIGIBLE_STAGE
    got = assignment("cus_002", experiment, stage="onboarding", control=GLOBAL)
    assert got.as_dict() == {
        "experiment_id": "onboarding-tips",
        "customer_id": "cus_002",
        "arm": got.arm,
        "reason": AssignmentReason.ASSIGNED,
        "bucket": bucket("cus_002", experiment),
        "stage": "onboarding",
    }
    assert got.arm in {"control", "tips"}
    # The stage never enters the hash: a customer keeps their arm when their stage moves on.
    plain = Experiment("onboarding-tips", "t1", (Arm("control"), Arm("tips")))
    assert got.arm == assign("cus_002", plain)
    with pytest.raises(ExperimentError, match="stratifies by stage"):
        assign("cus_002", experiment)
    with pytest.raises(ExperimentError, match="stratifies by stage"):
        assign_many(["cus_002"], experiment, stages=[None])


def test_invalid_experiment_names_every_field() -> None:
    with pytest.raises(ExperimentError) as caught:
        Experiment("a|b", "", (Arm("x"), Arm("x")), control="ctl", stages={"renewal", "vip"})
    error = caught.value
    assert isinstance(error, TenureError)
    assert isinstance(error, ValueError)
    assert [p.key for p in error.problems] == ["id", "salt", "arms[1].name", "control", "stages"]
    assert str(error).splitlines()[:3] == [
        "invalid experiment 'a|b'",
        "  - id: a experiment id without '|' (it separates the hashed parts) (got 'a|b')",
        "  - salt: a non-empty salt (got '')",
    ]
    with pytest.raises(ExperimentError, match=r"weight: a finite weight > 0 \(got -1\)"):
        Arm("control", -1)
    with pytest.raises(ExperimentError, match=r"percent: a percentage in \[0, 100\)"):
        GlobalControl(100, "g")
    with pytest.raises(ExperimentError, match="expected a string or an integer"):
        assign(1.5, HALVES)  # type: ignore[arg-type]


# --- fixed-horizon statistics against statsmodels and scipy -------------------------------


@pytest.mark.parametrize(("count", "nobs"), [(30, 100), (1, 40), (0, 25), (997, 1000)])
def test_binary_arm_interval_is_wilson(count: int, nobs: int) -> None:
    summary = summarize_arm([1] * count + [0] * (nobs - count), kind="binary", level=0.9)
    low, high = proportion.proportion_confint(count, nobs, alpha=0.1, method="wilson")
    assert summary.mean == pytest.approx(count / nobs)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_continuous_arm_interval_is_student_t() -> None:
    y = np.random.default_rng(3).gamma(2.0, 30.0, size=60)
    summary = summarize_arm(y, kind="continuous")
    low, high = stats.t.interval(0.95, 59, loc=y.mean(), scale=stats.sem(y))
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high), rel=1e-12)


@pytest.mark.parametrize(("c_t", "n_t", "c_c", "n_c"), [(30, 100, 20, 100), (412, 5000, 350, 4800)])
def test_binary_lift_matches_statsmodels(c_t: int, n_t: int, c_c: int, n_c: int) -> None:
    treatment = np.r_[np.ones(c_t), np.zeros(n_t - c_t)]
    control = np.r_[np.ones(c_c), np.zeros(n_c - c_c)]
    lift = compare_arms(treatment, control)
    test = proportion.test_proportions_2indep(c_t, n_t, c_c, n_c, method="wald", compare="diff")
    diff_ci = proportion.confint_proportions_2indep(
        c_t, n_t, c_c, n_c, method="wald", compare="diff"
    )
    ratio_ci = proportion.confint_proportions_2indep(
        c_t, n_t, c_c, n_c, method="log", compare="ratio"
    )
    assert lift.absolute == pytest.approx(c_t / n_t - c_c / n_c)
    assert lift.statistic == pytest.approx(test.statistic, rel=1e-12)
    assert lift.p_value == pytest.approx(test.pvalue, rel=1e-10)
    assert (lift.absolute_ci_low, lift.absolute_ci_high) == pytest.approx(diff_ci, rel=1e-10)
    assert lift.relative == pytest.approx((c_t / n_t) / (c_c / n_c) - 1)
    expected_relative = (ratio_ci[0] - 1, ratio_ci[1] - 1)
    assert (lift.relative_ci_low, lift.relative_ci_high) == pytest.approx(expected_relative)
    assert math.isinf(lift.df)


def test_continuous_lift_is_welch() -> None:
    rng = np.random.default_rng(11)
    treatment, control = rng.normal(12.0, 8.0, 70), rng.normal(10.0, 3.0, 130)
    lift = compare_arms(treatment, control, level=0.9)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert lift.statistic == pytest.approx(welch.statistic, rel=1e-12)
    assert lift.df == pytest.approx(welch.df, rel=1e-12)
    assert lift.p_value == pytest.approx(welch.pvalue, rel=1e-10)
    ci = welch.confidence_interval(0.9)
    assert (lift.absolute_ci_low, lift.absolute_ci_high) == pytest.approx((ci.low, ci.high))
    # p < α exactly when the interval excludes 0: they share the variance.
    assert (lift.p_value < 0.1) == (lift.absolute_ci_low > 0 or lift.absolute_ci_high < 0)


def test_multiple_comparison_adjustments_match_statsmodels() -> None:
    rng = np.random.default_rng(5)
    p = np.r_[rng.uniform(0, 0.05, 8), rng.uniform(0, 1, 12), [0.01, 0.01, 1.0]]
    assert adjust_pvalues(p, "holm") == pytest.approx(multipletests(p, method="holm")[1])
    assert adjust_pvalues(p, "bh") == pytest.approx(multipletests(p, method="fdr_bh")[1])
    assert adjust_pvalues(p, "none").tolist() == p.tolist()


def test_srm_chi_square_matches_scipy_and_flags_broken_assignment() -> None:
    counts = {"control": 50_412, "a": 24_880, "b": 24_708}
    result = srm_check(counts, PRICING.weights)
    expected = stats.chisquare(list(counts.values()), [50_000, 25_000, 25_000])
    assert result.chi2 == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.df == 2
    # 50/50 intended, 52/48 observed on 100k: broken.
    broken = srm_check({"control": 52_000, "treatment": 48_000}, HALVES.weights)
    assert broken.flagged
    assert broken.chi2 == pytest.approx(160.0)
    # The real assignment of 100k customers is fair, counted from labels.
    fair = srm_check(assign_many(IDS, HALVES), HALVES.weights)
    assert not fair.flagged
    assert sum(fair.observed.values()) == len(IDS)
    with pytest.raises(ExperimentError, match=r"arms \['c'\] were observed"):
        srm_check({"control": 5, "c": 5}, HALVES.weights)


def test_analyze_reports_every_arm_and_adjusts_lifts() -> None:
    rng = np.random.default_rng(8)
    arms = assign_many(IDS[:20_000], PRICING).to_numpy()
    rates = np.select([arms == "a", arms == "b"], [0.13, 0.10], 0.10)
    converted = (rng.uniform(size=arms.size) < rates).astype(int)
    report = analyze(converted, arms, metric="conversion")
    assert report.kind is MetricKind.BINARY
    assert [s.arm for s in report.arms] == ["control", "a", "b"]
    assert [(lift.treatment, lift.control) for lift in report.lifts] == [
        ("a", "control"),
        ("b", "control"),
    ]
    raw = [lift.p_value for lift in report.lifts]
    assert [lift.p_adjusted for lift in report.lifts] == pytest.approx(
        multipletests(raw, method="holm")[1]
    )
    assert report.lifts[0].p_adjusted < 0.001 < report.lifts[1].p_adjusted
    assert report.as_dict()["lifts"][0]["treatment"] == "a"  # type: ignore[index]
    with pytest.raises(ExperimentError, match="control arm 'holdout' has no customers"):
        analyze(converted, arms, control="holdout")
    with pytest.raises(ExperimentError, match="1 missing or infinite values"):
        analyze(np.r_[np.nan, converted[1:]], arms)


def test_cuped_removes_rho_squared_of_the_variance_and_stays_unbiased() -> None:
    rng = np.random.default_rng(2024)
    rho, effect, n, reps = 0.6, 0.1, 2_000, 1_000
    arms = np.where(np.arange(n) % 2 == 0, "treatment", "control")
    raw, adjusted, reductions = [], [], []
    for _ in range(reps):
        x = rng.normal(size=n)
        y = 10 + rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
        y = y + effect * (arms == "treatment")
        plain = analyze(y, arms, kind="continuous")
        with_cuped = analyze(y, arms, kind="continuous", covariate=50 + 5 * x)
        assert with_cuped.cuped is not None
        raw.append(plain.lifts[0].absolute)
        adjusted.append(with_cuped.lifts[0].absolute)
        reductions.append(with_cuped.cuped.variance_reduction)
    adjusted_sd = np.std(adjusted, ddof=1)
    # Unbiased: the mean estimate is within 3 standard errors of the true effect.
    assert abs(np.mean(adjusted) - effect) < 3 * adjusted_sd / math.sqrt(reps)
    # The variance of the estimate, and the reported reduction, drop by about ρ² = 0.36
    # (the first is a ratio of two variances over 1,000 runs: its standard error is ≈ 0.015).
    assert 1 - np.var(adjusted, ddof=1) / np.var(raw, ddof=1) == pytest.approx(rho**2, abs=0.05)
    assert np.mean(reductions) == pytest.approx(rho**2, abs=0.01)


def test_segment_breakdown_adjusts_all_segments_together() -> None:
    rng = np.random.default_rng(17)
    n = 12_000
    stage = rng.choice(["onboarding", "established", "mature"], size=n, p=[0.2, 0.5, 0.3])
    arm = assign_many(IDS[:n], HALVES).to_numpy()
    base = np.select([stage == "onboarding", stage == "established"], [20.0, 50.0], 80.0)
    revenue = base + 4.0 * (arm == "treatment") * (stage == "onboarding") + rng.normal(0, 10, n)
    stage[:3] = "trial"  # a segment too small to compare
    arm[:3] = "treatment"
    result = segment_breakdown(revenue, arm, stage, correction="bh")
    assert [row.segment for row in result.rows] == ["established", "mature", "onboarding"]
    assert result.skipped == (("trial", "treatment"),)
    raw = [row.lift.p_value for row in result.rows]
    assert [row.lift.p_adjusted for row in result.rows] == pytest.approx(
        multipletests(raw, method="fdr_bh")[1]
    )
    onboarding = result.rows[2]
    mask = stage == "onboarding"
    alone = compare_arms(revenue[mask & (arm == "treatment")], revenue[mask & (arm == "control")])
    assert onboarding.lift.absolute == pytest.approx(alone.absolute)
    assert onboarding.lift.p_adjusted < 0.001
    # The post-stratified lift is the share-weighted mean of the segment lifts.
    stratified, left_out = stratified_lift(revenue, arm, stage)
    assert left_out == ("trial",)
    shares = [row.n_treatment + row.n_control for row in result.rows]
    weighted = np.average([row.lift.absolute for row in result.rows], weights=shares)
    assert stratified.absolute == pytest.approx(weighted)
    assert result.stratified == (stratified,)
    assert stratified.absolute_ci_low < 0.8 < stratified.absolute_ci_high  # 4.0 × 0.2


# --- always-valid sequential monitoring ---------------------------------------------------

RUNS, LOOKS, BATCH = 1_000, 50, 100
# One-sided 99 % binomial tolerance above the nominal 5 % over 1,000 runs.
NOMINAL_LIMIT = 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / RUNS)


def _running_difference(
    rng: np.random.Generator, effect: float, *, binary_rate: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run and look: difference of means, its variance, and customers per arm."""
    n = np.arange(1, LOOKS + 1) * BATCH
    arms = []
    for shift in (effect, 0.0):
        if binary_rate is None:
            batches = rng.normal(shift, 1.0, size=(RUNS, LOOKS, BATCH))
            total = np.cumsum(batches.sum(-1), -1)
            squares = np.cumsum((batches * batches).sum(-1), -1)
            mean = total / n
            var = (squares - n * mean * mean) / (n - 1)
        else:
            total = np.cumsum(rng.binomial(BATCH, binary_rate + shift, size=(RUNS, LOOKS)), -1)
            mean = total / n
            var = mean * (1 - mean)
        arms.append((mean, var / n))
    (mean_t, vm_t), (mean_c, vm_c) = arms
    return mean_t - mean_c, vm_t + vm_c, n


@pytest.mark.parametrize(
    ("binary_rate", "mixture_sd"), [(None, 0.1), (0.1, 0.02)], ids=["revenue", "conversion"]
)
def test_peeking_at_the_always_valid_p_value_keeps_the_false_positive_rate(
    binary_rate: float | None, mixture_sd: float
) -> None:
    rng = np.random.default_rng(20240607)
    diff, var, n = _running_difference(rng, 0.0, binary_rate=binary_rate)
    p, low, high = always_valid(diff, var, mixture_sd=mixture_sd, alpha=0.05)
    always_valid_fpr = (p < 0.05).any(axis=-1).mean()
    # The naive analyst runs a fixed-horizon test at each of the 50 looks.
    naive_p = 2 * stats.t.sf(np.abs(diff / np.sqrt(var)), 2 * n - 2)
    naive_fpr = (naive_p < 0.05).any(axis=-1).mean()
    # Measured with this seed: revenue 0.029 vs naive 0.325; conversion 0.014 vs 0.337.
    assert always_valid_fpr <= NOMINAL_LIMIT
    assert naive_fpr > 0.2
    assert (naive_p[:, -1] < 0.05).mean() <= NOMINAL_LIMIT  # one look is fine
    # The always-valid interval covers the true difference at every look as often.
    assert ((low <= 0) & (high >= 0)).all(axis=-1).mean() >= 1 - NOMINAL_LIMIT
    assert np.all(np.diff(p, axis=-1) <= 0)  # the p-value never rises


def test_the_always_valid_test_rejects_a_real_effect() -> None:
    rng = np.random.default_rng(99)
    diff, var, _ = _running_difference(rng, 0.1)
    p, low, high = always_valid(diff, var, mixture_sd=0.1)
    # Measured: 98.3 % of runs reject, half of them by look 16 of 50.
    assert (p < 0.05).any(axis=-1).mean() > 0.95
    assert ((low <= 0.1) & (high >= 0.1)).all(axis=-1).mean() >= 1 - NOMINAL_LIMIT


def test_sequential_test_over_customers_matches_the_formula() -> None:
    rng = np.random.default_rng(4)
    n = 3_000
    arm = np.where(np.arange(n) % 2 == 0, "treatment", "control")
    revenue = rng.normal(20.0, 5.0, n) + 1.0 * (arm == "treatment")
    day = np.repeat(np.arange(1, 11), n // 10)
    result = sequential_test(revenue, arm, day, mixture_sd=1.0)
    assert [look.look for look in result.looks] == list(range(1, 11))
    first = result.looks[0]
    t, c = revenue[(day == 1) & (arm == "treatment")], revenue[(day == 1) & (arm == "control")]
    v = t.var(ddof=1) / t.size + c.var(ddof=1) / c.size
    estimate = t.mean() - c.mean()
    likelihood_ratio = math.sqrt(v / (v + 1.0)) * math.exp(estimate**2 / (2 * v * (v + 1.0)))
    assert (first.n_treatment, first.n_control) == (150, 150)
    assert first.estimate == pytest.approx(estimate)
    assert first.p_value == pytest.approx(min(1.0, 1 / likelihood_ratio))
    half = math.sqrt(2 * v * (v + 1.0) * (math.log(20) + 0.5 * math.log((v + 1.0) / v)))
    assert (first.ci_low, first.ci_high) == pytest.approx((estimate - half, estimate + half))
    assert result.rejected
    assert result.first_rejection == 5
    assert result.as_dict()["first_rejection"] == 5
    with pytest.raises(ExperimentError, match="mixture_sd 0 is not a positive number"):
        sequential_test(revenue, arm, day, mixture_sd=0)


def test_public_surface_is_pinned() -> None:
    assert sorted(experiments.__all__) == sorted(
        [
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
    )
    assert all(hasattr(experiments, name) for name in experiments.__all__)
