"""End to end: the demo loads a company (the bundled sample, or a simulated one) and stitches it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenure.cli import app
from tenure.demo import run_demo
from tenure.features import project_features
from tenure.identity import find_profile
from tenure.lifecycle import Unavailable
from tenure.measure._kpis import kpi_report
from tenure.project import Project
from tenure.simulate import SimulationConfig
from tenure.store import list_quarantined

from .conftest import fixed_clock

# the sample runs to mid-2024; the demo is run as of the start of 2025
AFTER_SAMPLE = fixed_clock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "company"
    run_demo(root, sample=True, clock=AFTER_SAMPLE)
    return root


def test_demo_loads_every_source_and_quarantines_the_broken_records(demo: Path) -> None:
    with Project.open(demo, clock=AFTER_SAMPLE) as project:
        with project.store.connect() as connection:
            quarantined = list_quarantined(connection)
        assert sorted((Path(q.source_file).name, q.reason_code) for q in quarantined) == [
            ("events.jsonl", "bad_timestamp"),
            ("events.jsonl", "malformed_json"),
            ("events.jsonl", "wrong_type"),
            ("zendesk_tickets.csv", "bad_timestamp"),
        ]
        sources = project.warehouse.backend.to_pyarrow(
            project.warehouse.events().group_by("source").aggregate(n=lambda t: t.count())
        ).to_pydict()
        assert set(sources["source"]) == {"segment", "stripe", "hubspot", "zendesk"}
        assert project.index.snapshot_known("snapshot:subscriptions", "x") is False
        assert "subscriptions" in project.lake.snapshot_entities()


def test_demo_profiles_join_product_crm_billing_and_support(demo: Path) -> None:
    with Project.open(demo, clock=AFTER_SAMPLE) as project:
        ada = find_profile(project.warehouse, "ada@acme.example")
        # the email change keeps one person; CRM and billing ids join by email
        assert ada.identifiers["user_id"] == ("usr_0001",)
        assert set(ada.identifiers["email"]) == {"ada@acme.example", "ada.lovelace@acme.example"}
        assert "stripe_customer_id:cus_acme" in ada.identifiers["external_id"]
        assert "hubspot_contact_id:100" in ada.identifiers["external_id"]
        assert ada.account is not None
        assert ada.account.group_ids == ("acct_acme",)
        # the user who moved from Globex to Initech
        dennis = find_profile(project.warehouse, "usr_0007")
        assert dennis.account is not None
        assert dennis.account.group_ids == ("acct_initech",)
        assert [m.account_id for m in dennis.account_history][-1] == dennis.account.account_id
        # the role address shared by two Hooli users merges no one
        first, second = (find_profile(project.warehouse, u) for u in ("usr_0019", "usr_0020"))
        assert first.profile_id != second.profile_id
        assert any(
            link.status == "refused" and "info@hooli.example" in link.right_id + link.left_id
            for link in first.links
        )


def test_demo_again_adds_nothing(demo: Path) -> None:
    report = run_demo(demo, sample=True, clock=AFTER_SAMPLE)
    assert report.ingest.loaded == 0
    assert report.ingest.quarantined == 0
    assert report.ingest.duplicates == 5529


def test_cli_demo_status_and_profile(demo: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["status", "-p", str(demo), "--json"], catch_exceptions=False)
    status = json.loads(result.stdout)
    assert status["warehouse_tables"]["profiles"] == 35
    assert status["warehouse_tables"]["accounts"] == 8
    assert status["lake_events"] == 5529
    assert status["open_quarantine"] == {"bad_timestamp": 2, "malformed_json": 1, "wrong_type": 1}
    result = runner.invoke(app, ["profile", "usr_0001", "-p", str(demo)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "ada.lovelace@acme.example" in result.stdout
    assert "Acme Corp" in result.stdout
    result = runner.invoke(app, ["profile", "nobody@x.io", "-p", str(demo)])
    assert result.exit_code == 1
    assert "no profile has the identifier 'nobody@x.io'" in result.stderr


def test_simulated_demo_loads_cleanly_and_is_repeatable(tmp_path: Path) -> None:
    root = tmp_path / "sim-demo"
    first = run_demo(root, accounts=120, months=6, seed=3)
    assert first.simulation is not None
    assert first.ingest.quarantined == 0
    segment = sum(i.loaded for i in first.ingest.inputs if i.format == "segment-parquet")
    assert segment == first.simulation.events
    assert first.stitch.profiles > first.simulation.accounts  # several users per account
    assert first.example_profile.startswith("u")
    # the truth stays out of the lake
    assert (root / "simulation" / "truth").is_dir()
    with Project.open(root) as project:
        sources = project.warehouse.backend.to_pyarrow(
            project.warehouse.events().select("source").distinct()
        ).column("source")
        assert set(sources.to_pylist()) == {"segment", "stripe", "zendesk"}
        assert find_profile(project.warehouse, first.example_profile).account is not None
        # the project reads the simulated marketing spend: CAC payback for the window's
        # cohorts, none for the customers who signed up before it
        assert project.config.measure.spend == "simulation/finance/marketing_spend.csv"
        end = dt.datetime.combine(first.simulation.end, dt.time(), tzinfo=dt.UTC)
        kpis = kpi_report(project, as_of=end)
        window = [c for c in kpis.cohorts if c.cohort >= first.simulation.start]
        assert len(window) == 6
        assert all(c.cac > 0 and c.cac_payback_months > 0 for c in window)  # type: ignore[operator]
        earlier = kpis.cohorts[0]  # an initial customer's
        assert earlier.cohort < first.simulation.start
        assert earlier.cac == Unavailable(
            f"no spend row for {earlier.cohort:%Y-%m} in the spend data"
        )
        assert isinstance(kpis.cac_payback_months, float)
        # and names the simulated onboarding milestones: a milestones_done feature
        milestones = list(SimulationConfig().onboarding.milestones)
        assert project.config.lifecycle.onboarding_milestones == milestones
        assert project_features(project).get("milestones_done").events == milestones
    again = run_demo(root, accounts=120, months=6, seed=3)
    assert (again.ingest.loaded, again.ingest.duplicates) == (0, first.ingest.loaded)
