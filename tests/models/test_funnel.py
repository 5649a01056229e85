"""The sales funnel: exact point-in-time frames on hand-made deals and leads, and a
simulated company whose deals' true outcomes are known."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tenure.collect import ingest
from tenure.errors import ModelError
from tenure.identity import stitch
from tenure.models._funnel import (
    LEAD_MODEL,
    LEAD_SCORES_TABLE,
    OPPORTUNITY_MODEL,
    OPPORTUNITY_SCORES_TABLE,
    lead_frame,
    opportunity_frame,
    score_funnel,
    train_funnel,
)
from tenure.models.propensity import PropensityClassifier
from tenure.models.registry import ModelStatus, registry_for
from tenure.project import Project, init_project
from tenure.simulate import load_simulation_config, simulate
from tests._lake import load_events
from tests.conftest import make_project

CUT = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def day(offset: float) -> dt.datetime:
    return CUT + dt.timedelta(days=offset)


C1, C2, C3 = day(-30), day(0), day(10)
OBSERVED_UNTIL = day(20)
CUTOFFS = [C1, C2, C3]


def event(
    kind: str,
    name: str | None,
    when: dt.datetime,
    *,
    group: str | None = None,
    email: str | None = None,
    anonymous: str | None = None,
    user: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    return {
        "type": kind,
        "event": name,
        "user_id": user,
        "anonymous_id": anonymous,
        "group_id": group,
        "previous_id": None,
        "email": email,
        "timestamp": when,
        "traits": json.dumps({"email": email}) if kind == "identify" else None,
        "properties": json.dumps(properties) if kind != "identify" else None,
        "context": None,
        "source": "hubspot" if kind == "track" else "segment",
    }


def crm(name: str, when: dt.datetime, group: str, **properties: Any) -> dict[str, Any]:
    return event("track", name, when, group=group, email=f"sam@{group}.example", **properties)


def page(name: str, when: dt.datetime, anonymous: str, group: str | None = None) -> dict[str, Any]:
    return event("page", name, when, anonymous=anonymous, group=group, path=f"/{name.lower()}")


def deal(name: str, offset: float, group: str, opp: object, **properties: Any) -> dict[str, Any]:
    return crm(f"Opportunity {name}", day(offset), group, opportunity_id=opp, **properties)


def lead(offset: float, group: str, source: str | None = None) -> dict[str, Any]:
    properties = {} if source is None else {"lead_source": source}
    return crm("Lead Created", day(offset), group, **properties)


def funnel_history() -> list[dict[str, Any]]:
    """Deals and leads whose every frame row is known by hand (days relative to CUT)."""
    stage = "Stage Changed"
    return [
        # acme: two leads (the first is its source), two deals, one deal never created
        lead(-70, "acme", "referral"),
        lead(-15, "acme", "paid"),
        deal("Created", -60, "acme", "deal-1", amount=1000, stage="discovery"),
        deal(stage, -40, "acme", "deal-1", stage="demo", previous_stage="discovery", amount=1200),
        deal(stage, -5, "acme", "deal-1", stage="proposal", previous_stage="demo", amount=1500),
        deal("Won", 15, "acme", "deal-1", amount=1500),
        deal("Created", -20, "acme", "deal-2"),
        # lost after observed_until: still open as far as the run can tell
        deal("Lost", 25, "acme", "deal-2", amount=0),
        deal(stage, -10, "acme", "deal-x", stage="demo"),
        # globex: a lead without a source; a deal lost between C1 and C2 (amount as text)
        lead(-55, "globex"),
        deal("Created", -50, "globex", "deal-3", amount="800", stage="discovery"),
        deal("Lost", -25, "globex", "deal-3", amount=800),
        # initech: a numeric deal id, won exactly at C1 (open at C1, closed there)
        lead(-120, "initech", "organic"),
        deal("Created", -90, "initech", 4242, amount=300),
        deal("Won", -30, "initech", 4242, amount=300),
        # hooli: browses anonymously, qualifies, starts a trial that ties the visitor
        # to the account just before C1, and becomes a deal 10 days after C1
        page("Pricing", day(-35), "anon-h"),
        page("Docs", day(-33), "anon-h"),
        lead(-40, "hooli", "events"),
        crm("Lead Qualified", day(-32), "hooli"),
        event("track", "Trial Started", day(-31), anonymous="anon-h", group="hooli"),
        deal("Created", -20, "hooli", "deal-6", amount=500, stage="discovery"),
        # umbrella: a lead too old at C1, a new one before C2; its visitor is tied to the
        # account only at day 5, so the page view counts at C3 and not at C2
        lead(-125, "umbrella", "paid"),
        lead(-10, "umbrella", "referral"),
        page("Pricing", day(-8), "anon-u"),
        event("identify", None, day(5), anonymous="anon-u", user="u-umb", group="umbrella"),
        # soylent: a lead exactly 90 days old at C2; a page naming the account itself
        lead(-90, "soylent", "organic"),
        page("Customers", day(-34), "anon-s", group="soylent"),
    ]


def load_funnel(project: Project) -> Project:
    load_events(project, "crm-1", funnel_history())
    stitch(project)
    return project


@pytest.fixture(scope="module")
def funnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The hand-made funnel, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("handmade")
    project = make_project(root / "proj", f"sqlite:///{root / 'store.db'}")
    yield load_funnel(project)
    project.close()


def accounts(project: Project) -> dict[str, str]:
    """Group id → account id."""
    backend = project.warehouse.backend
    rows = backend.to_pyarrow(backend.table("accounts")).to_pylist()
    return {group: row["account_id"] for row in rows for group in row["group_ids"]}


def plain(value: object) -> object:
    """A cell as a plain value: timestamps as datetimes, every kind of missing as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")
    ]


OPPORTUNITY_COLUMNS = [
    "opportunity_id",
    "account_id",
    "cutoff",
    "stage",
    "age_days",
    "days_in_stage",
    "stage_changes",
    "amount",
    "lead_source",
    "closed_at",
    "won",
]


def test_opportunity_rows_are_the_open_deals_with_what_was_known_then(funnel: Project) -> None:
    ids = accounts(funnel)
    frame = opportunity_frame(funnel.warehouse, CUTOFFS, observed_until=OBSERVED_UNTIL)
    assert list(frame.columns) == OPPORTUNITY_COLUMNS
    won_later = (day(15), 1)
    still_open = (None, None)
    expected = [
        ("4242", "initech", C1, "created", 60, 60, 0, 300, "organic", C1, 1),
        ("deal-1", "acme", C1, "demo", 30, 10, 1, 1200, "referral", *won_later),
        ("deal-3", "globex", C1, "discovery", 20, 20, 0, 800, None, day(-25), 0),
        ("deal-1", "acme", C2, "proposal", 60, 5, 2, 1500, "referral", *won_later),
        ("deal-2", "acme", C2, "created", 20, 20, 0, None, "referral", *still_open),
        ("deal-6", "hooli", C2, "discovery", 20, 20, 0, 500, "events", *still_open),
        ("deal-1", "acme", C3, "proposal", 70, 15, 2, 1500, "referral", *won_later),
        ("deal-2", "acme", C3, "created", 30, 30, 0, None, "referral", *still_open),
        ("deal-6", "hooli", C3, "discovery", 30, 30, 0, 500, "events", *still_open),
    ]
    assert records(frame) == [
        dict(zip(OPPORTUNITY_COLUMNS, (opp, ids[group], *rest), strict=True))
        for opp, group, *rest in expected
    ]
    assert str(frame["won"].dtype) == "Int64"
    # once the run stands after deal-2's loss, its label is read
    later = opportunity_frame(funnel.warehouse, [C2], observed_until=day(30))
    assert records(later[later["opportunity_id"] == "deal-2"][["closed_at", "won"]]) == [
        {"closed_at": day(25), "won": 0}
    ]


def test_lead_rows_are_recent_leads_without_a_deal(funnel: Project) -> None:
    ids = accounts(funnel)
    frame = lead_frame(funnel.warehouse, CUTOFFS, observed_until=OBSERVED_UNTIL)
    columns = ["lead_source", "days_since_lead", "qualified", "page_views_30d", "events_30d"]
    expected = [
        # hooli at C1: both anonymous page views count (the trial tied the visitor before C1)
        ("hooli", C1, ["events", 10.0, 1, 2, 3], 1),
        ("soylent", C1, ["organic", 60.0, 0, 1, 0], 0),
        ("soylent", C2, ["organic", 90.0, 0, 0, 0], None),
        ("umbrella", C2, ["referral", 10.0, 0, 0, 1], None),
        ("umbrella", C3, ["referral", 20.0, 0, 1, 1], None),
    ]
    rows = [
        {"account_id": ids[g], "cutoff": c, **dict(zip(columns, v, strict=True)), "converted": y}
        for g, c, v, y in expected
    ]
    key = [ids[g] for g, *_ in expected]
    assert sorted(records(frame), key=lambda r: (r["cutoff"], key.index(r["account_id"]))) == rows
    assert str(frame["converted"].dtype) == "Int64"


def test_training_skips_both_models_on_too_few_outcomes(funnel: Project) -> None:
    registry = registry_for(funnel)
    # cutoffs at days -70, -40 and -10; every lead label and all but two deal labels known
    trained = train_funnel(
        funnel.warehouse, registry, as_of=OBSERVED_UNTIL, history_months=3, validation_months=1
    )
    assert trained.rows == {OPPORTUNITY_MODEL: 5, LEAD_MODEL: 5}
    assert trained.versions == {}
    assert trained.promoted == []
    assert trained.skipped == {
        OPPORTUNITY_MODEL: "4 positive and 1 negative outcomes (10 of each needed)",
        LEAD_MODEL: "0 positive and 5 negative outcomes (10 of each needed)",
    }
    # nothing in production: scoring writes nothing
    scored = score_funnel(funnel.warehouse, registry, as_of=C2)
    assert scored.rows == {}
    assert not funnel.warehouse.has_table(OPPORTUNITY_SCORES_TABLE)
    assert not funnel.warehouse.has_table(LEAD_SCORES_TABLE)


def test_training_needs_older_months_to_fit_on(sqlite_project: Project) -> None:
    registry = registry_for(sqlite_project)
    expected = (
        "out-of-time validation needs 1 ≤ validation_months < history_months "
        "(got validation_months=3, history_months=3)"
    )
    with pytest.raises(ModelError, match=f"^{re.escape(expected)}$"):
        train_funnel(sqlite_project.warehouse, registry, as_of=CUT, history_months=3)


def _toy_model(target: str, frame: pd.DataFrame, seed: int) -> PropensityClassifier:
    """A model fitted on random rows shaped like *frame* (scoring is what is tested)."""
    rng = np.random.default_rng(seed)
    rows = frame.sample(200, replace=True, random_state=seed).reset_index(drop=True)
    for column in rows.columns:
        if pd.api.types.is_numeric_dtype(rows[column]):
            rows[column] = rows[column].astype(float) * rng.uniform(0.5, 1.5, len(rows))
    y = (rows.iloc[:, 0].astype(str).str.len() + rng.integers(0, 3, len(rows))) % 2
    return PropensityClassifier(target_name=target, n_jobs=1, n_estimators=20).fit(rows, y)


def test_scoring_writes_the_open_deals_and_current_leads(sqlite_project: Project) -> None:
    funnel = load_funnel(sqlite_project)
    ids = accounts(funnel)
    registry = registry_for(funnel)
    deals = opportunity_frame(funnel.warehouse, CUTOFFS, observed_until=OBSERVED_UNTIL)
    leads = lead_frame(funnel.warehouse, CUTOFFS, observed_until=OBSERVED_UNTIL)
    opp_features = ["stage", "age_days", "days_in_stage", "stage_changes", "amount"]
    lead_features = ["lead_source", "days_since_lead", "qualified"]
    for name, model in (
        (OPPORTUNITY_MODEL, _toy_model("win", deals[opp_features], 1)),
        (LEAD_MODEL, _toy_model("conversion", leads[lead_features], 2)),
    ):
        version = registry.register(name, model, actor="test")
        registry.promote(name, version.version, to=ModelStatus.PRODUCTION, actor="test")

    scored = score_funnel(funnel.warehouse, registry, as_of=C2)
    assert scored.rows == {OPPORTUNITY_SCORES_TABLE: 3, LEAD_SCORES_TABLE: 2}
    assert scored.versions == {
        OPPORTUNITY_MODEL: "opportunity_win v1",
        LEAD_MODEL: "lead_conversion v1",
    }
    backend = funnel.warehouse.backend
    opps = backend.to_pyarrow(funnel.warehouse.table(OPPORTUNITY_SCORES_TABLE)).to_pandas()
    opps = opps.sort_values("opportunity_id", ignore_index=True)
    shown = opps[["opportunity_id", "account_id", "stage", "age_days", "model"]]
    assert list(shown.itertuples(index=False, name=None)) == [
        ("deal-1", ids["acme"], "proposal", 60.0, "opportunity_win v1"),
        ("deal-2", ids["acme"], "created", 20.0, "opportunity_win v1"),
        ("deal-6", ids["hooli"], "discovery", 20.0, "opportunity_win v1"),
    ]
    assert (opps["as_of"] == pd.Timestamp(C2)).all()
    assert opps["win_probability"].between(0, 1).all()
    assert opps["expected_value"].tolist()[0] == pytest.approx(1500 * opps["win_probability"][0])
    assert math.isnan(opps["expected_value"][1])  # deal-2 has no amount yet
    assert opps["expected_value"][2] == pytest.approx(500 * opps["win_probability"][2])
    for text in opps["reasons"]:
        reasons = json.loads(text)
        assert len(reasons) <= 3
        assert all(set(r) == {"feature", "value", "contribution", "text"} for r in reasons)
        assert all(r["contribution"] > 0 and r["feature"] in opp_features for r in reasons)

    lead_rows = backend.to_pyarrow(funnel.warehouse.table(LEAD_SCORES_TABLE)).to_pandas()
    lead_rows = lead_rows.sort_values("days_since_lead", ignore_index=True)
    shown = lead_rows[["account_id", "lead_source", "days_since_lead", "model"]]
    assert list(shown.itertuples(index=False, name=None)) == [
        (ids["umbrella"], "referral", 10.0, "lead_conversion v1"),
        (ids["soylent"], "organic", 90.0, "lead_conversion v1"),
    ]
    assert lead_rows["conversion_probability"].between(0, 1).all()

    # a later run replaces the table: deal-1 was won and deal-2 lost by then
    again = score_funnel(funnel.warehouse, registry, as_of=day(40))
    assert again.rows[OPPORTUNITY_SCORES_TABLE] == 1
    later = backend.to_pyarrow(funnel.warehouse.table(OPPORTUNITY_SCORES_TABLE)).to_pylist()
    assert [(r["opportunity_id"], r["age_days"]) for r in later] == [("deal-6", 60.0)]


# ------------------------------------------------------------------ simulated company


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 simulated accounts over 14 months, ingested and stitched (as the demo does,
    without the churn models it also trains)."""
    root = tmp_path_factory.mktemp("funnel") / "company"
    root.mkdir()
    config = load_simulation_config(None, accounts=300, months=14)
    report = simulate(root / "simulation", config, seed=5)
    end = dt.datetime.combine(report.end, dt.time(), tzinfo=dt.UTC)
    project = init_project(root, clock=lambda: end)
    try:
        ingest(project, [root / "simulation" / "events", root / "simulation" / "exports"])
        stitch(project)
    finally:
        project.close()
    (root / "end.txt").write_text(end.isoformat())
    return root


def _open_in_lake(root: Path, at: dt.datetime) -> set[str]:
    """Opportunities created before *at* and not won or lost before it, read from the lake."""
    rows = duckdb.sql(
        f"""
        SELECT json_extract_string(properties, '$.opportunity_id') AS opp, event, timestamp
        FROM read_parquet('{root}/lake/events/**/*.parquet', hive_partitioning = true)
        WHERE event LIKE 'Opportunity %'
        """
    ).df()
    before = rows[rows["timestamp"] < pd.Timestamp(at)]
    created = set(before.loc[before["event"] == "Opportunity Created", "opp"])
    closed = set(before.loc[before["event"].isin(["Opportunity Won", "Opportunity Lost"]), "opp"])
    return created - closed


@pytest.mark.slow
def test_a_simulated_company_funnel_is_learned_and_scored(company: Path) -> None:
    end = dt.datetime.fromisoformat((company / "end.txt").read_text())
    # every simulated deal closes inside the window: train and score two months before
    # its end, so the open deals' true outcomes are known
    as_of = end - dt.timedelta(days=60)
    truth = pd.read_parquet(company / "simulation" / "truth" / "opportunities.parquet")
    with Project.open(company, clock=lambda: end) as project:
        warehouse, registry = project.warehouse, registry_for(project)
        trained = train_funnel(warehouse, registry, as_of=as_of, actor="test")
        for name in (OPPORTUNITY_MODEL, LEAD_MODEL):
            assert (name in trained.versions) != (name in trained.skipped), name
        print("funnel training", trained.rows, json.dumps(trained.metrics, indent=1))
        print("skipped", trained.skipped)
        assert sorted(trained.promoted) == sorted(trained.versions)

        scored = score_funnel(warehouse, registry, as_of=as_of)
        if OPPORTUNITY_MODEL not in trained.versions:
            return
        opps = warehouse.backend.to_pyarrow(warehouse.table(OPPORTUNITY_SCORES_TABLE)).to_pandas()
        assert set(opps["opportunity_id"]) == _open_in_lake(company, as_of)
        assert (
            len(opps) == scored.rows[OPPORTUNITY_SCORES_TABLE] == opps["opportunity_id"].nunique()
        )
        assert opps["win_probability"].between(0, 1).all()

        # the frame's labels, read once the window has ended, are the simulation's truth
        labelled = opportunity_frame(warehouse, [as_of], observed_until=end)
        judged = labelled.merge(truth, on="opportunity_id", validate="one_to_one")
        assert len(judged) == len(opps)
        assert (judged["won_x"].astype(bool) == judged["won_y"]).all()

        evaluated = opps.merge(truth, on="opportunity_id", validate="one_to_one")
        auc = roc_auc_score(evaluated["won"], evaluated["win_probability"])
        oracle = roc_auc_score(evaluated["won"], evaluated["p_win"])
        print(
            f"win ROC-AUC on the {len(evaluated)} deals open at {as_of:%Y-%m-%d}: {auc:.3f} "
            f"(the true p_win's: {oracle:.3f})"
        )
        assert auc > 0.55

        # at the window's end no deal is open: the table holds exactly none
        at_end = score_funnel(warehouse, registry, as_of=end)
        assert _open_in_lake(company, end) == set()
        assert at_end.rows[OPPORTUNITY_SCORES_TABLE] == 0
