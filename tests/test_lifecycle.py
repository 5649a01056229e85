"""Lifecycle stages: exact histories of hand-made accounts, invariants, as-of, the report."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import ibis
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tenure.lifecycle as lifecycle
from tenure.config import LifecycleSettings, ProjectConfig, default_config_text, parse_config
from tenure.errors import ConfigError
from tenure.identity import stitch
from tenure.lifecycle import (
    Stage,
    Unavailable,
    build_stages,
    current_stages,
    stage_history,
    stage_report,
)
from tenure.lifecycle._history import history_from_events
from tenure.project import Project
from tests._lake import load_events
from tests.conftest import make_project

AS_OF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def at(days_before: float) -> dt.datetime:
    return AS_OF - dt.timedelta(days=days_before)


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


def started(when: dt.datetime, group: str, sub: str, interval: str, mrr: float) -> dict[str, Any]:
    return track(
        "Subscription Started",
        when,
        group,
        subscription_id=sub,
        plan="starter",
        mrr=mrr,
        interval=interval,
    )


def canceled(when: dt.datetime, group: str, sub: str) -> dict[str, Any]:
    return track("Subscription Canceled", when, group, subscription_id=sub, plan="starter", mrr=0)


def company() -> list[dict[str, Any]]:
    """Nine accounts whose stage histories and KPIs are known by hand (days before AS_OF)."""
    return [
        # a lead that never becomes an opportunity: unqualified 30 days after first touch
        track("Lead Created", at(100), "g_prospect", lead_id="L1"),
        # an opportunity lost after 30 days
        track("Lead Created", at(200), "g_lost", lead_id="L2"),
        track("Lead Qualified", at(196), "g_lost", lead_id="L2"),
        track("Opportunity Created", at(190), "g_lost", opportunity_id="o_lost", amount=500),
        track("Opportunity Lost", at(160), "g_lost", opportunity_id="o_lost", amount=500),
        # lead → opportunity → won → annual customer who renewed once; MRR 100 → 130
        track("Lead Created", at(600), "g_annual", lead_id="L3"),
        track("Opportunity Created", at(590), "g_annual", opportunity_id="o_annual"),
        track("Opportunity Won", at(560), "g_annual", opportunity_id="o_annual", amount=1200),
        started(at(560), "g_annual", "a1", "year", 100),
        track("Subscription Changed", at(50), "g_annual", subscription_id="a1", mrr=130),
        # won in the period, still onboarding; used the product during the trial and after
        track("Lead Created", at(130), "g_won", lead_id="L4"),
        track("Lead Qualified", at(127), "g_won", lead_id="L4"),
        track("Opportunity Created", at(120), "g_won", opportunity_id="o_won", amount=1000),
        track("Feature Used", at(100), "g_won", feature="reports"),
        track("Opportunity Won", at(80), "g_won", opportunity_id="o_won", amount=1200),
        started(at(80), "g_won", "w", "year", 100),
        track("Feature Used", at(78), "g_won", feature="reports"),
        # a monthly customer: never in renewal; MRR 50 → 20
        started(at(500), "g_monthly", "m1", "month", 50),
        track("Subscription Changed", at(30), "g_monthly", subscription_id="m1", mrr=20),
        # a monthly customer who churned
        started(at(300), "g_churn", "c1", "month", 30),
        track("Feature Used", at(290), "g_churn", feature="api"),
        canceled(at(100), "g_churn", "c1"),
        # churned after 50 days, won back 100 days later on a new subscription
        started(at(400), "g_winback", "b1", "month", 40),
        canceled(at(350), "g_winback", "b1"),
        started(at(250), "g_winback", "b2", "month", 60),
        # a plan switch (cancel and start at one time) and a second subscription canceled
        # while the first stays: never churned
        started(at(300), "g_switch", "s1", "month", 10),
        canceled(at(200), "g_switch", "s1"),
        started(at(200), "g_switch", "s2", "month", 20),
        started(at(150), "g_switch", "s3", "month", 5),
        canceled(at(120), "g_switch", "s3"),
        # annual, canceled five days after its first renewal date
        started(at(500), "g_annual2", "x1", "year", 80),
        canceled(at(130), "g_annual2", "x1"),
    ]


PRO, UNQ, OPP, LOS = Stage.PROSPECT, Stage.UNQUALIFIED, Stage.OPPORTUNITY, Stage.LOST
ONB, EST, REN, MAT, CHU = (
    Stage.ONBOARDING,
    Stage.ESTABLISHED,
    Stage.RENEWAL,
    Stage.MATURE,
    Stage.CHURNED,
)

#: (stage, entered, exited) in days before AS_OF; None: still there.
EXPECTED: dict[str, list[tuple[Stage, float, float | None]]] = {
    "g_prospect": [(PRO, 100, 70), (UNQ, 70, None)],
    "g_lost": [(PRO, 200, 190), (OPP, 190, 160), (LOS, 160, None)],
    "g_annual": [
        (PRO, 600, 590),
        (OPP, 590, 560),
        (ONB, 560, 470),
        (EST, 470, 285),  # renewal window: 90 days before purchase + 365
        (REN, 285, 195),
        (MAT, 195, None),  # the next window opens after AS_OF
    ],
    "g_won": [(PRO, 130, 120), (OPP, 120, 80), (ONB, 80, None)],
    "g_monthly": [(ONB, 500, 410), (EST, 410, 135), (MAT, 135, None)],
    "g_churn": [(ONB, 300, 210), (EST, 210, 100), (CHU, 100, None)],
    "g_winback": [(ONB, 400, 350), (CHU, 350, 250), (ONB, 250, 160), (EST, 160, None)],
    "g_switch": [(ONB, 300, 210), (EST, 210, None)],
    "g_annual2": [
        (ONB, 500, 410),
        (EST, 410, 225),
        (REN, 225, 135),
        (MAT, 135, 130),
        (CHU, 130, None),
    ],
}


@pytest.fixture(scope="module")
def funnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("lifecycle")
    project = make_project(root / "proj", f"sqlite:///{root / 'store.db'}")
    load_events(project, "run-1", company())
    stitch(project)
    yield project
    project.close()


def groups(project: Project) -> dict[str, str]:
    """account_id → group id."""
    backend = project.warehouse.backend
    rows = backend.to_pyarrow(backend.table("accounts")).to_pylist()
    return {r["account_id"]: r["group_ids"][0] for r in rows}


def histories(
    project: Project, as_of: dt.datetime = AS_OF
) -> dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]]:
    names = groups(project)
    table = stage_history(project.warehouse, as_of=as_of)
    rows = project.warehouse.backend.to_pyarrow(table).to_pylist()
    out: dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]] = {}
    for row in sorted(rows, key=lambda r: (r["account_id"], r["entered"])):
        out.setdefault(names[row["account_id"]], []).append(
            (Stage(row["stage"]), row["entered"], row["exited"])
        )
    return out


@pytest.fixture(scope="module")
def today(funnel: Project) -> dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]]:
    return histories(funnel)


def test_each_hand_made_account_has_its_known_history(
    today: dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]],
) -> None:
    expected = {
        group: [(stage, at(a), None if b is None else at(b)) for stage, a, b in stays]
        for group, stays in EXPECTED.items()
    }
    assert today == expected


def test_history_is_built_only_from_events_before_as_of(
    funnel: Project, today: dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]]
) -> None:
    # g_churn cancels 100 days before AS_OF: 150 days before, it was still established
    earlier = at(150)
    seen_then = histories(funnel, earlier)
    assert seen_then["g_churn"] == [(ONB, at(300), at(210)), (EST, at(210), None)]
    assert "g_prospect" not in seen_then  # its first event came later
    # and the whole history then is today's history cut at that time
    cut: dict[str, list[tuple[Stage, dt.datetime, dt.datetime | None]]] = {}
    for group, stays in today.items():
        kept = [
            (stage, a, None if b is None or b >= earlier else b)
            for stage, a, b in stays
            if a < earlier
        ]
        if kept:
            cut[group] = kept
    assert seen_then == cut


def test_current_stages_and_build_write_both_tables(funnel: Project) -> None:
    names = groups(funnel)
    warehouse = funnel.warehouse
    current = warehouse.backend.to_pyarrow(current_stages(warehouse, as_of=AS_OF)).to_pylist()
    by_group = {names[r["account_id"]]: (r["stage"], r["days_in_stage"]) for r in current}
    assert by_group["g_won"] == ("onboarding", 80.0)
    assert by_group["g_annual2"] == ("churned", 130.0)

    build = build_stages(warehouse, as_of=AS_OF)
    assert build.accounts == 9
    assert build.stays == sum(len(stays) for stays in EXPECTED.values())
    assert build.counts == {
        PRO: 0,
        UNQ: 1,
        OPP: 0,
        LOS: 1,
        ONB: 1,
        EST: 2,
        REN: 0,
        MAT: 2,
        CHU: 2,
    }
    assert build.customers == 5
    stored = warehouse.backend.to_pyarrow(warehouse.table("account_stages")).to_pylist()
    assert {names[r["account_id"]]: r["stage"] for r in stored} == {
        g: str(s[-1][0]) for g, s in EXPECTED.items()
    }
    assert {r["as_of"] for r in stored} == {AS_OF}
    history = warehouse.backend.to_pyarrow(warehouse.table("stage_history")).num_rows
    assert history == build.stays


def test_report_on_the_known_funnel(funnel: Project) -> None:
    report = stage_report(funnel.warehouse, as_of=AS_OF, period_days=365)
    assert report.accounts == 9
    assert report.period_start == at(365)
    assert {s.stage: s.current for s in report.stages} == {
        PRO: 0,
        UNQ: 1,
        OPP: 0,
        LOS: 1,
        ONB: 1,
        EST: 2,
        REN: 0,
        MAT: 2,
        CHU: 2,
    }
    assert {(t.source, t.target): t.count for t in report.transitions} == {
        (PRO, UNQ): 1,
        (PRO, OPP): 3,
        (OPP, LOS): 1,
        (OPP, ONB): 2,
        (ONB, EST): 6,
        (ONB, CHU): 1,
        (CHU, ONB): 1,
        (EST, REN): 2,
        (EST, MAT): 1,
        (EST, CHU): 1,
        (REN, MAT): 2,
        (MAT, CHU): 1,
    }
    assert report.transition("established", "renewal") == 2

    prospect = report.stage(PRO)
    assert (prospect.entered, prospect.converted, prospect.conversion) == (4, 3, 0.75)
    # completed prospect stays: 30 (the unqualified one), 10, 10, 10 days
    assert (prospect.completed, prospect.mean_days, prospect.median_days) == (4, 15.0, 10.0)
    assert report.stage(OPP).conversion == pytest.approx(2 / 3)
    onboarding = report.stage(ONB)
    # g_won is still onboarding; g_winback's first stay ended in churn, its second did not
    assert (onboarding.entered, onboarding.converted) == (7, 6)
    assert onboarding.completed == 7
    assert onboarding.mean_days == pytest.approx((6 * 90 + 50) / 7)
    assert onboarding.median_days == 90.0
    assert report.stage(REN).conversion == 1.0  # both renewal windows went on to mature
    assert report.stage(CHU).conversion == pytest.approx(1 / 3)  # one win-back of three
    assert report.stage(MAT).conversion is None
    assert report.stage(MAT).next_stages == ()
    # no health or features table was built
    assert report.stage(MAT).health is None
    assert report.stage(MAT).feature_breadth is None

    leads = report.leads
    # L1, L2, L4 created in the period; L2 qualified after 4 days, L4 after 3
    assert (leads.leads, leads.qualified) == (3, 2)
    assert leads.qualification_rate == pytest.approx(2 / 3)
    assert leads.median_days_to_qualify == 3.5

    sales = report.sales
    assert (sales.opportunities, sales.won, sales.lost) == (2, 1, 1)
    assert sales.win_rate == 0.5
    assert sales.mean_won_amount == 1200.0
    assert (sales.mean_cycle_days, sales.median_cycle_days) == (35.0, 35.0)
    # 30 + 40 opportunity-days open in the year
    assert sales.pipeline == pytest.approx(70 / 365)
    assert sales.deal_velocity == pytest.approx(70 / 365 * 0.5 * 1200 / 35)

    onboard = report.onboarding
    # g_won (value after 2 days), g_churn (10), g_switch (never) bought in the period
    assert (onboard.new_customers, onboard.reached_value) == (3, 2)
    assert onboard.median_time_to_value_days == 6.0
    assert isinstance(onboard.milestone_completion, Unavailable)
    assert "onboarding_milestones" in onboard.milestone_completion.reason

    retention = report.retention
    # at the period start: g_annual 100, g_monthly 50, g_winback 40, g_annual2 80
    assert retention.customers_at_start == 4
    assert retention.mrr_start == 270.0
    # now: 130, 20, 60 (won back on a new subscription), 0
    assert retention.mrr_now == 210.0
    assert retention.expanded == 2
    assert retention.expansion_rate == 0.5
    assert retention.grr == pytest.approx((100 + 20 + 40 + 0) / 270)
    assert retention.nrr == pytest.approx(210 / 270)
    # g_annual renewed 195 days ago; g_annual2 canceled 5 days after its renewal date
    assert (retention.renewals_due, retention.renewed, retention.renewal_rate) == (2, 1, 0.5)


def test_milestones_and_health_and_adoption_per_stage(funnel: Project) -> None:
    warehouse = funnel.warehouse
    ids = {group: account for account, group in groups(funnel).items()}
    # the tables the health and feature builds write, by hand: mature g_annual and
    # g_monthly, established g_winback and g_switch
    health = {"g_annual": 80.0, "g_monthly": 60.0, "g_winback": 30.0, "g_switch": None}
    warehouse.replace_table(
        "health",
        pa.table({"account_id": [ids[g] for g in health], "health": list(health.values())}),
    )
    breadth = {"g_annual": 4.0, "g_monthly": 1.0, "g_won": 2.0}
    warehouse.replace_table(
        "features_account",
        pa.table(
            {"entity_id": [ids[g] for g in breadth], "feature_breadth_90d": list(breadth.values())}
        ),
    )
    settings = LifecycleSettings(onboarding_milestones=["Feature Used"])
    try:
        report = stage_report(warehouse, settings, as_of=AS_OF)
    finally:
        warehouse.backend.drop_table("health")
        warehouse.backend.drop_table("features_account")
    # g_churn and g_switch finished onboarding in the period; only g_churn used a feature
    assert report.onboarding.milestone_completion == 0.5
    assert (report.stage(MAT).health, report.stage(MAT).feature_breadth) == (70.0, 2.5)
    assert (report.stage(EST).health, report.stage(EST).feature_breadth) == (30.0, None)
    assert (report.stage(ONB).health, report.stage(ONB).feature_breadth) == (None, 2.0)


def test_first_touch_events_and_rules_are_configurable(funnel: Project) -> None:
    names = groups(funnel)
    settings = LifecycleSettings(
        prospect_days=5,
        onboarding_days=30,
        established_until_days=200,
        first_touch_events=["Lead Qualified"],
    )
    rows = funnel.warehouse.backend.to_pyarrow(
        stage_history(funnel.warehouse, settings, as_of=AS_OF)
    ).to_pylist()
    by_group: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]] = {}
    for row in sorted(rows, key=lambda r: (r["account_id"], r["entered"])):
        by_group.setdefault(names[row["account_id"]], []).append(
            (row["stage"], row["entered"], row["exited"])
        )
    # first touch is the qualification now; g_prospect was never qualified
    assert "g_prospect" not in by_group
    assert by_group["g_lost"] == [
        ("prospect", at(196), at(191)),
        ("unqualified", at(191), at(190)),
        ("opportunity", at(190), at(160)),
        ("lost", at(160), None),
    ]
    assert by_group["g_monthly"] == [
        ("onboarding", at(500), at(470)),
        ("established", at(470), at(300)),
        ("mature", at(300), None),
    ]


def test_lifecycle_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        _parse({"onboarding_days": 120, "established_until_days": 100})
    (problem,) = info.value.problems
    assert problem.key == "lifecycle"
    assert problem.expected == (
        "established_until_days (100) must be greater than onboarding_days (120)"
    )
    with pytest.raises(ConfigError) as info:
        _parse({"term_days": {"Year": 0}, "churn_events": []})
    assert [p.key for p in info.value.problems] == ["lifecycle.term_days", "lifecycle.churn_events"]
    assert LifecycleSettings(term_days={"Year": 400}).term_days == {"year": 400}
    defaults = yaml.safe_load(default_config_text())["lifecycle"]
    assert LifecycleSettings.model_validate(defaults) == LifecycleSettings()


def _parse(section: dict[str, Any]) -> ProjectConfig:
    return parse_config({"lifecycle": section}, source="tenure.yaml", environ={})


def test_public_surface() -> None:
    assert sorted(lifecycle.__all__) == sorted(
        [
            "CUSTOMER_STAGES",
            "FUNNEL_NEXT",
            "HISTORY_TABLE",
            "PRECEDENCE",
            "STAGES_TABLE",
            "LeadKPIs",
            "OnboardingKPIs",
            "RetentionKPIs",
            "SalesKPIs",
            "Stage",
            "StageBuild",
            "StageReport",
            "StageStats",
            "Transition",
            "Unavailable",
            "build_stages",
            "current_stages",
            "stage_history",
            "stage_report",
        ]
    )
    assert all(hasattr(lifecycle, name) for name in lifecycle.__all__)
    assert set(lifecycle.PRECEDENCE) == set(Stage)
    assert set(lifecycle.FUNNEL_NEXT) == set(Stage)


# -- invariants over random event sequences (no lake: memtables on in-memory DuckDB) --

_BASE = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
_EVENT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("message_id", pa.string()),
        ("event", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("properties", pa.string()),
    ]
)
_NAMES = [
    "Lead Created",
    "Opportunity Created",
    "Opportunity Lost",
    "Opportunity Won",
    "Subscription Started",
    "Subscription Canceled",
    "Signed In",
]

_event = st.tuples(
    st.sampled_from(_NAMES),
    st.integers(0, 900),  # day
    st.sampled_from(["s1", "s2", None]),
    st.sampled_from(["month", "year", None]),
)
_accounts = st.lists(st.lists(_event, min_size=1, max_size=8), min_size=1, max_size=6)
_LATER = dt.timedelta(days=1200)


@pytest.fixture(scope="module")
def memory() -> Iterator[Any]:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    yield con
    con.disconnect()


def _events_table(accounts: list[list[tuple[str, int, str | None, str | None]]]) -> Any:
    rows = []
    for a, events in enumerate(accounts):
        for n, (name, day, sub, interval) in enumerate(events):
            props: dict[str, Any] = {"mrr": 10}
            if sub is not None:
                props["subscription_id"] = sub
            if interval is not None:
                props["interval"] = interval
            rows.append(
                {
                    "account_id": f"a{a}",
                    "message_id": f"m{a}-{n:02d}",
                    "event": name,
                    "timestamp": _BASE + dt.timedelta(days=day),
                    "properties": json.dumps(props),
                }
            )
    return ibis.memtable(pa.Table.from_pylist(rows, schema=_EVENT_SCHEMA))


def _stays(
    con: Any, events: Any, as_of: dt.datetime
) -> dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]]:
    table = history_from_events(events, LifecycleSettings(), as_of=as_of)
    out: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]] = {}
    for row in sorted(
        con.to_pyarrow(table).to_pylist(), key=lambda r: (r["account_id"], r["entered"])
    ):
        out.setdefault(row["account_id"], []).append((row["stage"], row["entered"], row["exited"]))
    return out


def _check_contiguous(
    accounts: list[list[tuple[str, int, str | None, str | None]]],
    stays_by_account: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]],
) -> None:
    for a, events in enumerate(accounts):
        first = _BASE + dt.timedelta(days=min(day for _, day, _, _ in events))
        stays = stays_by_account[f"a{a}"]
        assert stays[0][1] == first  # starts at first touch
        assert stays[-1][2] is None  # one open stay, the last
        for (stage, entered, exited), (next_stage, next_entered, _) in itertools.pairwise(stays):
            assert exited == next_entered  # contiguous, never overlapping
            assert entered < exited
            assert stage != next_stage  # runs of one stage are merged
        assert {Stage(stage) for stage, _, _ in stays} <= set(Stage)


def _cut(
    stays_by_account: dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]],
    cut: dt.datetime,
) -> dict[str, list[tuple[str, dt.datetime, dt.datetime | None]]]:
    expected = {}
    for account, stays in stays_by_account.items():
        kept = [(s, a, None if b is None or b >= cut else b) for s, a, b in stays if a < cut]
        if kept:
            expected[account] = kept
    return expected


# each example costs one query (~0.4 s, mostly Ibis compiling), so few examples of
# several accounts each; the seeded batch below covers many more sequences at once
@settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(accounts=_accounts)
def test_stays_are_contiguous(
    memory: Any, accounts: list[list[tuple[str, int, str | None, str | None]]]
) -> None:
    _check_contiguous(accounts, _stays(memory, _events_table(accounts), _BASE + _LATER))


def test_as_of_only_cuts_the_history_of_many_random_accounts(memory: Any) -> None:
    accounts = [_random_account(n) for n in range(300)]
    events = _events_table(accounts)
    full = _stays(memory, events, _BASE + _LATER)
    _check_contiguous(accounts, full)
    for cut_day in (45, 333, 777):
        cut = _BASE + dt.timedelta(days=cut_day)
        assert _stays(memory, events, cut) == _cut(full, cut)


def _random_account(seed: int) -> list[tuple[str, int, str | None, str | None]]:
    rng = random.Random(seed)
    return [
        (
            rng.choice(_NAMES),
            rng.randrange(0, 901),
            rng.choice(["s1", "s2", None]),
            rng.choice(["month", "year", None]),
        )
        for _ in range(rng.randrange(1, 10))
    ]


def test_single_rules_on_short_sequences(memory: Any) -> None:
    events = _events_table(
        [
            # a win-back on the subscription id it had before
            [
                ("Subscription Started", 0, "s1", "month"),
                ("Subscription Canceled", 100, "s1", None),
                ("Subscription Started", 150, "s1", "month"),
            ],
            # a won deal and no subscription: a customer with no known term
            [("Opportunity Created", 0, None, None), ("Opportunity Won", 20, None, None)],
            # an annual plan: a renewal window before every anniversary
            [("Subscription Started", 0, "s1", "year")],
            # won, and the annual subscription only 300 days later: the spell starts at
            # the won deal, the first window opens when the term becomes known
            [("Opportunity Won", 0, None, None), ("Subscription Started", 300, "s1", "year")],
        ]
    )
    day = lambda d: _BASE + dt.timedelta(days=d)  # noqa: E731
    assert _stays(memory, events, day(1000)) == {
        "a0": [
            ("onboarding", day(0), day(90)),
            ("established", day(90), day(100)),
            ("churned", day(100), day(150)),
            ("onboarding", day(150), day(240)),
            ("established", day(240), day(515)),
            ("mature", day(515), None),
        ],
        "a1": [
            ("opportunity", day(0), day(20)),
            ("onboarding", day(20), day(110)),
            ("established", day(110), day(385)),
            ("mature", day(385), None),
        ],
        "a2": [
            ("onboarding", day(0), day(90)),
            ("established", day(90), day(275)),
            ("renewal", day(275), day(365)),
            ("mature", day(365), day(640)),
            ("renewal", day(640), day(730)),
            ("mature", day(730), None),  # the third window opens on day 1005
        ],
        "a3": [
            ("onboarding", day(0), day(90)),
            ("established", day(90), day(300)),
            ("renewal", day(300), day(365)),
            ("mature", day(365), day(640)),
            ("renewal", day(640), day(730)),
            ("mature", day(730), None),
        ],
    }
