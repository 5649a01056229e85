"""``tenure report kpis``: cohort and stage KPIs of hand-made accounts, checked by hand."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tenure.cli import app
from tenure.config import CONFIG_FILENAME
from tenure.errors import ConfigError
from tenure.identity import stitch
from tenure.lifecycle import Stage, Unavailable
from tenure.measure._kpis import _SCORES_TABLE, CohortKPIs, _Acquisition, kpi_report
from tenure.measure._spend import MonthlySpend, read_spend
from tenure.project import Project
from tests._lake import load_events
from tests.conftest import make_project

AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def track(event: str, when: str, group: str, user: str = "", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "user_id": user or f"{group}_user",
        "anonymous_id": None,
        "group_id": group,
        "previous_id": None,
        "email": None,
        "timestamp": day(when),
        "traits": None,
        "properties": json.dumps(properties),
        "context": None,
        "source": "segment",
    }


def started(when: str, group: str, sub: str, mrr: float) -> dict[str, Any]:
    return track(
        "Subscription Started", when, group, subscription_id=sub, mrr=mrr, interval="month"
    )


def changed(when: str, group: str, sub: str, mrr: float) -> dict[str, Any]:
    return track("Subscription Changed", when, group, subscription_id=sub, mrr=mrr)


def canceled(when: str, group: str, sub: str) -> dict[str, Any]:
    return track("Subscription Canceled", when, group, subscription_id=sub, mrr=0)


def nps(when: str, group: str, score: int, user: str = "") -> dict[str, Any]:
    return track("NPS Submitted", when, group, user, score=score)


def used(when: str, group: str) -> dict[str, Any]:
    return track("Feature Used", when, group, feature="reports")


def company() -> list[dict[str, Any]]:
    """Three signup cohorts (2023-01, 2023-02, 2024-02) and a prospect; see the tests."""
    return [
        # 2023-01: an expansion, a cancellation, a contraction
        started("2023-01-10", "a1", "a1", 100),
        used("2023-01-12", "a1"),  # 2 days to value
        changed("2023-06-15", "a1", "a1", 150),
        nps("2023-03-01", "a1", 6, "a1_ann"),  # replaced by her later answer
        nps("2023-09-01", "a1", 10, "a1_ann"),
        nps("2023-04-01", "a1", 8, "a1_bob"),
        started("2023-01-20", "a2", "a2", 50),
        used("2023-01-25", "a2"),  # 5 days
        canceled("2023-08-10", "a2", "a2"),
        nps("2023-05-01", "a2", 3),
        used("2023-01-05", "a3"),  # before signup: not activation
        started("2023-01-31", "a3", "a3", 200),
        changed("2023-10-01", "a3", "a3", 120),
        nps("2023-11-01", "a3", 9),
        # 2023-02: a second subscription canceled (no churn); a churn in the signup month
        # and a win-back
        started("2023-02-14", "b1", "b1", 80),
        used("2023-02-24", "b1"),  # 10 days
        started("2023-05-01", "b1", "b1x", 20),
        canceled("2023-09-01", "b1", "b1x"),
        changed("2023-12-01", "b1", "b1", 90),
        started("2023-02-20", "b2", "b2", 40),
        canceled("2023-02-25", "b2", "b2"),
        started("2023-06-01", "b2", "b2y", 40),
        # 2024-02: a subscriber, and a CRM-only customer (a won deal, no subscription)
        started("2024-02-05", "d1", "d1", 30),
        used("2024-02-06T12:00:00", "d1"),  # 1.5 days
        track("Opportunity Created", "2024-01-20", "d2", opportunity_id="o1"),
        track("Opportunity Won", "2024-02-10", "d2", opportunity_id="o1", amount=1000),
        # never bought: in no cohort, unqualified by AS_OF
        track("Lead Created", "2024-01-01", "p1", lead_id="L1"),
        nps("2024-01-02", "p1", 0),
    ]


def future() -> list[dict[str, Any]]:
    """Events on and after AS_OF: the report as of AS_OF must not see them."""
    return [
        canceled("2024-03-01", "a1", "a1"),
        started("2024-03-02", "e1", "e1", 500),
        used("2024-03-03", "b2"),
        nps("2024-03-04", "a2", 10),
        changed("2024-03-05", "b1", "b1", 1000),
    ]


def _project(root: Path, events: list[dict[str, Any]]) -> Project:
    project = make_project(root / "proj", f"sqlite:///{root / 'store.db'}")
    load_events(project, "run-1", events)
    stitch(project)
    return project


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = _project(tmp_path_factory.mktemp("kpis"), [*company(), *future()])
    yield project
    project.close()


@pytest.fixture(scope="module")
def report(lake: Project) -> Any:
    return kpi_report(lake, as_of=AS_OF)


def test_cohorts_are_signup_months_of_customers(report: Any) -> None:
    assert [f"{c.cohort:%Y-%m}" for c in report.cohorts] == ["2023-01", "2023-02", "2024-02"]
    assert [c.accounts for c in report.cohorts] == [3, 2, 2]  # the prospect is in none
    assert report.cohort("2024-02").cohort == dt.date(2024, 2, 1)
    with pytest.raises(KeyError, match="2022-01"):
        report.cohort("2022-01")


def test_activation_and_time_to_value(report: Any) -> None:
    jan, feb, young = (report.cohort(m) for m in ("2023-01", "2023-02", "2024-02"))
    assert (jan.activated, jan.activation_rate) == (2, pytest.approx(2 / 3))
    assert jan.median_time_to_value_days == pytest.approx(3.5)  # 2 and 5 days
    assert (feb.activated, feb.activation_rate) == (1, 0.5)
    assert feb.median_time_to_value_days == pytest.approx(10.0)
    assert (young.activation_rate, young.median_time_to_value_days) == (0.5, pytest.approx(1.5))


def test_retention_curves(report: Any) -> None:
    jan, feb, young = (report.cohort(m) for m in ("2023-01", "2023-02", "2024-02"))
    # month m ends on the first of cohort month + m + 1; a2 churned on 2023-08-10
    assert jan.retention == pytest.approx([1.0] * 7 + [2 / 3] * 7)  # 2023-02-01 … 2024-03-01
    # b2 churned in its signup month and was won back on 2023-06-01 (month 3's end)
    assert feb.retention == pytest.approx([0.5, 0.5, 0.5] + [1.0] * 10)
    # the CRM-only customer is active from its won deal
    assert young.retention == (1.0,)


def test_logo_and_revenue_churn(report: Any) -> None:
    jan, feb, young = (report.cohort(m) for m in ("2023-01", "2023-02", "2024-02"))
    assert (jan.active, jan.logo_churn) == (2, pytest.approx(1 / 3))
    # all three active at the end of January; two still are 13 months later
    assert jan.logo_churn_monthly == pytest.approx(1 - (2 / 3) ** (1 / 13))
    # MRR at 2023-02-01: 100 + 50 + 200; now 150, 0, 120; lost 50 + 80
    assert jan.revenue_churn == pytest.approx(130 / 350)
    assert jan.revenue_churn_monthly == pytest.approx(1 - (220 / 350) ** (1 / 13))
    assert (feb.active, feb.logo_churn, feb.logo_churn_monthly) == (2, 0.0, 0.0)
    assert feb.revenue_churn == 0.0  # b1 80 → 90; b2 had no MRR at month 0's end
    assert young.logo_churn == 0.0
    assert isinstance(young.logo_churn_monthly, Unavailable)
    assert young.revenue_churn == 0.0  # month 0 ends at AS_OF
    assert young.revenue_churn_monthly == Unavailable(
        "less than a month since the end of the signup month"
    )


def test_grr_and_nrr_at_twelve_months(report: Any) -> None:
    jan, feb, young = (report.cohort(m) for m in ("2023-01", "2023-02", "2024-02"))
    # 2023-02-01 → 2024-02-01: 100 → 150, 50 → 0, 200 → 120
    assert jan.grr_12m == pytest.approx((100 + 0 + 120) / 350)
    assert jan.nrr_12m == pytest.approx((150 + 0 + 120) / 350)
    # 2023-03-01 → 2024-03-01: b1 80 → 90 (its second subscription came and went)
    assert (feb.grr_12m, feb.nrr_12m) == (1.0, pytest.approx(90 / 80))
    assert young.grr_12m == Unavailable("cohort too young: its month 12 ends 2025-03-01")
    assert young.nrr_12m == young.grr_12m


def test_nps_clv_and_cac(report: Any) -> None:
    jan, feb = report.cohort("2023-01"), report.cohort("2023-02")
    # latest answers: a1 ann 10, a1 bob 8, a2 3, a3 9 → 2 promoters, 1 detractor of 4
    assert (jan.nps, jan.nps_respondents) == (pytest.approx(25.0), 4)
    assert (feb.nps, feb.nps_respondents) == (Unavailable("no NPS answers"), 0)
    assert isinstance(jan.mean_clv, Unavailable)
    assert "tenure score" in jan.mean_clv.reason
    assert jan.cac == jan.cac_payback_months == report.cac_payback_months
    assert jan.cac_payback_months == Unavailable(
        "no spend data: set measure.spend in tenure.yaml to a CSV of month and amount "
        "(or pass --spend FILE)"
    )


def test_by_stage(report: Any) -> None:
    mature, established, onboarding = (
        report.stage(s) for s in (Stage.MATURE, Stage.ESTABLISHED, Stage.ONBOARDING)
    )
    assert (mature.accounts, mature.mrr) == (3, pytest.approx(150 + 120 + 90))  # a1 a3 b1
    assert (established.accounts, established.mrr) == (1, pytest.approx(40))  # b2, won back
    assert (onboarding.accounts, onboarding.mrr) == (2, pytest.approx(30))  # d1 d2
    assert report.stage("churned").accounts == 1
    # entered onboarding: 7 (b2 churned from it); established: 5 (a2 churned from it)
    assert onboarding.churn_rate == pytest.approx(1 / 7)
    assert established.churn_rate == pytest.approx(1 / 5)
    assert mature.churn_rate == 0.0
    assert report.stage("renewal").churn_rate is None  # never entered
    assert report.stage("unqualified").churn_rate is None  # not a customer stage
    assert (mature.nps, mature.nps_respondents) == (pytest.approx(200 / 3), 3)
    assert report.stage("churned").nps == -100.0
    assert report.stage("unqualified").nps == -100.0


def test_events_after_as_of_change_nothing(
    report: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("kpis_past")
    with _project(root, company()) as past:
        assert kpi_report(past, as_of=AS_OF).as_dict() == report.as_dict()


def test_clv_from_scores_when_not_later_than_as_of(lake: Project, report: Any) -> None:
    accounts = lake.warehouse.backend.to_pyarrow(lake.warehouse.table("accounts")).to_pylist()
    by_group = {r["group_ids"][0]: r["account_id"] for r in accounts}
    clv = {"a1": 1000.0, "a2": 0.0, "b1": 600.0, "d1": 300.0, "p1": 5.0}

    def scored(at: dt.datetime) -> pa.Table:
        return pa.table(
            {
                "account_id": [by_group[g] for g in clv],
                "as_of": pa.array([at] * len(clv), pa.timestamp("us", tz="UTC")),
                "clv": list(clv.values()),
            }
        )

    warehouse = lake.warehouse
    try:
        warehouse.replace_table(_SCORES_TABLE, scored(AS_OF))
        found = kpi_report(lake, as_of=AS_OF)
        assert found.cohort("2023-01").mean_clv == pytest.approx(500.0)  # a3 is not scored
        assert found.cohort("2023-02").mean_clv == pytest.approx(600.0)
        assert found.stage("mature").mean_clv == pytest.approx(800.0)  # a1 and b1
        assert found.stage("established").mean_clv == Unavailable(
            "none of these accounts is scored"
        )
        warehouse.replace_table(_SCORES_TABLE, scored(AS_OF + dt.timedelta(days=1)))
        later = kpi_report(lake, as_of=AS_OF).cohort("2023-01").mean_clv
        assert later == Unavailable("the scores are as of 2024-03-02, after --as-of")
    finally:
        warehouse.backend.drop_table(_SCORES_TABLE, force=True)
    # the rest of the report does not depend on the scores
    same = found.as_dict()
    for row in (*same["cohorts"], *same["stages"]):
        row.pop("mean_clv")
        row["unavailable"].pop("mean_clv", None)
    expected = report.as_dict()
    for row in (*expected["cohorts"], *expected["stages"]):
        row.pop("mean_clv")
        row["unavailable"].pop("mean_clv", None)
    assert same == expected


def test_scores_table_name_is_the_models() -> None:
    from tenure.models._score import SCORES_TABLE

    assert _SCORES_TABLE == SCORES_TABLE


def test_as_dict_marks_unavailable(report: Any) -> None:
    young = report.cohort("2024-02")
    assert isinstance(young, CohortKPIs)
    row = young.as_dict()
    assert row["cohort"] == "2024-02-01"
    assert row["grr_12m"] is None
    assert row["unavailable"]["grr_12m"] == "cohort too young: its month 12 ends 2025-03-01"
    assert row["retention"] == [1.0]


def test_cli_json_and_tables(lake: Project) -> None:
    runner = CliRunner()
    args = ["report", "kpis", "-p", str(lake.root), "--as-of", "2024-03-01"]
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert parsed["as_of"] == "2024-03-01T00:00:00+00:00"
    assert [c["cohort"] for c in parsed["cohorts"]] == ["2023-01-01", "2023-02-01", "2024-02-01"]
    assert parsed["cohorts"][0]["nps"] == pytest.approx(25.0)
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = result.stdout
    january = next(line for line in text.splitlines() if "2023-01 " in line)
    assert [cell.strip() for cell in january.split("│")[1:6]][:3] == ["2023-01", "3", "67%"]
    mature = next(line for line in text.splitlines() if " mature " in line)
    assert mature.split("│")[2:7] == [
        " 3        ",
        " 360 ",
        " 0%               ",
        " —   ",
        " +67  ",
    ]
    assert "retention: % active at the end of month" in text
    assert "cohort too young: its month 12 ends 2025-03-01" in text
    assert "no spend data" in text


def test_mrr_at_many_points_agrees_with_mrr_at_one_point(lake: Project) -> None:
    """One expression for hundreds of points (a union of one query per point grew too
    deep to compile on a few years of monthly cohorts), equal to the one-point rule."""
    from tenure.lifecycle._history import account_events, milestone_events
    from tenure.lifecycle._kpis import _mrr_at, fetch_rows, mrr_at_points

    warehouse = lake.warehouse
    settings = lake.config.lifecycle
    events = milestone_events(account_events(warehouse, as_of=AS_OF), settings)
    points = [day("2022-12-01") + dt.timedelta(days=3 * i) for i in range(300)]
    many = fetch_rows(warehouse.backend, mrr_at_points(events, settings, points))
    by_point: dict[dt.datetime, dict[str, float]] = {}
    for row in many:
        by_point.setdefault(row["point"], {})[row["account_id"]] = float(row["mrr"])
    for at in (points[40], points[150], points[299]):
        one = fetch_rows(warehouse.backend, _mrr_at(events, settings, at))
        assert by_point.get(at, {}) == {r["account_id"]: float(r["mrr"]) for r in one}
    assert any(by_point.values())


# ---------------------------------------------------------------- CAC and CAC payback
# New customers and MRR at the end of month 0 (see test_logo_and_revenue_churn):
# 2023-01: 3 accounts, 100 + 50 + 200 = 350; 2023-02: 2 accounts, 80 (b2 churned in
# month 0); 2024-02: 2 accounts, 30 (d2 is CRM-only: a customer without MRR).
SPEND = (
    "month,amount,channel\n"
    "2023-01,600,paid\n"
    "2023-01-20,100,events\n"  # a date means its month; a month's rows add up
    "\n"
    "2023-02,0,paid\n"
    "2023-03,50,paid\n"  # nobody signed up in March
    "2024-02,90,paid\n"
)


def spend_file(path: Path, text: str = SPEND) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_cac_and_payback_from_the_months_spend(lake: Project, tmp_path: Path) -> None:
    spend = read_spend(spend_file(tmp_path / "spend.csv"), root=tmp_path)
    assert spend.by_month == {
        dt.date(2023, 1, 1): 700.0,
        dt.date(2023, 2, 1): 0.0,
        dt.date(2023, 3, 1): 50.0,
        dt.date(2024, 2, 1): 90.0,
    }
    found = kpi_report(lake, as_of=AS_OF, spend=spend)
    jan, feb, young = (found.cohort(m) for m in ("2023-01", "2023-02", "2024-02"))
    assert jan.cac == pytest.approx(700 / 3)
    assert jan.cac_payback_months == pytest.approx((700 / 3) / (350 / 3))  # 2.0
    assert (feb.cac, feb.cac_payback_months) == (0.0, 0.0)  # nothing spent: nothing to pay back
    assert young.cac == pytest.approx(90 / 2)
    assert young.cac_payback_months == pytest.approx((90 / 2) / (30 / 2))  # 3.0
    # blended: all spend of the three cohorts over their customers and month-0 MRR
    assert found.cac == pytest.approx(790 / 7)
    assert found.cac_payback_months == pytest.approx(790 / 460)
    assert "spend in 2023-03 has no signup cohort, so it is in no CAC" in found.notes
    # nothing else in the report depends on spend
    expected = report_without_cac(kpi_report(lake, as_of=AS_OF))
    expected["notes"].append(found.notes[-1])
    assert report_without_cac(found) == expected


def report_without_cac(report: Any) -> dict[str, Any]:
    plain = report.as_dict()
    for key in ("cac", "cac_payback_months", "unavailable"):
        plain.pop(key)
    for row in plain["cohorts"]:
        for key in ("cac", "cac_payback_months"):
            row.pop(key)
            row["unavailable"].pop(key, None)
    return plain


def test_a_month_without_spend_is_unavailable(lake: Project, tmp_path: Path) -> None:
    text = "month,amount\n2023-01,700\n"
    found = kpi_report(
        lake, as_of=AS_OF, spend=read_spend(spend_file(tmp_path / "s.csv", text), root=tmp_path)
    )
    jan, feb = found.cohort("2023-01"), found.cohort("2023-02")
    assert jan.cac_payback_months == pytest.approx(2.0)
    missing = Unavailable("no spend row for 2023-02 in the spend data")
    assert (feb.cac, feb.cac_payback_months) == (missing, missing)
    row = feb.as_dict()
    assert (row["cac"], row["unavailable"]["cac"]) == (None, missing.reason)
    assert found.cac == pytest.approx(700 / 3)  # the blend is of the cohorts with spend
    assert found.as_dict()["cac_payback_months"] == pytest.approx(2.0)


def test_gross_margin_and_spend_from_the_project_config(lake: Project) -> None:
    """measure.spend: a glob relative to the project, its files adding up; a 50 %
    gross margin halves the MRR that pays CAC back, so payback takes twice as long."""
    spend_file(lake.root / "finance" / "paid.csv", "month,amount\n2023-01,600\n2024-02,90\n")
    spend_file(lake.root / "finance" / "events.csv", "month,amount\n2023-01,100\n")
    measure = lake.config.measure.model_copy(update={"spend": "finance/*.csv", "gross_margin": 0.5})
    config = lake.config.model_copy(update={"measure": measure})
    with Project(lake.root, config) as halved:
        found = kpi_report(halved, as_of=AS_OF)
    jan, young = found.cohort("2023-01"), found.cohort("2024-02")
    assert jan.cac == pytest.approx(700 / 3)
    assert jan.cac_payback_months == pytest.approx(2 * 2.0)
    assert young.cac_payback_months == pytest.approx(2 * 3.0)
    assert found.cac_payback_months == pytest.approx(790 / (380 * 0.5))  # no spend row for 2023-02


def test_cac_is_unavailable_until_the_signup_month_ends_and_without_mrr() -> None:
    january = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    spend = MonthlySpend({dt.date(2024, 1, 1): 100.0})
    open_month = _Acquisition(spend, 1.0, day("2024-01-31"))
    assert open_month.cohort(january, 4, None) == (
        Unavailable("the signup month has not ended"),
        Unavailable("the signup month has not ended"),
    )
    assert open_month.blended_cac() == Unavailable(
        "no cohort with a spend row whose signup month has ended"
    )
    ended = _Acquisition(spend, 1.0, day("2024-02-01"))
    # four new customers, none paying at month 0's end (CRM-only deals, or churned)
    cac, payback = ended.cohort(january, 4, None)
    assert (cac, payback) == (25.0, Unavailable("no MRR at the end of the signup month"))
    assert ended.blended_payback() == payback


def test_cli_shows_payback_and_spend_overrides_the_config(lake: Project, tmp_path: Path) -> None:
    config_file = lake.root / CONFIG_FILENAME
    original = config_file.read_text(encoding="utf-8")
    configured = spend_file(tmp_path / "configured.csv", "month,amount\n2023-01,350\n")
    given = spend_file(tmp_path / "given.csv", "month,amount\n2023-01,1050\n")
    runner = CliRunner()
    args = ["report", "kpis", "-p", str(lake.root), "--as-of", "2024-03-01"]

    def january_payback(*extra: str) -> tuple[str, str]:
        result = runner.invoke(app, [*args, *extra], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        row = next(line for line in result.stdout.splitlines() if "│ 2023-01 " in line)
        blended = next(line for line in result.stdout.splitlines() if "blended" in line)
        return row.split("│")[-2].strip(), blended

    try:
        config_file.write_text(
            original.replace("  # spend: finance/marketing_spend.csv", f"  spend: {configured}"),
            encoding="utf-8",
        )
        assert january_payback() == (
            "1.0",  # 350 / 3 per customer over 350 / 3 of MRR
            "blended over 1 cohort with spend: CAC 117, payback 1.0 months",
        )
        assert january_payback("--spend", str(given)) == (
            "3.0",
            "blended over 1 cohort with spend: CAC 350, payback 3.0 months",
        )
        result = runner.invoke(app, [*args, "--spend", str(given), "--json"])
        parsed = json.loads(result.stdout)
        assert (parsed["cac"], parsed["cac_payback_months"]) == (350.0, 3.0)
        assert parsed["cohorts"][0]["cac"] == 350.0
        assert parsed["cohorts"][1]["unavailable"]["cac_payback_months"] == (
            "no spend row for 2023-02 in the spend data"
        )
        bad = spend_file(tmp_path / "bad.csv", "month,amount\n2023-01,-5\n")
        result = runner.invoke(app, [*args, "--spend", str(bad)])
        assert result.exit_code == 1
        assert f"{bad}: 1 problem" in result.stderr
        assert "line 2, column amount: a non-negative amount" in result.stderr
        assert "Traceback" not in result.output
    finally:
        config_file.write_text(original, encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "date,amount\n2024-01,5\n",
            "line 1, column month: a column named month (YYYY-MM) in the header "
            "(got 'date,amount')",
        ),
        (
            "\nmonth,cost\n2024-01,5\n",
            "line 2, column amount: a column named amount (a non-negative number) in the header "
            "(got 'month,cost')",
        ),
        (
            "month,amount\n2024-01,5\n\n2024-13,5\n",
            "line 4, column month: a month as YYYY-MM, or a date as YYYY-MM-DD (got '2024-13')",
        ),
        (
            "month,amount\n2024-01,5\n2024-02,-20\n",
            "line 3, column amount: a non-negative amount (spend, not refunds) (got '-20')",
        ),
        (
            'month,amount\n2024-01,"$1,200"\n',
            "line 2, column amount: a number such as 1250.50 (no currency sign or thousands "
            "separator) (got '$1,200')",
        ),
        (
            "month,amount,channel\n2024-01,5\n",
            "line 2: 3 values, one per column of the header (month, amount, channel) (got 2)",
        ),
        ("", "line 1: a CSV file with a header row (Empty CSV file)"),
    ],
    ids=["no-month", "no-amount", "bad-month", "negative", "not-a-number", "uneven", "empty"],
)
def test_a_malformed_spend_file_names_file_line_and_column(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = spend_file(tmp_path / "spend.csv", text)
    with pytest.raises(ConfigError) as info:
        read_spend("spend.csv", root=tmp_path)
    assert str(info.value) == f"{path}: 1 problem\n  - {problem}"


def test_one_bad_file_of_a_glob_stops_them_all(tmp_path: Path) -> None:
    spend_file(tmp_path / "a.csv", "month,amount\n2024-01,5\n")
    bad = spend_file(tmp_path / "b.csv", "month,amount\n2024-01,5\n2024-02,soon\n2024-03,x\n")
    with pytest.raises(ConfigError) as info:
        read_spend(tmp_path / "*.csv", root=Path("/elsewhere"))
    assert [p.key for p in info.value.problems] == [
        "line 3, column amount",
        "line 4, column amount",
    ]
    assert info.value.source == str(bad)
    with pytest.raises(ConfigError, match="--spend: an existing CSV file, or a glob matching"):
        read_spend("none/*.csv", root=tmp_path, origin="--spend")
