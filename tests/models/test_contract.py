"""One contract for every tenure model (STYLE: scikit-learn's estimator rules).

``__init__`` only stores parameters, ``fit`` returns ``self``, learned
attributes end in ``_`` and appear only after fitting, using a model before
fitting raises NotFittedError, and ``clone`` gives an unfitted copy with the
same parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from tenure.errors import NotFittedError
from tenure.models._base import Estimator
from tenure.models.churn import ChurnClassifier
from tenure.models.clv import BetaGeo, GammaGamma, ShiftedBetaGeometric
from tenure.models.propensity import PropensityClassifier
from tenure.models.recommend import CoUsageRecommender
from tenure.models.survival import ChurnSurvival

_RNG = np.random.default_rng(0)
_N = 400
_X = pd.DataFrame(
    {
        "logins": _RNG.poisson(10, _N).astype(float),
        "plan": _RNG.choice(["basic", "pro"], _N),
    }
)
_Y = (_RNG.random(_N) < 1 / (1 + np.exp(0.3 * (_X["logins"] - 10)))).astype(int)
_FREQ = _RNG.poisson(2, _N).astype(float)
_T = np.full(_N, 40.0)
_REC = np.where(_FREQ > 0, _RNG.uniform(1, 39, _N), 0.0)
_SPEND = np.where(_FREQ > 0, _RNG.gamma(5, 8, _N), 0.0)
_USAGE = pd.DataFrame(
    {
        "account_id": [f"a{i % 40}" for i in range(200)],
        "feature": [f"f{(i * 7) % 9}" for i in range(200)],
    }
)


@dataclass(frozen=True)
class Case:
    make: Callable[[], Estimator]
    fit: Callable[[Any], Any]
    use: Callable[[Any], Any]


CASES = {
    "ChurnClassifier": Case(
        lambda: ChurnClassifier(n_jobs=1),
        lambda m: m.fit(_X, _Y),
        lambda m: m.predict_proba(_X),
    ),
    "PropensityClassifier": Case(
        lambda: PropensityClassifier(target_name="expansion", n_jobs=1),
        lambda m: m.fit(_X, _Y),
        lambda m: m.predict_proba(_X),
    ),
    "ChurnSurvival": Case(
        ChurnSurvival,
        lambda m: m.fit(_X, _X["logins"] + 1, _Y),
        lambda m: m.predict_survival(_X, [1.0, 5.0]),
    ),
    "BetaGeo": Case(
        BetaGeo,
        lambda m: m.fit(_FREQ, _REC, _T),
        lambda m: m.probability_alive(_FREQ, _REC, _T),
    ),
    "GammaGamma": Case(
        GammaGamma,
        lambda m: m.fit(_FREQ[_FREQ > 0], _SPEND[_FREQ > 0]),
        lambda m: m.conditional_expected_average_spend(_FREQ, _SPEND),
    ),
    "ShiftedBetaGeometric": Case(
        ShiftedBetaGeometric,
        lambda m: m.fit([1000, 631, 468, 382, 326]),
        lambda m: m.survival([1, 2, 3]),
    ),
    "CoUsageRecommender": Case(
        CoUsageRecommender,
        lambda m: m.fit(_USAGE),
        lambda m: m.recommend(_USAGE, k=2),
    ),
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def _learned(model: Estimator) -> set[str]:
    return {name for name in vars(model) if name.endswith("_") and not name.startswith("_")}


def test_init_only_stores_parameters(case: Case) -> None:
    model = case.make()
    params = model.get_params()
    assert set(vars(model)) == set(params)
    assert clone(model).get_params() == params


def test_using_an_unfitted_model_raises_not_fitted(case: Case) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        case.use(case.make())


def test_fit_returns_self_and_learns_attributes_ending_in_underscore(case: Case) -> None:
    model = case.make()
    assert not _learned(model)
    assert case.fit(model) is model
    assert _learned(model)
    assert set(model._fitted_attributes) <= _learned(model)
    case.use(model)


def test_clone_of_a_fitted_model_is_unfitted(case: Case) -> None:
    model = case.make()
    case.fit(model)
    copy = clone(model)
    assert not _learned(copy)
    with pytest.raises(NotFittedError):
        case.use(copy)
