from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tenure.config import (
    CONFIG_FILENAME,
    ProjectConfig,
    WarehouseBackend,
    default_config_text,
    load_config,
)
from tenure.errors import ConfigError, ProjectNotFoundError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / CONFIG_FILENAME).write_text(text, encoding="utf-8")
    return tmp_path


def test_default_file_is_the_default_config() -> None:
    # the commented file `tenure init` writes must mean exactly the defaults
    assert ProjectConfig.model_validate(yaml.safe_load(default_config_text())) == ProjectConfig()


def test_defaults_are_embedded(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "version: 1\n"), environ={})
    assert config.warehouse.backend is WarehouseBackend.DUCKDB
    assert config.store.url == "sqlite:///tenure.db"
    assert config.lake.path == Path("lake")


def test_every_problem_is_named_with_its_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "version: 1\nstore:\n  url: mysql://x\ningest:\n  batch_rows: -5\n  max_event_byte: 3\n"
        "identity:\n  limits:\n    email: 0\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    error = info.value
    keys = [p.key for p in error.problems]
    assert keys == [
        "store.url",
        "ingest.batch_rows",
        "ingest.max_event_byte",
        "identity.limits",
    ]
    message = str(error)
    assert message.startswith(f"{tmp_path / CONFIG_FILENAME}: 4 problems")
    assert "store.url: a SQLAlchemy URL for SQLite or PostgreSQL" in message
    assert "ingest.batch_rows: Input should be greater than 0 (got -5)" in message
    assert "ingest.max_event_byte: unknown key" in message
    assert "limits must be at least 1 (check email)" in message


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    write(tmp_path, "warehouse:\n  backend: oracle\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    (problem,) = info.value.problems
    assert problem.key == "warehouse.backend"
    assert "'duckdb' or 'pyspark'" in problem.expected
    assert problem.value == "oracle"


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    write(tmp_path, "store:\n  url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: valid YAML"):
        load_config(tmp_path, environ={})


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match=r"\(top level\): a mapping of settings"):
        load_config(tmp_path, environ={})


def test_environment_overrides_file(tmp_path: Path) -> None:
    write(tmp_path, "store:\n  url: sqlite:///a.db\n")
    config = load_config(
        tmp_path,
        environ={
            "TENURE_STORE_URL": "postgresql+psycopg://u@h/db",
            "TENURE_INGEST_MAX_FUTURE_SKEW_HOURS": "2.5",
            "TENURE_LAKE_PATH": "/data/lake",
        },
    )
    assert config.store.url == "postgresql+psycopg://u@h/db"
    assert config.ingest.max_future_skew_hours == 2.5
    assert config.lake.path == Path("/data/lake")


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    write(tmp_path, "version: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={"TENURE_INGEST_BATCH_ROWS": "many"})
    (problem,) = info.value.problems
    assert problem.key == "ingest.batch_rows (from environment variable TENURE_INGEST_BATCH_ROWS)"


def test_missing_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError) as info:
        load_config(tmp_path, environ={})
    assert "tenure init" in (info.value.hint or "")


def test_sources_are_typed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sources:\n  subs:\n    mapping: stripe.subscriptions\n    path: x/*.csv\n"
        "  bad:\n    path: y.csv\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert [p.key for p in info.value.problems] == ["sources.bad.mapping"]


def test_measure_spend_and_gross_margin(tmp_path: Path) -> None:
    write(tmp_path, "measure:\n  spend: finance/*.csv\n  gross_margin: 0.8\n")
    measure = load_config(tmp_path, environ={}).measure
    assert (measure.spend, measure.gross_margin) == ("finance/*.csv", 0.8)
    write(tmp_path, "measure:\n  gross_margin: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    (problem,) = info.value.problems
    assert (problem.key, problem.expected) == (
        "measure.gross_margin",
        "Input should be greater than 0",
    )
    write(tmp_path, "measure:\n  gross_margin: 1.2\n")
    with pytest.raises(ConfigError, match=r"measure\.gross_margin: Input should be less than or"):
        load_config(tmp_path, environ={})
