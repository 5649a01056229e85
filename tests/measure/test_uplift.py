"""The public uplift API: T- and X-learner, Qini and uplift@k, expected value.

Metrics are checked against scikit-uplift (a test-only dependency); the learners
against data whose true effects are known: a synthetic table, and a randomized
month of the simulator's world (its segment model and effect matrix, outcomes drawn
by its own churn model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression

from tenure.errors import ModelError, NotFittedError
from tenure.measure import uplift
from tenure.measure.uplift import (
    TLearner,
    XLearner,
    expected_value,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_curve,
)
from tenure.simulate import ActionType, SimulationConfig
from tenure.simulate._emit import INDUSTRIES
from tenure.simulate._interventions import SegmentModel, effect_matrix, industry_index
from tenure.simulate._world import World, compose_hazard

LEARNERS = [TLearner, XLearner]
F = npt.NDArray[np.float64]


def test_public_surface() -> None:
    assert sorted(uplift.__all__) == [
        "MIN_ROWS_PER_ARM",
        "TLearner",
        "XLearner",
        "expected_value",
        "qini_coefficient",
        "qini_curve",
        "uplift_at_k",
        "uplift_curve",
    ]


# ------------------------------------------------------------------ metrics vs scikit-uplift

# scikit-uplift 0.5 calls scikit-learn's stable_cumsum, deprecated since 1.8.
_SKLIFT_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Function stable_cumsum is deprecated:FutureWarning"
)


@pytest.fixture(scope="module")
def sklift() -> Any:
    return pytest.importorskip("sklift.metrics", reason="scikit-uplift is in the test extra")


def _random_case(seed: int) -> tuple[F, F, F]:
    rng = np.random.default_rng(seed)
    n = 500
    return (
        rng.integers(0, 2, n).astype(float),
        rng.integers(0, 2, n).astype(float),
        rng.normal(size=n),
    )


def _structured_case(seed: int) -> tuple[F, F, F]:
    """Unbalanced arms (25 % treated), an informative score, and many ties (rounded)."""
    rng = np.random.default_rng(seed)
    n = 800
    x = rng.normal(size=n)
    t = (rng.random(n) < 0.25).astype(float)
    y = (rng.random(n) < 0.3 + 0.2 * t * (x > 0)).astype(float)
    return y, t, np.round(x + rng.normal(0, 0.5, n), 1)


CASES = [
    pytest.param(_random_case, 0, id="random-0"),
    pytest.param(_random_case, 1, id="random-1"),
    pytest.param(_structured_case, 2, id="structured-ties-2"),
    pytest.param(_structured_case, 3, id="structured-ties-3"),
]


@_SKLIFT_WARNINGS
@pytest.mark.parametrize(("make", "seed"), CASES)
def test_curves_and_qini_coefficient_match_scikit_uplift(make: Any, seed: int, sklift: Any) -> None:
    y, t, score = make(seed)
    x, q = qini_curve(y, t, score)
    ref_x, ref_q = sklift.qini_curve(y, score, t)
    np.testing.assert_allclose(x, ref_x, rtol=0, atol=0)
    np.testing.assert_allclose(q, ref_q, rtol=1e-12, atol=1e-9)
    ux, uq = uplift_curve(y, t, score)
    ref_ux, ref_uq = sklift.uplift_curve(y, score, t)
    np.testing.assert_allclose(ux, ref_ux, rtol=0, atol=0)
    np.testing.assert_allclose(uq, ref_uq, rtol=1e-12, atol=1e-9)
    assert qini_coefficient(y, t, score) == pytest.approx(
        sklift.qini_auc_score(y, score, t), rel=1e-9, abs=1e-12
    )


@_SKLIFT_WARNINGS
@pytest.mark.parametrize(("make", "seed"), CASES)
@pytest.mark.parametrize("strategy", ["overall", "by_group"])
@pytest.mark.parametrize("k", [0.1, 0.3, 0.55, 0.999, 60, 150])
def test_uplift_at_k_matches_scikit_uplift(
    make: Any, seed: int, strategy: str, k: float, sklift: Any
) -> None:
    y, t, score = make(seed)
    expected = sklift.uplift_at_k(y, score, t, strategy=strategy, k=k)
    assert uplift_at_k(y, t, score, k, strategy=strategy) == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )


def test_qini_curve_by_hand() -> None:
    # ranked: treated responder, treated non-responder, control responder, control non-responder
    x, q = qini_curve([1, 0, 1, 0], [1, 1, 0, 0], [4.0, 3.0, 2.0, 1.0])
    # Q(k) = Y_T − Y_C·N_T/N_C, and Y_T while no control row is in: 1, 1, 1 − 1·2/1, 1 − 1·2/2
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(q, [0, 1, 1, -1, 0])
    # one point per distinct score: tied rows count together whatever their order
    x, q = qini_curve([1, 0, 1, 0], [1, 1, 0, 0], [2.0, 2.0, 1.0, 1.0])
    np.testing.assert_array_equal(x, [0, 2, 4])
    np.testing.assert_array_equal(q, [0, 1, 0])


def test_qini_coefficient_is_one_for_perfect_and_minus_for_reversed() -> None:
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1], float)
    t = np.array([1, 1, 0, 0, 1, 0, 1, 0], float)
    perfect = np.where(t == 1, y, -y)
    assert qini_coefficient(y, t, perfect) == pytest.approx(1.0)
    assert qini_coefficient(y, t, -perfect) < 0


def test_uplift_at_k_counts_and_fractions() -> None:
    y = [1, 0, 1, 0, 1, 1]
    t = [1, 0, 1, 0, 0, 1]
    score = [6.0, 5, 4, 3, 2, 1]
    # top 4: treated outcomes 1, 1; control 0, 0
    assert uplift_at_k(y, t, score, 4) == 1.0
    assert uplift_at_k(y, t, score, 4 / 6 + 1e-9) == 1.0
    # everything: treated 1, 1, 1; control 0, 0, 1
    assert uplift_at_k(y, t, score, 1.0) == pytest.approx(2 / 3)
    assert uplift_at_k(y, t, score, 6) == pytest.approx(2 / 3)


# ------------------------------------------------------------------ known effects


def _known_effects(n: int, seed: int) -> tuple[pd.DataFrame, npt.NDArray[np.int64], Any, F]:
    """A randomized table whose true effect depends on a category and a number.

    Persuadables (region north, or high ``x1``) gain up to +0.35 in the probability of
    the good outcome; sleeping dogs (region west, or low ``x1``) lose up to 0.35; the
    baseline moves with ``x2``, which does not change the effect. ``x1`` is sometimes
    missing (then only the region sets the effect).
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x1[rng.random(n) < 0.05] = np.nan
    x2 = rng.uniform(-1, 1, n)
    region = rng.choice(["north", "south", "east", "west"], n)
    effect = np.clip(
        np.select([region == "north", region == "west"], [0.25, -0.2], 0.0)
        + 0.15 * np.nan_to_num(x1),
        -0.35,
        0.35,
    )
    treatment = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.4 + 0.1 * x2 + treatment * effect).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "region": region}), treatment, y, effect


@pytest.mark.parametrize("learner", LEARNERS)
def test_learners_recover_known_heterogeneous_effects(learner: type[Any]) -> None:
    X, t, y, _ = _known_effects(4000, seed=0)
    X_test, t_test, y_test, true_effect = _known_effects(4000, seed=1)
    predicted = learner(random_state=0).fit(X, t, y).predict(X_test)

    clear = np.abs(true_effect) > 0.05
    assert np.mean(np.sign(predicted[clear]) == np.sign(true_effect[clear])) > 0.8
    assert spearmanr(predicted, true_effect).statistic > 0.7
    # the sleeping dogs are found: most of the clearly harmed get a negative estimate
    assert np.mean(predicted[true_effect < -0.1] < 0) > 0.8

    model_qini = qini_coefficient(y_test, t_test, predicted)
    true_qini = qini_coefficient(y_test, t_test, true_effect)
    random_qini = qini_coefficient(y_test, t_test, np.random.default_rng(2).random(len(y_test)))
    assert true_qini > 0.1
    assert abs(random_qini) < 0.05
    assert model_qini > 0.65 * true_qini
    assert model_qini > random_qini + 0.08


@pytest.mark.parametrize("learner", LEARNERS)
def test_learners_on_a_continuous_outcome(learner: type[Any]) -> None:
    X, t, _, effect = _known_effects(3000, seed=3)
    rng = np.random.default_rng(4)
    revenue = 100 + 20 * X["x2"].to_numpy() + 50 * t * effect + rng.normal(0, 5, len(t))
    model = learner(random_state=0).fit(X, t, revenue)
    assert model.outcome_ == "continuous"
    assert isinstance(model.control_model_, lgb.LGBMRegressor)
    X_test, _, _, true_effect = _known_effects(2000, seed=5)
    predicted = model.predict(X_test)
    assert spearmanr(predicted, true_effect).statistic > 0.8
    assert np.mean(predicted) == pytest.approx(50 * np.mean(true_effect), abs=1.5)


# ------------------------------------------------------------------ the simulator's world


@dataclass(frozen=True)
class SimulatedMonth:
    X: pd.DataFrame
    treatment: npt.NDArray[np.int64]
    retained: npt.NDArray[np.int64]
    true_effect: F  # the realized account's effect on P(stay), its segment known
    expected_effect: F  # the same averaged over the segment draw: the best a model can know


_SEGMENT_DRAWS = 40


def _simulated_month(seed: int, customers: int, action: ActionType) -> SimulatedMonth:
    """One month of the simulator's world with ``action`` given to a random half.

    The world's own account traits, its segment model (latent segments that lean on
    the traits) and its effect matrix; every customer gets the action's log-odds shift,
    so the month's single draw yields both potential outcomes (``churned`` with the
    action, ``truth_churned_untreated`` without), and the randomized arm picks the one
    observed. Churn is made common (hazard around 0.5) and all plans monthly, so that a
    month carries enough signal in tens of thousands of rows; the effects are the defaults
    (docs/simulator.md). Features are what the product shows: plan, seats and industry
    exactly, engagement, fit and price sensitivity through noise, as the usage, NPS and
    discount-reaction signals would show them.
    """
    config = SimulationConfig.model_validate(
        {
            "accounts": 2 * customers,  # half are customers when the world starts
            "months": 1,
            "churn": {"intercept": 0.0},
            "acquisition": {"annual_share": (0.0, 0.0, 0.0)},
        }
    )
    world = World(config, np.random.default_rng([seed, 0]))
    accounts = np.arange(world.state.n)
    segments = SegmentModel(config)
    effects = effect_matrix(config.interventions)[list(ActionType).index(action)]
    shift = np.zeros(config.accounts)
    shift[accounts] = effects[segments.draw(world, accounts, np.random.default_rng([seed, 1]))]
    # the segment is random given the traits: average over fresh draws of it
    redraws = np.random.default_rng([seed, 2])
    redrawn = np.stack([segments.draw(world, accounts, redraws) for _ in range(_SEGMENT_DRAWS)])

    s, noise = world.state, np.random.default_rng([seed, 3])
    X = pd.DataFrame(
        {
            "plan": pd.Categorical(np.array(["starter", "growth", "enterprise"])[s.plan[accounts]]),
            "seats": s.seats[accounts].astype(float),
            "industry": np.asarray(INDUSTRIES, dtype=object)[industry_index(accounts)],
            "usage": s.engagement[accounts] + noise.normal(0, 0.3, len(accounts)),
            "nps": s.fit[accounts] + noise.normal(0, 0.3, len(accounts)),
            "price_signal": s.price_sensitivity[accounts] + noise.normal(0, 0.1, len(accounts)),
        }
    )
    facts = world.advance(shift)
    assert np.array_equal(facts.truth_account, accounts)

    def hazard(logit_shift: F) -> F:
        return compose_hazard(
            facts.truth_logit + logit_shift,
            facts.truth_annual,
            facts.truth_renewal,
            facts.truth_involuntary,
            config.churn.renewal_months_equivalent,
        )

    untreated = facts.truth_hazard_untreated
    expected = np.mean([untreated - hazard(effects[draw]) for draw in redrawn], axis=0)
    treatment = (noise.random(len(accounts)) < 0.5).astype(np.int64)
    churned = np.where(
        treatment == 1, np.isin(accounts, facts.churned), facts.truth_churned_untreated
    )
    return SimulatedMonth(
        X=X,
        treatment=treatment,
        retained=(~churned).astype(np.int64),
        true_effect=untreated - facts.truth_hazard,
        expected_effect=expected,
    )


@pytest.fixture(scope="module")
def simulated() -> tuple[SimulatedMonth, SimulatedMonth]:
    return (
        _simulated_month(11, 60_000, ActionType.CSM_CALL),
        _simulated_month(12, 60_000, ActionType.CSM_CALL),
    )


@pytest.mark.parametrize(("learner", "share_of_best"), [(TLearner, 0.45), (XLearner, 0.6)])
def test_qini_on_the_simulators_randomized_month(
    learner: type[Any], share_of_best: float, simulated: tuple[SimulatedMonth, SimulatedMonth]
) -> None:
    train, test = simulated
    model = learner(random_state=0).fit(train.X, train.treatment, train.retained)
    predicted = model.predict(test.X)

    def qini(score: F) -> float:
        return qini_coefficient(test.retained, test.treatment, score)

    random_qini = qini(np.random.default_rng(5).random(len(predicted)))
    # the realized effects know each account's segment, which no trait reveals; the
    # expected effects are the best ranking the traits allow
    assert qini(test.true_effect) > 2 * qini(test.expected_effect) > 0.04
    assert abs(random_qini) < 0.01
    assert qini(predicted) > share_of_best * qini(test.expected_effect)
    assert qini(predicted) > random_qini + 0.01
    assert spearmanr(predicted, test.expected_effect).statistic > 0.45
    # targeting by the model beats targeting everyone in the top fifth
    everyone = uplift_at_k(test.retained, test.treatment, predicted, 1.0)
    assert uplift_at_k(test.retained, test.treatment, predicted, 0.2) > everyone + 0.025


# ------------------------------------------------------------------ the estimator contract


def _small(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, Any, Any]:
    X, t, y, _ = _known_effects(n, seed)
    return X, t, y


@pytest.mark.parametrize("learner", LEARNERS)
def test_fit_is_deterministic_and_clone_is_unfitted(learner: type[Any]) -> None:
    X, t, y = _small()
    first = learner(random_state=3, n_estimators=30).fit(X, t, y)
    again = learner(random_state=3, n_estimators=30).fit(X, t, y)
    np.testing.assert_array_equal(first.predict(X), again.predict(X))
    copy = clone(first)
    assert copy.get_params() == first.get_params()
    with pytest.raises(NotFittedError, match=f"this {learner.__name__} is not fitted yet"):
        copy.predict(X)
    assert first.feature_names_in_.tolist() == ["x1", "x2", "region"]
    assert first.treatment_share_ == pytest.approx(np.mean(t))


@pytest.mark.parametrize("learner", LEARNERS)
def test_categories_are_learned_at_fit_and_unseen_ones_are_missing(learner: type[Any]) -> None:
    X, t, y = _small()
    model = learner(n_estimators=30).fit(X, t, y)
    rows = X.head(8).copy()
    unseen, missing = rows.copy(), rows.copy()
    unseen["region"] = "atlantis"
    missing["region"] = None
    np.testing.assert_array_equal(model.predict(unseen), model.predict(missing))
    # the same levels as a category dtype (another category order, extra levels) read alike
    as_category = rows.assign(
        region=pd.Categorical(rows["region"], categories=["west", "north", "x", "south", "east"])
    )
    np.testing.assert_array_equal(model.predict(as_category), model.predict(rows))
    # column order does not matter, and no rows give no effects
    np.testing.assert_array_equal(model.predict(rows[["region", "x2", "x1"]]), model.predict(rows))
    assert model.predict(rows.head(0)).shape == (0,)


def test_x_learner_propensity_options() -> None:
    X, t, y = _small(n=600)
    default = XLearner(n_estimators=30).fit(X, t, y)
    assert default.propensity_model_ is None
    assert default.propensity_ == pytest.approx(np.mean(t))
    known = XLearner(n_estimators=30, propensity=0.5).fit(X, t, y)
    assert known.propensity_ == 0.5
    # the combination is convex: a constant g between the two effect models' estimates
    tau0 = known.control_effect_model_.predict(known._matrix(X))
    tau1 = known.treated_effect_model_.predict(known._matrix(X))
    np.testing.assert_allclose(known.predict(X), 0.5 * tau0 + 0.5 * tau1)
    fitted = XLearner(
        n_estimators=30,
        propensity=lgb.LGBMClassifier(n_estimators=10, n_jobs=1, verbose=-1),
    ).fit(X, t, y)
    assert isinstance(fitted.propensity_model_, lgb.LGBMClassifier)
    assert np.all(np.isfinite(fitted.predict(X)))


def test_any_scikit_learn_base_model() -> None:
    X, t, y, _ = _known_effects(600, seed=6)
    numeric = X[["x2"]]
    model = TLearner(LogisticRegression()).fit(numeric, t, y)
    assert isinstance(model.treated_model_, LogisticRegression)
    assert model.predict(numeric).shape == (600,)
    with pytest.raises(ModelError, match="base LinearRegression has no predict_proba"):
        TLearner(LinearRegression()).fit(numeric, t, y)
    # a linear probability model: a regressor on the 0/1 outcome
    linear = XLearner(LinearRegression(), effect_base=LinearRegression(), outcome="continuous")
    assert linear.fit(numeric, t, y).outcome_ == "continuous"
    assert isinstance(linear.treated_effect_model_, LinearRegression)
    assert np.all(np.isfinite(linear.predict(numeric)))


# ------------------------------------------------------------------ input checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X, t, y: (X, t[:-1], y), "treatment has 399 rows but X has 400"),
        (lambda X, t, y: (X, t, y[:-1]), "y has 399 rows but X has 400"),
        (lambda X, t, y: (X, np.where(t == 1, 2, 0), y), r"treatment must be 0 \(control\) or 1"),
        (lambda X, t, y: (X, np.ones_like(t), y), "treatment holds only the treated arm"),
        (
            lambda X, t, y: (X, np.r_[np.ones(5), np.zeros(395)], y),
            "the treated arm has 5 rows; each arm needs at least 10",
        ),
        (lambda X, t, y: (X, t, np.r_[np.nan, y[1:]]), r"y must be finite; rows \[0\] hold"),
        (lambda X, t, y: (X.to_numpy(), t, y), "X must be a pandas DataFrame"),
        (lambda X, t, y: (X, t, np.where(t == 1, 1, y)), "y is 1 for every treated row"),
        (lambda X, t, y: (X, t, np.c_[y, y]), "y must be one-dimensional"),
    ],
)
@pytest.mark.parametrize("learner", LEARNERS)
def test_fit_rejects_bad_input(learner: type[Any], change: Any, message: str) -> None:
    X, t, y = _small()
    with pytest.raises(ModelError, match=message):
        learner(n_estimators=5).fit(*change(X, t, y))


def test_fit_rejects_bad_parameters_listing_each() -> None:
    X, t, y = _small()
    with pytest.raises(ModelError, match=r"n_estimators=0 .*; n_jobs=-1 \(expected"):
        TLearner(n_estimators=0, n_jobs=-1).fit(X, t, y)
    with pytest.raises(ModelError, match=r"outcome='binary' but y holds values other than 0"):
        TLearner(outcome="binary").fit(X, t, y + 0.5)
    with pytest.raises(ModelError, match=r"propensity must be in \(0, 1\); got 1.5"):
        XLearner(propensity=1.5).fit(X, t, y)


@pytest.mark.parametrize("learner", LEARNERS)
def test_predict_needs_the_fitted_columns(learner: type[Any]) -> None:
    X, t, y = _small()
    model = learner(n_estimators=5).fit(X, t, y)
    with pytest.raises(ModelError, match=r"missing \['x2'\], unexpected \['x3'\]"):
        model.predict(X.rename(columns={"x2": "x3"}))
    with pytest.raises(ModelError, match=r"missing \[\], unexpected \['extra'\]"):
        model.predict(X.assign(extra=1.0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: qini_coefficient([1, 0], [1, 0, 1], [0.1, 0.2]), "treatment has 3 rows but y"),
        (lambda: qini_coefficient([1, 0, 1], [1, 0, 1], [0.1, 0.2]), "uplift has 2 rows but y"),
        (lambda: qini_curve([1, 0], [1, 0.5], [1, 2]), "treatment must be 0 .* hold \\[0.5\\]"),
        (lambda: qini_curve([1, 0], [1, 1], [1, 2]), "treatment holds only the treated arm"),
        (lambda: qini_curve([1, 0], [1, 0], [1, np.nan]), r"uplift must be finite"),
        (lambda: qini_curve([], [], []), "y is empty"),
        (lambda: qini_coefficient([0, 0, 0], [1, 0, 1], [1, 2, 3]), "Qini coefficient is undef"),
        (lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], 1), "top 1 rows .* no control"),
        (lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], 0), r"k=0 rows is outside 1..3"),
        (lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], 1.5), r"in \(0, 1\]; got 1.5"),
        (lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], 0.1), "k=0.1 of 3 rows is no row"),
        (lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], True), "k must be a fraction"),
        (
            lambda: uplift_at_k([1, 0, 1], [1, 0, 1], [3, 2, 1], 2, strategy="top"),
            "strategy must be 'overall' or 'by_group'",
        ),
    ],
)
def test_metrics_reject_bad_input(call: Any, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        call()


# ------------------------------------------------------------------ expected value


def test_expected_value_ranks_by_worth_and_leaves_sleeping_dogs_alone() -> None:
    effect = np.array([0.20, 0.02, -0.10, 0.05])  # the last one is high-value but cheap to win
    clv = np.array([1_000.0, 1_000.0, 5_000.0, 4_000.0])
    worth = expected_value(effect, clv, cost=40.0)
    np.testing.assert_allclose(worth, [160.0, -20.0, -540.0, 160.0])
    assert worth[2] < 0  # the sleeping dog, however valuable, is not worth contacting
    np.testing.assert_allclose(expected_value(effect, 100.0), effect * 100)
    with pytest.raises(ModelError, match="do not broadcast together"):
        expected_value(effect, clv[:2])
    with pytest.raises(ModelError, match="value must be finite"):
        expected_value(effect, [1.0, np.nan, 1.0, 1.0])
