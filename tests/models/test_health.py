"""Health scores: percentile inputs, weights, bands, change and movers, build and AUC."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.config import (
    HealthBands,
    HealthComponent,
    HealthInput,
    HealthSettings,
    default_config_text,
    parse_config,
)
from tenure.demo import run_demo
from tenure.errors import ConfigError, ModelError
from tenure.features import feature_set
from tenure.identity import stitch
from tenure.lifecycle import build_stages, stage_report
from tenure.models.health import (
    Band,
    HealthReference,
    _contributions,
    build_health,
    health_auc,
    health_scores,
)
from tenure.project import Project
from tests._lake import load_events
from tests.conftest import make_project

AS_OF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
UP, DOWN = "higher_is_better", "lower_is_better"


def at(days_before: float) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days_before)


def health_settings(
    **components: tuple[float, list[tuple[str, str, float | None]]],
) -> HealthSettings:
    return HealthSettings(
        components={
            name: HealthComponent(
                weight=weight,
                inputs=[HealthInput(feature=f, direction=d, cap=c) for f, d, c in inputs],
            )
            for name, (weight, inputs) in components.items()
        }
    )


#: usage (logins, higher is better) weighs 0.6, billing (failures, lower) 0.4
TWO = health_settings(
    usage_depth=(0.6, [("logins_30d", UP, None)]),
    billing=(0.4, [("payment_failures_90d", DOWN, None)]),
)


def frame(**columns: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def by_account(scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["account_id"]: row for row in scores.to_dict("records")}


def test_inputs_score_the_share_of_the_reference_they_do_at_least_as_well_as() -> None:
    features = frame(
        account_id=["a", "b", "c", "d"],
        logins_30d=[0, 10, 20, 30],
        payment_failures_90d=[0, 0, 1, 3],
    )
    weighted = health_settings(
        usage_depth=(3.0, [("logins_30d", UP, None)]),
        billing=(1.0, [("payment_failures_90d", DOWN, None)]),
    )
    rows = by_account(health_scores(features, None, weighted))
    assert [rows[a]["usage_depth"] for a in "abcd"] == [25.0, 50.0, 75.0, 100.0]
    # lower is better: the share with at least as many failures
    assert [rows[a]["billing"] for a in "abcd"] == [100.0, 100.0, 50.0, 25.0]
    # weights 3:1 are normalized to 0.75 / 0.25
    assert [rows[a]["health"] for a in "abcd"] == [43.75, 62.5, 68.75, 81.25]
    assert [rows[a]["band"] for a in "abcd"] == ["yellow", "yellow", "yellow", "green"]
    # no earlier features: no change, no movers
    assert all(math.isnan(rows[a]["change_30d"]) and rows[a]["movers"] is None for a in "abcd")


def test_values_above_the_cap_count_as_the_cap() -> None:
    capped = health_settings(usage_depth=(1.0, [("logins_30d", UP, 50.0)]))
    features = frame(account_id=["a", "b", "c"], logins_30d=[5, 50, 500])
    rows = by_account(health_scores(features, None, capped))
    assert rows["a"]["usage_depth"] == pytest.approx(100 / 3)
    assert rows["b"]["usage_depth"] == rows["c"]["usage_depth"] == 100.0


def test_missing_inputs_are_skipped_and_missing_components_renormalized() -> None:
    three = health_settings(
        usage_depth=(0.5, [("logins_30d", UP, None)]),
        support=(0.25, [("tickets_open", DOWN, None), ("csat_mean_90d", UP, None)]),
        sentiment=(0.25, [("nps_last", UP, None)]),
    )
    features = frame(
        account_id=["a", "b"],
        logins_30d=[10, 20],
        tickets_open=[0, 2],
        csat_mean_90d=[np.nan, 4.0],
        nps_last=[np.nan, 9.0],
    )
    rows = by_account(health_scores(features, None, three))
    # a: support is its tickets score alone (100); sentiment has no input at all
    assert rows["a"]["support"] == 100.0
    assert math.isnan(rows["a"]["sentiment"])
    # so a's health is usage 50 and support 100 weighted 0.5 : 0.25
    assert rows["a"]["health"] == pytest.approx((0.5 * 50 + 0.25 * 100) / 0.75)
    # b has every input: tickets 50, csat 100 → support 75
    assert rows["b"]["support"] == 75.0
    assert rows["b"]["health"] == pytest.approx(0.5 * 100 + 0.25 * 75 + 0.25 * 100)
    # an account with no input at all has no health and no band
    empty = frame(
        account_id=["z"],
        logins_30d=[np.nan],
        tickets_open=[np.nan],
        csat_mean_90d=[np.nan],
        nps_last=[np.nan],
    )
    (row,) = health_scores(empty, None, three).to_dict("records")
    assert math.isnan(row["health"])
    assert row["band"] is None


def test_bands() -> None:
    features = frame(account_id=[f"a{n:02d}" for n in range(1, 11)], logins_30d=list(range(1, 11)))
    one = health_settings(usage_depth=(1.0, [("logins_30d", UP, None)]))
    scores = health_scores(features, None, one)
    assert list(scores["health"]) == [10.0 * n for n in range(1, 11)]
    # green from 70, yellow from 40
    assert list(scores["band"]) == ["red"] * 3 + ["yellow"] * 3 + ["green"] * 4
    strict = HealthSettings(components=one.components, bands=HealthBands(green=95, yellow=10))
    assert list(health_scores(features, None, strict)["band"]) == ["yellow"] * 9 + ["green"]
    assert {b.value for b in Band} == {"green", "yellow", "red"}


def test_change_and_movers_are_ranked_against_todays_reference() -> None:
    now = frame(
        account_id=["a", "b", "c", "d"],
        logins_30d=[30, 10, 20, 0],
        payment_failures_90d=[0, 0, 1, 2],
    )
    before = frame(
        entity_id=["a", "c", "d"],  # a feature_frame's id column is accepted too
        logins_30d=[0, 20, 10],
        payment_failures_90d=[2, 1, 2],
    )
    rows = by_account(health_scores(now, before, TWO))
    # a: usage 25 → 100, billing 25 → 100 (both against today's distribution)
    assert rows["a"]["health"] == 100.0
    assert rows["a"]["change_30d"] == pytest.approx(75.0)
    assert rows["a"]["movers"] == "usage_depth +45, billing +30"
    # b has no earlier row
    assert math.isnan(rows["b"]["change_30d"])
    assert rows["b"]["movers"] is None
    # c did not change: nothing moved it
    assert rows["c"]["change_30d"] == 0.0
    assert rows["c"]["movers"] == ""
    # d: logins 10 → 0 is usage 50 → 25, i.e. −15 health points
    assert rows["d"]["change_30d"] == pytest.approx(-15.0)
    assert rows["d"]["movers"] == "usage_depth \u221215"


def test_a_component_that_appears_or_disappears_moves_the_score() -> None:
    two = health_settings(
        usage_depth=(0.5, [("logins_30d", UP, None)]),
        sentiment=(0.5, [("nps_last", UP, None)]),
    )
    now = frame(account_id=["a", "b"], logins_30d=[10, 20], nps_last=[np.nan, 10.0])
    before = frame(account_id=["a", "b"], logins_30d=[10, 20], nps_last=[10.0, np.nan])
    rows = by_account(health_scores(now, before, two))
    # a lost its NPS (100): health 75 → 50, all of it sentiment's
    assert rows["a"]["change_30d"] == pytest.approx(-25.0)
    assert rows["a"]["movers"] == "sentiment \u221225"
    # b gained an NPS of 100 over a health of 100: nothing moved
    assert rows["b"]["change_30d"] == 0.0
    assert rows["b"]["movers"] == ""


_score = st.one_of(st.none(), st.floats(0, 100))


@settings(max_examples=100, deadline=None)
@given(
    now=st.lists(_score, min_size=3, max_size=3),
    before=st.lists(_score, min_size=3, max_size=3),
    weights=st.lists(st.floats(0.1, 5), min_size=3, max_size=3),
)
def test_contributions_add_up_to_the_change(
    now: list[float | None], before: list[float | None], weights: list[float]
) -> None:
    names = ["x", "y", "z"]

    def normalized(scores: pd.Series) -> pd.Series:
        present = scores.notna() * pd.Series(weights, index=names)
        return present / present.sum() if present.sum() else present * 0.0

    s_now = pd.Series([np.nan if v is None else v for v in now], index=names, dtype=float)
    s_before = pd.Series([np.nan if v is None else v for v in before], index=names, dtype=float)
    if s_now.isna().all() or s_before.isna().all():
        return
    w_now, w_before = normalized(s_now), normalized(s_before)
    change = (s_now.fillna(0) * w_now).sum() - (s_before.fillna(0) * w_before).sum()
    parts = _contributions(
        s_now.to_frame().T, w_now.to_frame().T, s_before.to_frame().T, w_before.to_frame().T
    ).iloc[0]
    assert parts.sum() == pytest.approx(change, abs=1e-9)
    # a component scored alike both times, with no other component coming or going,
    # never moves the score
    if (s_now.isna() == s_before.isna()).all():
        same = (s_now == s_before).to_numpy()
        assert np.allclose(parts.to_numpy()[same], 0.0)


@settings(max_examples=40, deadline=None)
@given(
    logins=st.lists(st.integers(0, 50), min_size=2, max_size=8),
    failures=st.lists(st.integers(0, 5), min_size=2, max_size=8),
    more=st.integers(1, 20),
)
def test_more_logins_never_lower_usage_and_more_failures_never_raise_billing(
    logins: list[int], failures: list[int], more: int
) -> None:
    n = min(len(logins), len(failures))
    ids = [f"a{i}" for i in range(n)]
    base = frame(account_id=ids, logins_30d=logins[:n], payment_failures_90d=failures[:n])
    reference = HealthReference.from_features(base, TWO)
    first = health_scores(base, None, TWO, reference=reference).iloc[0]
    busier = base.assign(logins_30d=[logins[0] + more, *logins[1:n]])
    failing = base.assign(payment_failures_90d=[failures[0] + more, *failures[1:n]])
    for changed in (busier, failing):
        # against the same reference, and against the changed population itself
        for ref in (reference, None):
            after = health_scores(changed, None, TWO, reference=ref).iloc[0]
            if changed is busier:
                assert after["usage_depth"] >= first["usage_depth"]
            else:
                assert after["billing"] <= first["billing"]
    # past everyone else's failures, billing is the lowest score there is
    worst = base.assign(payment_failures_90d=[max(failures[:n]) + 1, *failures[1:n]])
    lowest = health_scores(worst, None, TWO).iloc[0]["billing"]
    assert lowest == pytest.approx(100 / n)
    if any(f >= failures[0] for f in failures[1:n]):  # it was not the worst before
        assert lowest < first["billing"]


def test_frames_are_checked() -> None:
    with pytest.raises(ModelError, match="no column payment_failures_90d"):
        health_scores(frame(account_id=["a"], logins_30d=[1]), None, TWO)
    with pytest.raises(ModelError, match="account_id \\(or entity_id\\)"):
        health_scores(frame(logins_30d=[1], payment_failures_90d=[0]), None, TWO)
    with pytest.raises(ModelError, match="several rows for account 'a'"):
        health_scores(
            frame(account_id=["a", "a"], logins_30d=[1, 2], payment_failures_90d=[0, 0]),
            None,
            TWO,
        )


def test_health_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "health": {
                    "components": {
                        "Bad Name": {"weight": 1, "inputs": [{"feature": "logins_30d"}]},
                    },
                    "bands": {"green": 30, "yellow": 60},
                }
            },
            source="tenure.yaml",
            environ={},
        )
    keys = [p.key for p in info.value.problems]
    assert keys == ["health.components", "health.bands"]
    assert "lower_snake_case" in info.value.problems[0].expected
    assert info.value.problems[1].expected == "yellow (60.0) must not exceed green (30.0)"
    with pytest.raises(ConfigError, match="a weight above 0"):
        parse_config(
            {"health": {"components": {"x": {"weight": 0, "inputs": [{"feature": "f"}]}}}},
            source="tenure.yaml",
            environ={},
        )
    defaults = yaml.safe_load(default_config_text())["health"]
    assert HealthSettings.model_validate(defaults) == HealthSettings()
    assert sum(c.weight for c in HealthSettings().components.values()) == pytest.approx(1.0)


# -- the warehouse: build_health and health_auc on hand-made accounts ----------------


def track(event: str, when: dt.datetime, group: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "user_id": f"{group}_user",
        "anonymous_id": None,
        "group_id": group,
        "previous_id": None,
        "email": None,
        "timestamp": when,
        "traits": None,
        "properties": json.dumps(properties),
        "context": None,
        "source": "segment",
    }


def logins(group: str, days: list[int]) -> list[dict[str, Any]]:
    return [track("Signed In", at(d), group) for d in days]


def start(group: str, day: int) -> dict[str, Any]:
    return track(
        "Subscription Started", at(day), group, subscription_id=group, mrr=50, interval="month"
    )


def customers() -> list[dict[str, Any]]:
    """Days before AS_OF. At CUTOFF (60 days before) good, fine, bad and worse are
    customers; bad and worse cancel within the next 30 days."""
    return [
        start("g_good", 300),
        *logins("g_good", [*range(1, 13), *range(31, 37), *range(61, 73)]),
        start("g_fine", 300),
        *logins("g_fine", [2, 4, 6, 8, *range(31, 43), 62, 64, 66, 68]),
        start("g_bad", 300),
        *logins("g_bad", [70]),
        track("Payment Failed", at(75), "g_bad", amount=50),
        track("Subscription Canceled", at(50), "g_bad", subscription_id="g_bad"),
        start("g_worse", 300),
        track("Payment Failed", at(80), "g_worse", amount=50),
        track("Payment Failed", at(70), "g_worse", amount=50),
        track("Subscription Canceled", at(40), "g_worse", subscription_id="g_worse"),
        start("g_new", 10),
        *logins("g_new", [3, 5]),
        track("Lead Created", at(20), "g_prospect"),
    ]


CUTOFF = at(60)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("health")
    project = make_project(root / "proj", f"sqlite:///{root / 'store.db'}")
    load_events(project, "run-1", customers())
    stitch(project)
    yield project
    project.close()


def group_of(project: Project) -> dict[str, str]:
    backend = project.warehouse.backend
    rows = backend.to_pyarrow(backend.table("accounts")).to_pylist()
    return {r["account_id"]: r["group_ids"][0] for r in rows}


def test_build_health_scores_the_customers_at_as_of(company: Project) -> None:
    warehouse = company.warehouse
    build = build_health(warehouse, feature_set(), TWO, as_of=AS_OF)
    assert build.table == "health"
    assert build.accounts == 3
    assert build.bands == {Band.GREEN: 2, Band.YELLOW: 1, Band.RED: 0}
    names = group_of(company)
    table = warehouse.backend.to_pyarrow(warehouse.table("health")).to_pylist()
    assert [c for c in table[0]] == [
        "account_id",
        "as_of",
        "health",
        "band",
        "change_30d",
        "usage_depth",
        "billing",
        "movers",
    ]
    rows = {names[r["account_id"]]: r for r in table}
    # churned and prospect accounts are not scored
    assert set(rows) == {"g_good", "g_fine", "g_new"}
    assert {r["as_of"] for r in table} == {AS_OF}
    # logins now 12, 4, 2; no failures: usage 100, 66.7, 33.3; billing 100
    assert rows["g_good"]["health"] == pytest.approx(100.0)
    assert rows["g_fine"]["health"] == pytest.approx(80.0)
    assert rows["g_new"]["health"] == pytest.approx(60.0)
    # 30 days ago good had 6 logins (66.7 against today's), fine 12 (100)
    assert rows["g_good"]["change_30d"] == pytest.approx(20.0)
    assert rows["g_good"]["movers"] == "usage_depth +20"
    assert rows["g_fine"]["change_30d"] == pytest.approx(-20.0)
    assert rows["g_fine"]["movers"] == "usage_depth \u221220"
    # g_new was no customer 30 days ago
    assert rows["g_new"]["change_30d"] is None
    assert rows["g_new"]["movers"] is None


def test_no_customers_write_an_empty_table(company: Project) -> None:
    before_anyone = at(400)
    build = build_health(company.warehouse, feature_set(), TWO, as_of=before_anyone)
    assert (build.accounts, build.mean_health) == (0, None)
    table = company.warehouse.backend.to_pyarrow(company.warehouse.table("health"))
    assert table.num_rows == 0
    assert table.schema.field("as_of").type == pa.timestamp("us", tz="UTC")
    result = health_auc(company.warehouse, TWO, cutoff=before_anyone)
    assert (result.n, result.churners, result.auc) == (0, 0, None)


def test_unknown_features_are_config_errors(company: Project) -> None:
    wrong = health_settings(usage_depth=(1.0, [("logins_7d", UP, None)]))
    with pytest.raises(ConfigError) as info:
        build_health(company.warehouse, feature_set(), wrong, as_of=AS_OF)
    (problem,) = info.value.problems
    assert problem.key == "health.components.usage_depth.inputs[0].feature"
    assert problem.value == "logins_7d"


def test_health_auc_is_one_when_health_separates_the_churners(company: Project) -> None:
    result = health_auc(company.warehouse, TWO, cutoff=CUTOFF, horizon_days=30)
    # health at the cutoff: good 100, fine 85, bad 50, worse 25; bad and worse churn
    assert (result.n, result.churners, result.auc) == (4, 2, 1.0)
    assert (result.cutoff, result.horizon_days) == (CUTOFF, 30)


def test_public_surface() -> None:
    import tenure.models.health as module

    assert sorted(module.__all__) == sorted(
        [
            "CHANGE_DAYS",
            "HEALTH_TABLE",
            "Band",
            "HealthAUC",
            "HealthBuild",
            "HealthReference",
            "build_health",
            "health_auc",
            "health_scores",
        ]
    )
    assert all(hasattr(module, name) for name in module.__all__)


# -- end to end on a simulated company ----------------------------------------------


@pytest.mark.slow
def test_simulated_company_stages_and_health(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "company", accounts=300, months=14, seed=42)
    assert result.simulation is not None
    end = dt.datetime.combine(result.simulation.end, dt.time(), tzinfo=dt.UTC)
    truth = pd.read_parquet(tmp_path / "company" / "simulation" / "truth" / "accounts.parquet")
    with Project.open(tmp_path / "company") as project:
        warehouse = project.warehouse
        build = build_stages(warehouse, as_of=end)
        accounts = warehouse.backend.execute(warehouse.table("accounts").count())
        assert sum(build.counts.values()) == build.accounts == accounts
        # the simulator's customers: churned exactly as its truth says, the rest paying
        stages = warehouse.backend.to_pyarrow(warehouse.table("account_stages")).to_pylist()
        names = group_of(project)
        churned = {names[r["account_id"]] for r in stages if r["stage"] == "churned"}
        assert churned == set(truth.loc[truth["churned"], "account_id"])
        assert build.customers == len(truth) - len(churned)
        report = stage_report(warehouse, as_of=end)
        assert sum(s.current for s in report.stages) == accounts

        # health at monthly cutoffs, from when 180-day features have a full window to
        # 90 days (the horizon) before the end; one cutoff has only ~10 churners, so
        # the AUCs are pooled (weighted by churners)
        window_start = end - pd.DateOffset(months=14)
        cutoffs = pd.date_range(
            window_start + pd.DateOffset(months=6), end - pd.Timedelta(days=90), freq="MS"
        )
        assert len(cutoffs) == 6
        results = [
            health_auc(warehouse, cutoff=c.to_pydatetime(), horizon_days=90) for c in cutoffs
        ]
        assert all(r.auc is not None for r in results)
        churners = sum(r.churners for r in results)
        pooled = sum(r.churners * (r.auc or 0.0) for r in results) / churners
        assert pooled > 0.6
