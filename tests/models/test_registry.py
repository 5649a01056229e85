from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from tenure._cli_models import models_app
from tenure.errors import ModelError, NotFoundError, StoreError
from tenure.models.registry import (
    ModelRegistry,
    ModelStatus,
    registry_for,
    shadow_agreement,
)
from tenure.project import Project
from tenure.store import read_audit, verify_audit_chain
from tenure.store._tables import model_versions

from ..conftest import FIXED_NOW

rng = np.random.default_rng(7)
X = rng.normal(size=(200, 3))
y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=200) > 0).astype(int)


def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c).fit(X, y)


@pytest.fixture
def registry(project: Project) -> ModelRegistry:
    return registry_for(project)


def _two_versions(registry: ModelRegistry) -> None:
    registry.register("churn", _model(1.0), metrics={"auc": 0.81}, actor="ann")
    registry.register("churn", _model(0.01), metrics={"auc": 0.83}, actor="ann")


def test_register_stores_artifact_and_row(registry: ModelRegistry, project: Project) -> None:
    model = _model(1.0)
    v1 = registry.register(
        "churn",
        model,
        training_start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        training_end=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        feature_hashes={"logins_30d": "ab12"},
        metrics={"auc": 0.81, "n": 200},
        params={"C": 1.0},
        description="first churn model",
        actor="ann",
    )
    v2 = registry.register("churn", _model(0.01))
    other = registry.register("clv", _model(1.0))

    assert [(v.name, v.version, v.status) for v in registry.list()] == [
        ("churn", 1, ModelStatus.CANDIDATE),
        ("churn", 2, ModelStatus.CANDIDATE),
        ("clv", 1, ModelStatus.CANDIDATE),
    ]
    assert [v.version for v in registry.list("churn")] == [1, 2]
    assert registry.get("churn", 1) == v1
    assert (v1.created_at, v1.created_by, v2.created_by) == (FIXED_NOW, "ann", "system")
    assert v1.training_end == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    assert (v1.metrics, v1.params, v1.feature_hashes) == (
        {"auc": 0.81, "n": 200},
        {"C": 1.0},
        {"logins_30d": "ab12"},
    )
    assert v1.description == "first churn model"

    path = project.root / "models" / "churn" / f"1-{v1.artifact_hash[:12]}.joblib"
    assert registry.artifact_file(v1) == path
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == v1.artifact_hash
    assert len(data) == v1.artifact_bytes
    # the same model object gives the same bytes, so a second name shares the hash
    assert other.artifact_hash == v1.artifact_hash
    assert not list(path.parent.glob("*.tmp"))

    loaded = registry.load(v1)
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert registry.load(v1) is loaded  # cached by hash


def test_register_refuses_bad_input(registry: ModelRegistry) -> None:
    with pytest.raises(ModelError, match=r"model name '\.\./x' is not allowed"):
        registry.register("../x", _model(1.0))
    with pytest.raises(ModelError, match="metrics must be JSON-serialisable"):
        registry.register("churn", _model(1.0), metrics={"when": object()})
    with pytest.raises(ModelError, match="training_start 2024-02-01T00:00:00\\+00:00 is after"):
        registry.register(
            "churn",
            _model(1.0),
            training_start=dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
            training_end=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        )
    assert registry.list() == []


def test_concurrent_registrations_get_distinct_versions(registry: ModelRegistry) -> None:
    models = [_model(c) for c in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        registered = list(pool.map(lambda m: registry.register("churn", m), models))
    assert sorted(v.version for v in registered) == [1, 2, 3, 4, 5, 6]
    for version in registered:
        assert registry.artifact_file(version).exists()


def test_lifecycle_promote_shadow_production_rollback(
    registry: ModelRegistry, project: Project
) -> None:
    _two_versions(registry)
    assert registry.production("churn") is None

    v1 = registry.promote("churn", 1, to=ModelStatus.PRODUCTION, actor="ann")
    v2 = registry.promote("churn", 2, to=ModelStatus.SHADOW, actor="bob")
    assert (v1.status, v1.promoted_at, v1.previous_production_id) == (
        ModelStatus.PRODUCTION,
        FIXED_NOW,
        None,
    )
    assert v2.status is ModelStatus.SHADOW
    assert registry.production("churn") == v1
    assert registry.shadows("churn") == [v2]
    assert registry.production("clv") is None

    v2 = registry.promote("churn", 2, actor="bob")  # production is the default target
    assert v2.status is ModelStatus.PRODUCTION
    assert v2.previous_production_id == v1.id
    old = registry.get("churn", 1)
    assert (old.status, old.retired_at) == (ModelStatus.RETIRED, FIXED_NOW)
    assert registry.shadows("churn") == []

    restored = registry.rollback("churn", actor="carol")
    assert (restored.version, restored.status, restored.retired_at) == (
        1,
        ModelStatus.PRODUCTION,
        None,
    )
    assert registry.production("churn") == restored
    assert registry.get("churn", 2).status is ModelStatus.RETIRED
    with pytest.raises(ModelError, match="churn v1 is in production but replaced no earlier"):
        registry.rollback("churn", actor="carol")

    assert [
        (e.action, e.from_status, e.to_status, e.actor) for e in registry.history("churn", 2)
    ] == [
        ("register", None, ModelStatus.CANDIDATE, "ann"),
        ("promote", ModelStatus.CANDIDATE, ModelStatus.SHADOW, "bob"),
        ("promote", ModelStatus.SHADOW, ModelStatus.PRODUCTION, "bob"),
        ("rollback", ModelStatus.PRODUCTION, ModelStatus.RETIRED, "carol"),
    ]

    with project.store.connect() as connection:
        assert verify_audit_chain(connection) is None
        entries = [
            (e.action, e.target, e.actor, e.detail.get("from"), e.detail.get("to"))
            for e in read_audit(connection)
        ]
    assert entries == [
        ("model.register", "churn v1", "ann", None, "candidate"),
        ("model.register", "churn v2", "ann", None, "candidate"),
        ("model.promote", "churn v1", "ann", "candidate", "production"),
        ("model.promote", "churn v2", "bob", "candidate", "shadow"),
        ("model.retire", "churn v1", "bob", "production", "retired"),
        ("model.promote", "churn v2", "bob", "shadow", "production"),
        ("model.rollback", "churn v2", "carol", "production", "retired"),
        ("model.rollback", "churn v1", "carol", "retired", "production"),
    ]


def test_the_store_refuses_two_production_versions(
    registry: ModelRegistry, project: Project
) -> None:
    _two_versions(registry)
    registry.promote("churn", 1, actor="ann")
    # even a writer that bypasses the registry cannot serve two versions at once
    with pytest.raises(IntegrityError), project.store.begin() as connection:
        connection.execute(
            update(model_versions)
            .where(model_versions.c.version == 2)
            .values(status=ModelStatus.PRODUCTION.value)
        )
    registry.register("clv", _model(1.0))
    registry.promote("clv", 1, actor="ann")  # one per name, not one overall
    assert [v.version for v in registry.list() if v.status is ModelStatus.PRODUCTION] == [1, 1]


def test_invalid_transitions_name_the_allowed_ones(registry: ModelRegistry) -> None:
    _two_versions(registry)
    registry.promote("churn", 1, actor="ann")
    with pytest.raises(
        ModelError,
        match=r"^cannot move churn v1 from production to shadow; allowed from production: "
        r"retired$",
    ):
        registry.promote("churn", 1, to=ModelStatus.SHADOW, actor="ann")
    registry.retire("churn", 2, actor="ann")
    with pytest.raises(
        ModelError,
        match=r"^cannot move churn v2 from retired to shadow; allowed from retired: "
        r"none \(only a rollback\)$",
    ) as raised:
        registry.promote("churn", 2, to="shadow", actor="ann")
    assert raised.value.hint == "register the model again to get a new candidate version"
    with pytest.raises(ModelError, match=r"^cannot move churn v2 from retired to retired"):
        registry.retire("churn", 2, actor="ann")
    with pytest.raises(
        ModelError, match=r"^promote moves a version to shadow or production, not 'retired'$"
    ):
        registry.promote("churn", 1, to=ModelStatus.RETIRED, actor="ann")
    with pytest.raises(ModelError, match="not 'live'"):
        registry.promote("churn", 1, to="live", actor="ann")
    # nothing changed on the failed attempts
    assert [v.status for v in registry.list("churn")] == [
        ModelStatus.PRODUCTION,
        ModelStatus.RETIRED,
    ]


def test_missing_versions_and_rollbacks(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match=r"^no model 'churn' version 3; no 'churn' at all$"):
        registry.get("churn", 3)
    _two_versions(registry)
    with pytest.raises(
        NotFoundError, match=r"^no model 'churn' version 3; 'churn' has versions 1, 2$"
    ):
        registry.promote("churn", 3, actor="ann")
    with pytest.raises(ModelError, match=r"^'churn' has no production version to roll back$"):
        registry.rollback("churn", actor="ann")


def test_tampered_or_missing_artifact_is_not_unpickled(project: Project) -> None:
    registry = registry_for(project)
    version = registry.register("churn", _model(1.0))
    path = registry.artifact_file(version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(
        StoreError, match=r"has sha256 [0-9a-f]{64}, but [0-9a-f]{64} was"
    ) as raised:
        registry.load(version)
    assert str(path) in str(raised.value)
    assert "restore the file from backup" in (raised.value.hint or "")

    path.unlink()
    with pytest.raises(StoreError, match=f"the artifact of churn v1 is missing: {path}"):
        registry.load(version)


def test_registry_of_a_project_keeps_artifacts_under_models(project: Project) -> None:
    registry = registry_for(project)
    assert registry.artifacts_dir == project.root / "models"
    assert registry.clock() == FIXED_NOW


def test_shadow_agreement() -> None:
    scores = np.linspace(0.0, 1.0, 20)
    same = shadow_agreement(scores, scores)
    assert (same.n, same.spearman, same.mean_abs_diff, same.top_overlap) == (20, 1.0, 0.0, 1.0)

    reverse = shadow_agreement(scores, scores[::-1], top_fraction=0.25)
    assert reverse.spearman == pytest.approx(-1.0)
    assert reverse.top_overlap == 0.0
    assert reverse.mean_abs_diff == pytest.approx(np.mean(np.abs(scores - scores[::-1])))

    noisy = scores + np.where(np.arange(20) % 2 == 0, 0.08, -0.08)
    agreement = shadow_agreement(scores, noisy, top_fraction=0.2)
    assert agreement.spearman == pytest.approx(spearmanr(scores, noisy).statistic)
    assert agreement.mean_abs_diff == pytest.approx(0.08)
    # top 4 of production: rows 16-19; of the shadow: 18, 16, 19, 14 → 3 of 4 shared
    assert agreement.top_overlap == 0.75

    assert math.isnan(shadow_agreement(np.ones(5), scores[:5]).spearman)
    with pytest.raises(ModelError, match=r"of one length; got shapes \(20,\) and \(3,\)"):
        shadow_agreement(scores, scores[:3])
    with pytest.raises(ModelError, match="shadow_scores has 1 missing or infinite values"):
        shadow_agreement(scores[:3], [0.1, np.nan, 0.2])
    with pytest.raises(ModelError, match=r"top_fraction must be in \(0, 1\], got 0"):
        shadow_agreement(scores, scores, top_fraction=0)


runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(models_app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_list_show_promote_rollback(project: Project) -> None:
    _two_versions(registry_for(project))
    where = ["-p", str(project.root)]

    code, out, _ = _cli("list", *where, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(v["name"], v["version"], v["status"]) for v in listed] == [
        ("churn", 1, "candidate"),
        ("churn", 2, "candidate"),
    ]
    assert listed[0]["metrics"] == {"auc": 0.81}
    assert listed[0]["created_at"] == FIXED_NOW.isoformat()

    code, out, _ = _cli("list", *where, "--name", "churn")
    assert code == 0
    assert "candidate" in out
    assert "auc=0.81" in out

    code, out, _ = _cli("promote", "churn", "1", *where, "--actor", "ann")
    assert (code, out.strip()) == (0, "churn v1 is now production")
    code, out, _ = _cli(
        "promote", "churn", "2", "--to", "shadow", *where, "--actor", "bob", "--json"
    )
    assert code == 0
    assert (json.loads(out)["version"], json.loads(out)["status"]) == (2, "shadow")
    code, out, _ = _cli("promote", "churn", "2", *where, "--actor", "bob")
    assert out.strip() == (
        "churn v2 is now production; v1 retired (`tenure models rollback churn` restores it)"
    )

    code, out, _ = _cli("show", "churn", "2", *where, "--json")
    shown = json.loads(out)
    assert shown["version"]["previous_production_id"] == listed[0]["id"]
    assert [(e["action"], e["to_status"], e["actor"]) for e in shown["history"]] == [
        ("register", "candidate", "ann"),
        ("promote", "shadow", "bob"),
        ("promote", "production", "bob"),
    ]
    code, out, _ = _cli("show", "churn", "2", *where)
    assert code == 0
    assert "churn v2 (production)" in out
    assert "auc" in out

    code, out, _ = _cli("rollback", "churn", *where, "--actor", "carol")
    assert (code, out.strip()) == (0, "v2 retired; churn v1 is in production again")

    code, _, err = _cli("promote", "churn", "2", "--to", "shadow", *where)
    assert code == 1
    assert err.startswith(
        "error: cannot move churn v2 from retired to shadow; allowed from retired: none"
    )
    assert "hint: register the model again" in err
    code, _, err = _cli("show", "churn", "9", *where)
    assert code == 1
    assert "error: no model 'churn' version 9; 'churn' has versions 1, 2" in err

    with project.store.connect() as connection:
        assert verify_audit_chain(connection) is None
        actions = [(e.action, e.actor) for e in read_audit(connection)][-2:]
    assert actions == [("model.rollback", "carol"), ("model.rollback", "carol")]


def test_cli_actor_defaults_to_the_os_user(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "dora")  # getpass.getuser reads LOGNAME first
    registry_for(project).register("churn", _model(1.0))
    code, _, _ = _cli("promote", "churn", "1", "-p", str(project.root))
    assert code == 0
    assert registry_for(project).history("churn", 1)[-1].actor == "dora"


def test_cli_help_lists_every_command() -> None:
    code, out, _ = _cli("--help")
    assert code == 0
    for command in ("list", "show", "promote", "retire", "rollback"):
        assert command in out
