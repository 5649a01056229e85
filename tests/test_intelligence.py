"""End to end on a simulated company: build, train, score, and the model registry round trip."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func
from typer.testing import CliRunner

from tenure.cli import app
from tenure.demo import DemoResult, run_demo
from tenure.models.pipeline import SCORES_TABLE, build, score, train
from tenure.models.registry import ModelStatus, registry_for
from tenure.project import Project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoResult]:
    root = tmp_path_factory.mktemp("intel") / "company"
    return root, run_demo(root, accounts=400, months=15, seed=5)


def _as_of(result: DemoResult) -> dt.datetime:
    assert result.build is not None
    return result.build.as_of


def _scores(project: Project) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = project.warehouse.table(SCORES_TABLE).to_pyarrow().to_pylist()
    return rows


def test_the_demo_trains_scores_and_explains(company: tuple[Path, DemoResult]) -> None:
    root, result = company
    assert result.models_skipped is None
    assert result.training is not None
    assert result.scoring is not None
    metrics = result.training.validation
    assert 0.0 <= metrics.ece <= 1.0
    assert metrics.n > 0
    trained = result.training
    assert trained.promoted[:3] == ["churn", "churn_survival", "retention_sbg"]
    every = {
        "expansion",
        "promoter",
        "clv_bgnbd",
        "clv_gammagamma",
        "next_product",
        "opportunity_win",
        "lead_conversion",
    }
    assert set(trained.promoted[3:]) | set(trained.skipped) == every
    # a 400-account company pays monthly invoices: the purchase models can be fitted
    assert {"clv_bgnbd", "clv_gammagamma", "expansion", "next_product"} <= set(trained.promoted)
    risks = [r.churn_probability for r in result.at_risk]
    assert len(risks) == 10
    assert risks == sorted(risks, reverse=True)
    with Project.open(root) as project:
        rows = _scores(project)
        picks = project.warehouse.table("recommendations").to_pyarrow().to_pylist()
    assert len(rows) == result.scoring.rows > 50
    for row in rows:
        assert 0.0 <= float(row["churn_probability"]) <= 1.0  # type: ignore[arg-type]
        assert 0.0 <= float(row["renewal_probability"]) <= 1.0  # type: ignore[arg-type]
        assert float(row["clv"]) >= 0.0  # type: ignore[arg-type]
        assert row["churn_model"] == "churn v1"
        assert row["survival_model"] == "churn_survival v1"
        for column in ("expansion_probability", "probability_alive"):
            value = row[column]
            assert value is None or 0.0 <= float(value) <= 1.0  # type: ignore[arg-type]
        assert json.loads(str(row["other_models"]))["clv_bgnbd"] == "clv_bgnbd v1"
        reasons = json.loads(str(row["churn_reasons"]))
        assert 1 <= len(reasons) <= 3
        assert all(r["contribution"] > 0 and r["text"] for r in reasons)
    assert picks
    assert {p["rank"] for p in picks} <= {1, 2, 3}
    assert all(p["feature"] != p["because"] for p in picks)


def test_the_demo_decides_and_delivers_to_its_local_sinks(
    company: tuple[Path, DemoResult],
) -> None:
    root, result = company
    delivery = result.delivery
    assert delivery is not None
    assert result.scoring is not None
    assert delivery.published == result.scoring.rows
    by_status = delivery.decisions.by_status
    assert by_status.get("queued", 0) > 0
    # every queued email reached the SMTP server and every CSM task the CRM sink, once
    sent = {m.channel: 0 for m in delivery.sent}
    for message in delivery.sent:
        sent[message.channel] += 1
    assert delivery.emails_received == sent.get("email", 0) > 0
    assert delivery.tasks_received == sent.get("csm_task", 0)
    assert delivery.delivered.sent == len(delivery.sent)
    assert len({m.idempotency_key for m in delivery.sent}) == len(delivery.sent)
    with Project.open(root) as project, project.store.connect() as connection:
        from sqlalchemy import select

        from tenure.decide import explain_decision
        from tenure.store._tables import decisions, outbox

        counted = connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
        statuses = {str(status): int(n) for status, n in counted}
        waiting = connection.execute(
            select(outbox.c.not_before).where(outbox.c.status == "queued")
        ).scalars()
        early = [at for at in waiting if at <= delivery.decisions.at]
        first = connection.execute(select(decisions.c.id).limit(1)).scalar_one()
        text = explain_decision(connection, first)
    # only actions deferred by quiet hours still wait; nothing failed
    assert set(statuses) <= {"sent", "queued"}
    assert statuses.get("queued", 0) >= by_status.get("deferred", 0)
    assert early == []
    assert "Guardrails: consent" in text


def test_a_candidate_shadows_then_scores_then_rolls_back(
    company: tuple[Path, DemoResult],
) -> None:
    root, result = company
    as_of = _as_of(result)
    with Project.open(root) as project:
        registry = registry_for(project)
        second = train(project, as_of=as_of, actor="test")
        candidate = second.versions["churn"]
        assert (candidate.version, candidate.status) == (2, ModelStatus.CANDIDATE)
        assert second.promoted == []

        registry.promote("churn", 2, to=ModelStatus.SHADOW, actor="test")
        shadowed = score(project, as_of=as_of)
        assert {r["churn_model"] for r in _scores(project)} == {"churn v1"}
        agreement = shadowed.shadows["churn v2"]
        assert agreement.n == shadowed.rows
        assert -1.0 <= agreement.spearman <= 1.0
        shadow_rows = project.warehouse.table("shadow_scores").to_pyarrow().to_pylist()
        assert {r["churn_model"] for r in shadow_rows} == {"churn v2"}

        registry.promote("churn", 2, to=ModelStatus.PRODUCTION, actor="test")
        score(project, as_of=as_of)
        assert {r["churn_model"] for r in _scores(project)} == {"churn v2"}

        registry.rollback("churn", actor="test")
        score(project, as_of=as_of)
        assert {r["churn_model"] for r in _scores(project)} == {"churn v1"}
        assert registry.get("churn", 2).status is ModelStatus.RETIRED


def test_commands_build_score_features_and_models(company: tuple[Path, DemoResult]) -> None:
    root, result = company
    runner = CliRunner()
    as_of = _as_of(result).date().isoformat()
    built = runner.invoke(app, ["build", "-p", str(root), "--as-of", as_of, "--json"])
    assert built.exit_code == 0, built.output
    document = json.loads(built.stdout)
    assert document["features"][0]["rows"] > 0
    assert sum(document["stages"]["counts"].values()) == document["stages"]["accounts"]
    assert sum(document["health"]["bands"].values()) <= document["health"]["accounts"]
    scored = runner.invoke(
        app, ["score", "-p", str(root), "--as-of", as_of, "--json", "--top", "3"]
    )
    assert scored.exit_code == 0, scored.output
    document = json.loads(scored.stdout)
    assert len(document["at_risk"]) == 3
    assert all(r["reasons"] for r in document["at_risk"])
    listed = runner.invoke(app, ["models", "list", "-p", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    names = {v["name"] for v in json.loads(listed.stdout)}
    assert {"churn", "churn_survival", "retention_sbg", "clv_bgnbd"} <= names
    features = runner.invoke(app, ["features", "-p", str(root), "--json"])
    assert "logins_30d" in {f["name"] for f in json.loads(features.stdout)}
    staged = runner.invoke(app, ["stages", "-p", str(root), "--as-of", as_of, "--json"])
    assert staged.exit_code == 0, staged.output
    report = json.loads(staged.stdout)
    assert sum(s["current"] for s in report["stages"]) == report["accounts"]
    assert 0 < report["sales"]["win_rate"] < 1
    human = runner.invoke(app, ["stages", "-p", str(root), "--as-of", as_of])
    assert "renewal rate" in human.stdout
    bad = runner.invoke(app, ["score", "-p", str(root), "--as-of", "June"])
    assert bad.exit_code == 1
    assert "--as-of 'June' is not an ISO date or time" in bad.stderr


def test_scoring_reuses_the_built_features_with_the_same_result(
    company: tuple[Path, DemoResult],
) -> None:
    root, result = company
    as_of = _as_of(result)
    with Project.open(root) as project:
        build(project, as_of=as_of)
        score(project, as_of=as_of)
        reused = {r["account_id"]: r["churn_probability"] for r in _scores(project)}
        project.warehouse.backend.drop_table("features_account")
        score(project, as_of=as_of)
        recomputed = {r["account_id"]: r["churn_probability"] for r in _scores(project)}
    assert reused.keys() == recomputed.keys()
    for account, probability in reused.items():
        assert recomputed[account] == pytest.approx(probability, abs=1e-12)
