"""CoUsageRecommender on a usage table whose answers are known by construction.

Accounts and the features they use:
  A1-A4  sso, audit          B1-B2  sso              C1-C3  reports, export
  D1     reports             X1     sso, export      E1     all four

Users per feature: sso 8, audit 5, reports 5, export 5 (12 accounts).
Co-users: sso+audit 5, reports+export 4, sso+export 2, every other pair 1 (E1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from tenure.errors import ModelError, NotFittedError
from tenure.models.recommend import CoUsageRecommender

GROUPS = {
    ("A1", "A2", "A3", "A4"): ("sso", "audit"),
    ("B1", "B2"): ("sso",),
    ("C1", "C2", "C3"): ("reports", "export"),
    ("D1",): ("reports",),
    ("X1",): ("sso", "export"),
    ("E1",): ("sso", "audit", "reports", "export"),
}
USAGE = pd.DataFrame(
    [
        {"account_id": account, "feature": feature, "uses": uses}
        for accounts, features in GROUPS.items()
        for account in accounts
        for feature in features
        for uses in (1, 7)  # used twice: usage is binary, counts do not matter
    ]
)
SSO_AUDIT = 5 / math.sqrt(8 * 5)
REPORTS_EXPORT = 4 / math.sqrt(5 * 5)
SSO_EXPORT = 2 / math.sqrt(8 * 5)


def _rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return [(r.entity, r.item, round(r.score, 6), r.rank, r.because) for r in frame.itertuples()]


def test_pairs_below_min_support_do_not_count() -> None:
    model = CoUsageRecommender(min_support=3).fit(USAGE)
    similarity = model.similarity_frame()
    assert similarity.loc["sso", "audit"] == pytest.approx(SSO_AUDIT)
    assert similarity.loc["export", "reports"] == pytest.approx(REPORTS_EXPORT)
    assert similarity.loc["sso", "export"] == 0.0  # 2 co-users < 3
    assert (np.diag(similarity) == 0).all()
    assert model.item_users_.to_dict() == {"audit": 5, "export": 5, "reports": 5, "sso": 8}

    recommended = model.recommend(USAGE, k=3)
    assert _rows(recommended) == [
        ("B1", "audit", round(SSO_AUDIT, 6), 1, "sso"),
        ("B2", "audit", round(SSO_AUDIT, 6), 1, "sso"),
        ("D1", "export", round(REPORTS_EXPORT, 6), 1, "reports"),
        ("X1", "reports", round(REPORTS_EXPORT, 6), 1, "export"),
        ("X1", "audit", round(SSO_AUDIT, 6), 2, "sso"),
    ]
    # A*, C* have nothing related left to adopt; E1 uses everything
    assert not set(recommended["entity"]) & {"A1", "C1", "E1"}


def test_lower_support_adds_the_weaker_pair() -> None:
    model = CoUsageRecommender(min_support=2).fit(USAGE)
    by_entity = {
        entity: [(r.item, round(r.score, 6), r.because) for r in rows.itertuples()]
        for entity, rows in model.recommend(["A1", "B1", "C1", "E1"], k=3).groupby("entity")
    }
    assert by_entity == {
        "A1": [("export", round(SSO_EXPORT, 6), "sso")],
        "B1": [("audit", round(SSO_AUDIT, 6), "sso"), ("export", round(SSO_EXPORT, 6), "sso")],
        "C1": [("sso", round(SSO_EXPORT, 6), "export")],
    }


def test_because_names_the_largest_contribution() -> None:
    model = CoUsageRecommender(min_support=1).fit(USAGE)
    # X1 uses sso and export; audit gets sso's 5/sqrt(40) and export's 1/sqrt(25)
    x1 = model.recommend(["X1"], k=1)
    assert _rows(x1) == [("X1", "audit", round(SSO_AUDIT + 1 / 5, 6), 1, "sso")]


def test_lift() -> None:
    model = CoUsageRecommender(similarity="lift", min_support=3).fit(USAGE)
    assert model.similarity_frame().loc["audit", "sso"] == pytest.approx(5 * 12 / (8 * 5))
    assert _rows(model.recommend(["B1"])) == [("B1", "audit", 1.5, 1, "sso")]


def test_new_usage_unknown_items_and_entities() -> None:
    model = CoUsageRecommender(min_support=3).fit(USAGE, entity_col="account_id")
    fresh = pd.DataFrame(
        {"account_id": ["N1", "N1", "N2"], "feature": ["sso", "brand-new", "brand-new"]}
    )
    # brand-new was never seen: ignored, and N2 (only brand-new) gets nothing
    assert _rows(model.recommend(fresh)) == [("N1", "audit", round(SSO_AUDIT, 6), 1, "sso")]
    assert model.recommend(["nobody"]).empty
    assert list(model.recommend(["nobody"]).columns) == [
        "entity",
        "item",
        "score",
        "rank",
        "because",
    ]


def test_other_column_names() -> None:
    usage = USAGE.rename(columns={"account_id": "user", "feature": "product"})
    model = CoUsageRecommender(min_support=3).fit(usage, entity_col="user", item_col="product")
    assert _rows(model.recommend(usage[usage["user"] == "D1"])) == [
        ("D1", "export", round(REPORTS_EXPORT, 6), 1, "reports")
    ]
    with pytest.raises(ModelError, match=r"^usage lacks the column\(s\) 'account_id'; it has"):
        CoUsageRecommender().fit(usage, item_col="product")


def test_parameters_and_not_fitted() -> None:
    with pytest.raises(NotFittedError, match=r"^this CoUsageRecommender is not fitted yet"):
        CoUsageRecommender().recommend(["A1"])
    with pytest.raises(
        ModelError,
        match=r"^min_support must be an integer ≥ 1, got 0; similarity must be one of "
        r"cosine, lift, got 'jaccard'$",
    ):
        CoUsageRecommender(min_support=0, similarity="jaccard").fit(USAGE)
    model = CoUsageRecommender().fit(USAGE)
    with pytest.raises(ModelError, match=r"^k must be an integer ≥ 1, got 0$"):
        model.recommend(["A1"], k=0)
    with pytest.raises(ModelError, match=r"^pass a list of entity ids"):
        model.recommend("A1")
    copy = clone(model)
    assert copy.get_params() == {"min_support": 2, "similarity": "cosine"}
    assert not hasattr(copy, "similarity_")


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 15), st.sampled_from("abcdefg")), min_size=1, max_size=60
    ),
    k=st.integers(1, 4),
    min_support=st.integers(1, 3),
)
def test_recommendations_are_new_ranked_and_explained(
    pairs: list[tuple[int, str]], k: int, min_support: int
) -> None:
    usage = pd.DataFrame(pairs, columns=["account_id", "feature"])
    model = CoUsageRecommender(min_support=min_support).fit(usage)
    recommended = model.recommend(usage, k=k)
    used = usage.groupby("account_id")["feature"].agg(set).to_dict()
    similarity = model.similarity_frame()
    for entity, rows in recommended.groupby("entity"):
        assert not set(rows["item"]) & used[entity]
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        assert len(rows) <= k
        assert (np.diff(rows["score"]) <= 1e-12).all()
        for row in rows.itertuples():
            assert row.because in used[entity]
            assert row.score == pytest.approx(similarity.loc[list(used[entity]), row.item].sum())
            assert (
                similarity.loc[row.because, row.item]
                == similarity.loc[list(used[entity]), row.item].max()
            )
