"""The simulator: determinism, ingestible output, known malformed records, honest truth."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tenure.collect import ingest
from tenure.errors import ConfigError
from tenure.project import init_project
from tenure.simulate import (
    EventFormat,
    SimulationConfig,
    SimulationReport,
    load_simulation_config,
    simulate,
)

SMALL = SimulationConfig(accounts=200, months=12)
AFTER = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)  # SMALL's window ends 2025-01-01


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ingest(tmp_path: Path, out: Path) -> tuple[int, int, dict[str, int]]:
    project = init_project(tmp_path / "proj", clock=lambda: AFTER)
    try:
        report = ingest(project, [out / "events", out / "exports"])
    finally:
        project.close()
    return report.loaded, report.quarantined, report.quarantined_by_reason


def test_public_api_is_pinned() -> None:
    import tenure.simulate as module

    assert sorted(module.__all__) == [
        "AcquisitionParams", "BillingParams", "ChurnParams", "EventFormat", "ExpansionParams",
        "HealthParams", "SimulationConfig", "SimulationProgress", "SimulationReport",
        "SupportParams", "SurveyParams", "UsageParams", "load_simulation_config",
        "parse_simulation_config", "simulate",
    ]  # fmt: skip


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    simulate(tmp_path / "a", SMALL, seed=7)
    simulate(tmp_path / "b", SMALL, seed=7)
    simulate(tmp_path / "c", SMALL, seed=8)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)
    assert "truth/account_months.parquet" in a
    assert "exports/stripe/invoices.csv" in a


def test_output_loads_with_zero_quarantine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ticks: list[tuple[int, int]] = []
    report = simulate(out, SMALL, seed=1, progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1] == (12, 12)
    assert len(ticks) == 12
    assert report.end == dt.date(2025, 1, 1)
    loaded, quarantined, reasons = _ingest(tmp_path, out)
    assert quarantined == 0, reasons
    csv_rows = report.invoices + report.tickets
    assert loaded > report.events + csv_rows  # exports add more than one event per row at times
    assert not list(out.glob("events/*truth*"))


@pytest.mark.parametrize("fmt", [EventFormat.PARQUET, EventFormat.JSONL])
def test_malformed_records_all_end_in_quarantine(tmp_path: Path, fmt: EventFormat) -> None:
    config = SMALL.model_copy(update={"months": 4, "malformed_fraction": 0.01, "format": fmt})
    out = tmp_path / "out"
    report = simulate(out, config, seed=2)
    assert report.malformed > 20
    assert len(list((out / "events").glob(f"*.{fmt.value}"))) == 4
    _, quarantined, reasons = _ingest(tmp_path, out)
    assert quarantined == report.malformed
    expected = {"missing_identity", "malformed_json" if fmt is EventFormat.JSONL else "wrong_type"}
    assert expected <= set(reasons)
    if fmt is EventFormat.JSONL:
        assert "bad_timestamp" in reasons


def test_truth_hazard_ranks_who_churns(tmp_path: Path) -> None:
    simulate(tmp_path / "out", SimulationConfig(accounts=1500, months=12), seed=3)
    truth = pq.read_table(tmp_path / "out" / "truth" / "account_months.parquet").to_pandas()
    assert truth["hazard"].between(0, 1).all()
    quintile = truth["hazard"].rank(pct=True, method="first")
    top = truth.loc[quintile > 0.8, "churned"].mean()
    bottom = truth.loc[quintile <= 0.2, "churned"].mean()
    assert top > 4 * bottom
    # realized churn matches the stated hazard on average (calibrated truth)
    assert truth["churned"].mean() == pytest.approx(truth["hazard"].mean(), rel=0.15)
    accounts = pq.read_table(tmp_path / "out" / "truth" / "accounts.parquet").to_pandas()
    assert len(accounts) == 1500
    assert (accounts["realized_clv_discounted"] <= accounts["realized_revenue"] + 1e-6).all()
    assert (accounts.loc[accounts["churned"], "mrr"] == 0).all()


def test_defaults_are_calibrated(tmp_path: Path) -> None:
    report: SimulationReport = simulate(
        tmp_path / "out", SimulationConfig(accounts=2000, months=12), seed=11
    )
    assert 0.005 <= report.monthly_logo_churn <= 0.04
    assert 0.10 <= report.win_rate <= 0.35
    assert 0.8 <= report.nrr <= 1.3
    assert report.accounts == 2000


def test_yaml_overrides_and_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "sim.yaml"
    good.write_text("months: 6\nchurn:\n  intercept: -5.5\n", encoding="utf-8")
    config = load_simulation_config(good, accounts=50)
    assert (config.months, config.accounts, config.churn.intercept) == (6, 50, -5.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("churn:\n  intercpt: 1\nbilling:\n  failure_rate: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_simulation_config(bad)
    keys = [p.key for p in caught.value.problems]
    assert keys == ["billing.failure_rate", "churn.intercpt"] or sorted(keys) == sorted(
        ["billing.failure_rate", "churn.intercpt"]
    )
    assert "unknown key" in str(caught.value)
    with pytest.raises(ConfigError, match="start must be the first day"):
        load_simulation_config(None, start=dt.date(2024, 1, 5))


def test_seeded_world_draws_do_not_depend_on_malformed_fraction(tmp_path: Path) -> None:
    clean = simulate(tmp_path / "a", SMALL.model_copy(update={"months": 3}), seed=5)
    noisy = simulate(
        tmp_path / "b", SMALL.model_copy(update={"months": 3, "malformed_fraction": 0.05}), seed=5
    )
    assert clean.events == noisy.events
    assert clean.churned == noisy.churned
    a = pq.read_table(tmp_path / "a" / "truth" / "account_months.parquet")
    b = pq.read_table(tmp_path / "b" / "truth" / "account_months.parquet")
    assert a.equals(b)
    assert np.isfinite(clean.mrr_end)
