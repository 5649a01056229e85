"""The churn classifier (and the propensity classifier, same machinery): the Telco
benchmark against the published baseline, the scikit-learn contract, the user's table
as it comes, and TreeSHAP reason codes."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score

from tenure.errors import ModelError, NotFittedError
from tenure.models._gbm import ColumnKind, default_reason_text
from tenure.models.churn import ChurnClassifier, Reason
from tenure.models.metrics import ClassificationMetrics, expected_calibration_error
from tenure.models.propensity import PropensityClassifier

TELCO = Path(__file__).parents[1] / "data" / "telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"

# Tests pass n_jobs=1: the suite shares two cores with other processes, and LightGBM's
# OpenMP threads spin-wait when oversubscribed (a 5-fold run went from 3 s to 30 s).
# deterministic=True makes the model identical for any thread count, which
# test_the_thread_count_does_not_change_the_model checks against the default.
ONE_THREAD = {"n_jobs": 1}


def telco() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(TELCO)
    y = (frame.pop("Churn") == "Yes").to_numpy()
    return frame.drop(columns="customerID"), y


def customers(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic customer table whose churn is driven by one feature, logins_drop."""
    rng = np.random.default_rng(seed)
    logins_drop = rng.uniform(0.0, 1.0, n)
    seats = rng.integers(1, 50, n).astype(float)
    seats[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(np.array(["basic", "pro", "enterprise"], dtype=object), n)
    plan[rng.random(n) < 0.05] = None
    mrr = rng.gamma(2.0, 50.0, n).round(2).astype(str).astype(object)
    mrr[rng.random(n) < 0.03] = " "  # blanks, as in an export
    frame = pd.DataFrame(
        {
            "logins_drop": logins_drop,
            "seats": seats,
            "plan": plan,
            "annual": rng.random(n) < 0.5,
            "mrr": mrr,
            "noise": rng.normal(size=n),
        }
    )
    churn_probability = 1.0 / (1.0 + np.exp(-(-3.0 + 6.0 * logins_drop)))
    return frame, rng.random(n) < churn_probability


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray]:
    return customers()


@pytest.fixture(scope="module")
def fitted(table: tuple[pd.DataFrame, np.ndarray]) -> ChurnClassifier:
    X, y = table
    return ChurnClassifier(**ONE_THREAD).fit(X, y)


# ---------------------------------------------------------------- Telco, against the baseline


@pytest.mark.slow
def test_telco_five_fold_auc_and_calibration() -> None:
    """Published baseline: L2 logistic regression, 5×5-fold ROC-AUC 0.845 ± 0.011."""
    X, y = telco()
    started = time.perf_counter()
    pooled = np.empty(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = ChurnClassifier(**ONE_THREAD).fit(X.iloc[train], y[train])
        pooled[test] = model.predict_proba(X.iloc[test])[:, 1]
    auc = roc_auc_score(y, pooled)
    ece = expected_calibration_error(y, pooled, n_bins=10, strategy="quantile")
    print(
        f"\nTelco 5-fold: ROC-AUC {auc:.4f}, ECE {ece:.4f} (10 quantile bins), "
        f"{time.perf_counter() - started:.1f} s"
    )
    assert auc >= 0.845
    assert ece <= 0.03
    # Telco's TotalCharges is text with blanks for new customers: read as numbers.
    encoding = {column.name: column.kind for column in model.encoding_}
    assert encoding["TotalCharges"] is ColumnKind.NUMBER_TEXT
    assert encoding["Contract"] is ColumnKind.CATEGORY
    assert encoding["tenure"] is ColumnKind.NUMBER


# ---------------------------------------------------------------- the scikit-learn contract


def test_predicting_before_fit_raises(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = table
    model = ChurnClassifier()
    for method in (model.predict_proba, model.predict, model.explain, model.explain_frame):
        with pytest.raises(NotFittedError, match="this ChurnClassifier is not fitted yet"):
            method(X)


def test_clone_and_params_round_trip(fitted: ChurnClassifier) -> None:
    model = ChurnClassifier(learning_rate=0.05, num_leaves=15, n_jobs=1, random_state=3)
    params = model.get_params()
    assert params["learning_rate"] == 0.05
    assert params["n_jobs"] == 1
    assert ChurnClassifier(**params).get_params() == params
    assert clone(model).get_params() == params
    assert clone(model.set_params(num_leaves=31)).num_leaves == 31
    # A clone of a fitted model is unfitted.
    with pytest.raises(NotFittedError):
        clone(fitted).predict_proba(pd.DataFrame({"logins_drop": [0.5]}))


def test_works_inside_cross_val_score(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    scores = cross_val_score(ChurnClassifier(**ONE_THREAD), X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,)
    assert scores.min() > 0.7


def test_fit_learns_what_it_promises(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    assert fitted.classes_.tolist() == [False, True]
    assert fitted.feature_names_in_.tolist() == list(X.columns)
    assert fitted.n_features_in_ == 6
    kinds = {column.name: column.kind for column in fitted.encoding_}
    assert kinds == {
        "logins_drop": ColumnKind.NUMBER,
        "seats": ColumnKind.NUMBER,
        "plan": ColumnKind.CATEGORY,
        "annual": ColumnKind.CATEGORY,
        "mrr": ColumnKind.NUMBER_TEXT,
        "noise": ColumnKind.NUMBER,
    }
    assert dict(zip(fitted.feature_names_in_, fitted.encoding_, strict=True))["plan"].levels == (
        "basic",
        "enterprise",
        "pro",
    )
    assert fitted.calibration_ in {"isotonic", "sigmoid"}
    assert isinstance(fitted.validation_metrics_, ClassificationMetrics)
    assert fitted.validation_metrics_.n == 300  # the stratified 20 % holdout
    assert fitted.validation_metrics_.roc_auc > 0.75
    assert 0 < fitted.best_iteration_ < fitted.n_estimators
    assert fitted.feature_importances_.sum() == pytest.approx(1.0)
    assert fitted.feature_names_in_[np.argmax(fitted.feature_importances_)] == "logins_drop"
    assert fitted.target_ == "churn"
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.predict(X).tolist() == (proba[:, 1] >= 0.5).tolist()


def test_string_labels_are_classes(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    labels = np.where(y, "Yes", "No")
    model = ChurnClassifier(**ONE_THREAD).fit(X, labels)
    assert model.classes_.tolist() == ["No", "Yes"]
    assert set(model.predict(X.head(50))) <= {"No", "Yes"}


def test_eval_set_is_used_for_stopping_and_calibration(
    table: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = table
    model = ChurnClassifier(**ONE_THREAD).fit(
        X.iloc[:1000], y[:1000], eval_set=(X.iloc[1000:], y[1000:])
    )
    assert model.validation_metrics_.n == 500


# ---------------------------------------------------------------- the user's table as it comes


def test_unseen_level_and_missing_values_at_predict(fitted: ChurnClassifier) -> None:
    X, _ = customers(n=6, seed=1)
    unseen, missing = X.copy(), X.copy()
    unseen["plan"] = "legacy-2019"
    missing["plan"] = None
    p_unseen = fitted.predict_proba(unseen)[:, 1]
    assert np.isfinite(p_unseen).all()
    np.testing.assert_array_equal(p_unseen, fitted.predict_proba(missing)[:, 1])
    # A boolean column with a gap arrives as objects; numbers-as-text may hold junk.
    gaps = X.astype({"annual": object})
    gaps.loc[0, "annual"] = None
    gaps.loc[1, "mrr"] = "n/a"
    gaps.loc[2, "seats"] = np.nan
    assert np.isfinite(fitted.predict_proba(gaps)).all()


def test_columns_align_by_name(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    shuffled = X[list(reversed(X.columns))].assign(customer_id=range(len(X)))
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(X))


def test_no_rows_in_no_rows_out(fitted: ChurnClassifier) -> None:
    empty, _ = customers(n=0)
    assert fitted.predict_proba(empty).shape == (0, 2)
    assert fitted.predict(empty).shape == (0,)
    assert fitted.explain(empty) == []
    assert fitted.explain_frame(empty).shape == (0, 6)


def test_a_missing_column_is_named(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    with pytest.raises(ModelError) as raised:
        fitted.predict_proba(X.drop(columns=["seats", "mrr"]))
    assert str(raised.value) == "X is missing 2 column(s) the model was fitted on: ['seats', 'mrr']"
    assert raised.value.hint == "pass the same feature columns as at fit (order does not matter)"


def test_bad_input_is_explained(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    with pytest.raises(ModelError, match=r"y must hold exactly two outcomes for churn; found 1"):
        ChurnClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(ModelError, match="y has 10 labels for 1500 rows"):
        ChurnClassifier().fit(X, y[:10])
    with pytest.raises(ModelError, match="X must be a pandas DataFrame with named columns"):
        ChurnClassifier().fit(X.to_numpy(), y)
    with pytest.raises(ModelError, match="column 'signed_up' has dtype datetime64"):
        ChurnClassifier().fit(X.assign(signed_up=pd.Timestamp("2024-01-01")), y)


def test_invalid_parameters_are_listed_together(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = table
    with pytest.raises(ModelError) as raised:
        ChurnClassifier(learning_rate=-1, num_leaves=1, n_jobs=None).fit(X, y)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "ChurnClassifier has invalid parameters:\n"
        "  - learning_rate: expected a number > 0 (got -1)\n"
        "  - num_leaves: expected a whole number ≥ 2 (got 1)\n"
        "  - n_jobs: expected a whole number of threads ≥ 1 (got None)"
    )


def test_too_few_events_for_a_holdout(table: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = table
    y = np.zeros(len(X), dtype=bool)
    y[:5] = True
    with pytest.raises(ModelError, match="y has only 5 rows of its rarer outcome"):
        ChurnClassifier().fit(X, y)


def test_same_seed_same_probabilities(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = table
    again = ChurnClassifier(**ONE_THREAD).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    other_seed = ChurnClassifier(random_state=1, **ONE_THREAD).fit(X, y)
    assert not np.array_equal(other_seed.predict_proba(X), fitted.predict_proba(X))


def test_a_pickled_model_predicts_the_same(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert restored.explain(X.head(5)) == fitted.explain(X.head(5))


def test_the_thread_count_does_not_change_the_model(
    table: tuple[pd.DataFrame, np.ndarray],
) -> None:
    """So the one-thread numbers of these tests hold for the default n_jobs=2.

    Few rounds keep it quick: oversubscribed OpenMP threads make each round slow.
    """
    X, y = table
    short = {"n_estimators": 40, "early_stopping_rounds": 10}
    default_threads = ChurnClassifier(**short).fit(X, y)
    assert default_threads.n_jobs == 2
    one_thread = ChurnClassifier(**short, **ONE_THREAD).fit(X, y)
    np.testing.assert_array_equal(default_threads.predict_proba(X), one_thread.predict_proba(X))


# ---------------------------------------------------------------- reason codes


def test_reasons_are_the_positive_contributions(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    rows = X.head(200)
    contributions = fitted.explain_frame(rows)
    reasons = fitted.explain(rows, top_k=3)
    assert len(reasons) == 200
    for (_, row), row_reasons in zip(contributions.iterrows(), reasons, strict=True):
        expected = row[row > 0].sort_values(ascending=False).head(3)
        assert [r.feature for r in row_reasons] == list(expected.index)
        assert [r.contribution for r in row_reasons] == pytest.approx(list(expected))
        assert all(isinstance(r, Reason) and r.contribution > 0 for r in row_reasons)


def test_the_driving_feature_is_the_top_reason(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = table
    risk = fitted.predict_proba(X)[:, 1]
    riskiest = X.iloc[np.argsort(-risk)[:25]]
    reasons = fitted.explain(riskiest, top_k=1)
    assert [row[0].feature for row in reasons] == ["logins_drop"] * 25
    top = reasons[0][0]
    assert top.value == riskiest["logins_drop"].iloc[0]
    assert top.text == default_reason_text("logins_drop", top.value)


def test_contributions_add_up_to_the_margin(
    fitted: ChurnClassifier, table: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """The TreeSHAP identity: contributions plus the expected value give the raw log-odds."""
    X, _ = table
    contributions = fitted.explain_frame(X)
    assert list(contributions.columns) == list(X.columns)
    assert contributions.index.equals(X.index)
    np.testing.assert_allclose(
        contributions.sum(axis=1).to_numpy() + fitted.expected_value_,
        fitted.decision_function(X),
        rtol=1e-9,
        atol=1e-9,
    )


def test_reason_text_and_values(fitted: ChurnClassifier) -> None:
    X, _ = customers(n=40, seed=2)
    X["mrr"] = " "
    X["plan"] = "basic"
    reasons = [r for row in fitted.explain(X, top_k=6) for r in row]
    by_feature = {r.feature: r for r in reasons}
    assert by_feature["plan"].value == "basic"
    assert by_feature["plan"].text == "plan is basic"
    words = fitted.explain(X.head(3), top_k=2, describe=lambda f, v: f"{f} looks risky ({v})")
    assert all(r.text == f"{r.feature} looks risky ({r.value})" for row in words for r in row)
    with pytest.raises(ModelError, match=r"top_k must be a whole number ≥ 1 \(got 0\)"):
        fitted.explain(X, top_k=0)


def test_a_blank_that_raises_risk_is_reported_missing() -> None:
    rng = np.random.default_rng(3)
    blank = rng.random(800) < 0.25
    X = pd.DataFrame(
        {
            "mrr": np.where(blank, " ", rng.gamma(2.0, 50.0, 800).round(2).astype(str)),
            "noise": rng.normal(size=800),
        }
    )
    y = rng.random(800) < np.where(blank, 0.8, 0.2)
    model = ChurnClassifier(**ONE_THREAD).fit(X, y)
    reason = model.explain(X[blank].head(1), top_k=1)[0][0]
    assert reason == Reason(
        feature="mrr", value=None, contribution=reason.contribution, text="mrr is missing"
    )
    assert reason.contribution > 0.5


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("Contract", "Month-to-month", "Contract is Month-to-month"),
        ("tenure", 1, "tenure = 1"),
        ("tenure", 1.0, "tenure = 1"),
        ("MonthlyCharges", 29.85, "MonthlyCharges = 29.85"),
        ("TotalCharges", 1889.5049, "TotalCharges = 1889.5"),
        ("logins_drop", 0.123456, "logins_drop = 0.123"),
        ("Partner", True, "Partner is True"),
        ("TotalCharges", None, "TotalCharges is missing"),
    ],
)
def test_default_reason_text(feature: str, value: object, text: str) -> None:
    assert default_reason_text(feature, value) == text


# ---------------------------------------------------------------- propensity


def test_propensity_is_the_same_machinery_with_a_target_name(
    table: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = table
    model = PropensityClassifier("win", **ONE_THREAD)
    assert model.get_params()["target_name"] == "win"
    assert clone(model).get_params() == model.get_params()
    fitted = model.fit(X, y)
    assert fitted.target_ == "win"
    churn = ChurnClassifier(**ONE_THREAD).fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), churn.predict_proba(X))
    with pytest.raises(ModelError, match="y must hold exactly two outcomes for expansion"):
        PropensityClassifier("expansion").fit(X, np.ones(len(X)))
    with pytest.raises(ModelError, match="target_name must name the outcome"):
        PropensityClassifier("  ").fit(X, y)
