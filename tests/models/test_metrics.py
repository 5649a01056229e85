"""Classification metrics: scikit-learn where it has the metric, hand-computed examples
for the expected calibration error and lift that we compute ourselves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from tenure.errors import ModelError
from tenure.models.metrics import (
    ClassificationMetrics,
    classification_report,
    expected_calibration_error,
    lift_at,
)

# The four-row example of scikit-learn's roc_auc_score and average_precision_score docs.
Y_SMALL = np.array([0, 0, 1, 1])
P_SMALL = np.array([0.1, 0.4, 0.35, 0.8])


def test_report_on_the_documented_example() -> None:
    report = classification_report(Y_SMALL, P_SMALL)
    assert report.roc_auc == pytest.approx(0.75)
    assert report.pr_auc == pytest.approx(0.8333333333)
    # mean of (0.1², 0.4², 0.65², 0.2²)
    assert report.brier == pytest.approx(0.158125)
    assert report.base_rate == 0.5
    assert report.n == 4


def test_report_matches_sklearn_on_a_random_sample() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    report = classification_report(y, p)
    assert report.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert report.pr_auc == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert report.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert report.ece == pytest.approx(expected_calibration_error(y, p, 10, "quantile"))
    assert report.top_decile_lift == pytest.approx(lift_at(y, p, 0.1))
    assert report.base_rate == pytest.approx(y.mean())
    assert report.n == 500


def test_report_is_frozen_and_exports_floats() -> None:
    report = classification_report(Y_SMALL.astype(bool), P_SMALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.n = 3  # type: ignore[misc]
    assert isinstance(report, ClassificationMetrics)
    assert report.as_dict() == {
        "roc_auc": pytest.approx(0.75),
        "pr_auc": pytest.approx(0.8333333333),
        "brier": pytest.approx(0.158125),
        "ece": pytest.approx(report.ece),
        "top_decile_lift": 2.0,
        "base_rate": 0.5,
        "n": 4.0,
    }


def test_ece_on_a_hand_computed_example() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.6, 0.8])
    # 2 quantile bins {0.1, 0.2} and {0.6, 0.8}: |0.15 − 0.5| and |0.7 − 0.5|, half each.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.275)
    # 5 uniform bins: (0, 0.2] holds 0.1 and 0.2; 0.6 and 0.8 sit alone in (0.4, 0.6] and
    # (0.6, 0.8]: 0.5·0.35 + 0.25·0.6 + 0.25·0.2.
    assert expected_calibration_error(y, p, n_bins=5, strategy="uniform") == pytest.approx(0.375)


def test_ece_is_small_when_calibrated_and_large_when_shifted() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.015
    shifted = np.clip(p + 0.2, 0.0, 1.0)
    # Every bin is 0.2 too high except where the clip at 1 eats into the shift.
    assert expected_calibration_error(y, shifted) == pytest.approx(0.18, abs=0.01)
    assert expected_calibration_error(y, shifted, strategy="uniform") == pytest.approx(
        0.18, abs=0.01
    )


def test_lift_on_a_hand_example() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1])
    # Base rate 0.2. Top 2 (0.9, 0.8) hold one event: 0.5 / 0.2. Top 3 add 0.7: (2/3) / 0.2.
    assert lift_at(y, p, 0.2) == pytest.approx(2.5)
    assert lift_at(y, p, 0.3) == pytest.approx(10 / 3)
    assert lift_at(y, p, 1.0) == pytest.approx(1.0)
    # When every score ties, the cut takes the earliest rows: here row 0, an event.
    assert lift_at(y, np.full(10, 0.5), 0.1) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], r"y_true must hold only 0 and 1 \(or booleans\); found \[2\]"),
        ([0, 1], [0.1, 1.5], r"p must be probabilities in \[0, 1\]; row 1 is 1.5"),
        ([0, 1], [0.1, float("nan")], r"p must be probabilities in \[0, 1\]; row 1 is NaN"),
        ([0, 1, 1], [0.1, 0.2], "y_true has 3 rows but p has 2; they must match"),
        ([1, 1], [0.1, 0.2], "y_true holds only the outcome 1 across 2 rows"),
    ],
)
def test_report_rejects_bad_input(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        classification_report(y, p)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ModelError, match="strategy must be 'quantile' or 'uniform'"):
        expected_calibration_error(Y_SMALL, P_SMALL, strategy="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"n_bins must be a whole number ≥ 1 \(got 0\)"):
        expected_calibration_error(Y_SMALL, P_SMALL, n_bins=0)
    with pytest.raises(ModelError, match=r"fraction must be in \(0, 1\] \(got 0\)"):
        lift_at(Y_SMALL, P_SMALL, 0)
    with pytest.raises(ModelError, match="no events"):
        lift_at([0, 0], [0.1, 0.2])
