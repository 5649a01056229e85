"""Scheduled retraining: due by cadence or by drift of the production model's inputs."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tenure.cli import app
from tenure.measure.feedback import population_stability, retrain, retrain_check
from tenure.models.registry import registry_for
from tenure.project import Project

TRAINED = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def test_psi_by_hand() -> None:
    reference = np.arange(100.0)  # ten deciles of 10 %
    assert population_stability(reference, reference) == pytest.approx(0.0)
    # everything moves into the first decile; the empty bins count as 1e-4
    moved = np.full(50, 3.0)
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert population_stability(reference, moved) == pytest.approx(expected)
    # missing values are a bin of their own
    half_missing = np.r_[np.arange(0.0, 100.0, 2.0), np.full(50, np.nan)]
    psi = population_stability(reference, half_missing)
    by_hand = 10 * (0.05 - 0.1) * math.log(0.05 / 0.1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi == pytest.approx(by_hand)
    assert math.isnan(population_stability([], [1.0]))


def _snapshot(project: Project, day: dt.date, logins: np.ndarray, seats: np.ndarray) -> None:
    folder = project.lake.root / "features" / "account" / f"as_of={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "entity_id": [f"a{n}" for n in range(len(logins))],
                "logins_30d": logins,
                "seats": seats,
                "not_an_input": np.zeros(len(logins)),
            }
        ),
        folder / "features.parquet",
    )


def _production(project: Project, trained: dt.datetime) -> str:
    registry = registry_for(project)
    version = registry.register(
        "churn",
        {"stand-in": "a churn model"},
        training_end=trained,
        feature_hashes={"logins_30d": "h1", "seats": "h2"},
        actor="test",
    )
    return registry.promote("churn", version.version, actor="test").label


def test_due_by_cadence_and_by_drift(project: Project) -> None:
    rng = np.random.default_rng(0)
    assert retrain_check(project, as_of=TRAINED).reasons == ("no production churn model",)
    label = _production(project, TRAINED)
    _snapshot(project, dt.date(2024, 4, 30), rng.poisson(20, 2000), rng.integers(1, 50, 2000))
    # a fortnight later, the same populations: not due
    _snapshot(project, dt.date(2024, 5, 15), rng.poisson(20, 2000), rng.integers(1, 50, 2000))
    check = retrain_check(project, as_of=dt.datetime(2024, 5, 15, 6, tzinfo=dt.UTC))
    assert not check.due
    assert check.model == label
    assert check.reference == dt.date(2024, 4, 30)
    assert check.current == dt.date(2024, 5, 15)
    assert {d.feature for d in check.drift} == {"logins_30d", "seats"}  # the model's inputs
    assert max(d.psi for d in check.drift) < 0.1
    # usage collapses: logins drift, seats do not
    _snapshot(project, dt.date(2024, 5, 20), rng.poisson(5, 2000), rng.integers(1, 50, 2000))
    check = retrain_check(project, as_of=dt.datetime(2024, 5, 20, tzinfo=dt.UTC))
    assert check.due
    assert check.drift[0].feature == "logins_30d"
    assert check.drift[0].psi > 1
    assert len(check.reasons) == 1
    assert "inputs drifted since 2024-04-30: logins_30d (PSI" in check.reasons[0]
    assert "seats" not in check.reasons[0]
    # no drift threshold, a cadence: due only once the data is older than it
    young = retrain_check(project, as_of=dt.datetime(2024, 5, 20, tzinfo=dt.UTC), drift=None)
    assert not young.due
    old = retrain_check(project, as_of=dt.datetime(2024, 6, 5, tzinfo=dt.UTC), drift=None)
    assert old.due
    assert old.reasons == (
        f"{label} learned from data up to 2024-05-01, 35 days ago (retrain every 30 days)",
    )
    # not due: retrain() trains nothing
    report = retrain(project, as_of=dt.datetime(2024, 5, 15, 6, tzinfo=dt.UTC), actor="test")
    assert report.churn is None
    assert report.uplift is None
    assert [v.label for v in registry_for(project).list("churn")] == [label]


def test_the_cli_says_whether_it_is_due_and_why(project: Project) -> None:
    rng = np.random.default_rng(1)
    _production(project, TRAINED)
    _snapshot(project, dt.date(2024, 4, 30), rng.poisson(20, 500), rng.integers(1, 50, 500))
    _snapshot(project, dt.date(2024, 5, 20), rng.poisson(5, 500), rng.integers(1, 50, 500))
    args = ["retrain", "-p", str(project.root), "--as-of", "2024-05-20T00:00:00Z", "--dry-run"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "retraining is due as of 2024-05-20" in result.stdout
    assert "logins_30d" in result.stdout
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    found = json.loads(result.stdout)
    assert found["check"]["due"] is True
    assert found["check"]["drift"][0]["feature"] == "logins_30d"
    assert "churn" not in found  # a dry run trains nothing
