"""The project file (``tenure.yaml``): typed settings, validation and overrides.

A project is a directory holding ``tenure.yaml``. Relative paths in the file
are relative to that directory. Any scalar setting can be overridden by an
environment variable named ``TENURE_<SECTION>_<KEY>`` (for example
``TENURE_STORE_URL``), which is how deployments point the same project at
PostgreSQL or another lake without editing the file.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tenure.errors import ConfigError, ConfigProblem, ProjectNotFoundError
from tenure.features._definitions import FeatureDefinition, FeatureEntity

__all__ = [
    "CONFIG_FILENAME",
    "ENV_PREFIX",
    "IdentifierKind",
    "IdentitySettings",
    "IngestSettings",
    "LakeSettings",
    "ProjectConfig",
    "SourceSettings",
    "StoreSettings",
    "WarehouseBackend",
    "WarehouseSettings",
    "default_config_text",
    "load_config",
]

CONFIG_FILENAME = "tenure.yaml"
ENV_PREFIX = "TENURE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeSettings(_Section):
    path: Path = Path("lake")


class WarehouseBackend(enum.StrEnum):
    DUCKDB = "duckdb"
    PYSPARK = "pyspark"


class WarehouseSettings(_Section):
    backend: WarehouseBackend = WarehouseBackend.DUCKDB
    path: Path = Path("warehouse.duckdb")
    threads: int | None = Field(default=None, ge=1)
    memory_limit: str | None = None


class StoreSettings(_Section):
    url: str = "sqlite:///tenure.db"

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+")):
            raise ValueError("a SQLAlchemy URL for SQLite or PostgreSQL, e.g. sqlite:///tenure.db")
        return value


class IngestSettings(_Section):
    #: Events stamped further than this into the future (vs. the ingest clock) are quarantined.
    max_future_skew_hours: float = Field(default=24.0, gt=0)
    #: Segment's limit: a single event may not exceed 32 KB.
    max_event_bytes: int = Field(default=32 * 1024, gt=0)
    #: Rows processed per batch; bounds memory on large inputs.
    batch_rows: int = Field(default=1_000_000, gt=0)


class IdentifierKind(enum.StrEnum):
    USER_ID = "user_id"
    ANONYMOUS_ID = "anonymous_id"
    EMAIL = "email"
    EXTERNAL_ID = "external_id"


def _default_limits() -> dict[IdentifierKind, int]:
    return {
        IdentifierKind.USER_ID: 1,
        IdentifierKind.EMAIL: 5,
        IdentifierKind.ANONYMOUS_ID: 1000,
        IdentifierKind.EXTERNAL_ID: 5,
    }


_GENERIC_LOCAL_PARTS = (
    "info",
    "support",
    "admin",
    "sales",
    "contact",
    "hello",
    "help",
    "billing",
    "noreply",
    "no-reply",
    "team",
    "office",
    "marketing",
    "accounts",
    "finance",
    "hr",
    "jobs",
    "test",
)


class IdentitySettings(_Section):
    #: Most identifiers of one kind a single profile may hold; a link that would
    #: exceed it is refused (recorded, not merged). user_id 1 keeps two known
    #: users from ever being merged through a shared email or device.
    limits: dict[IdentifierKind, int] = Field(default_factory=_default_limits)
    #: Email local parts that name a role, not a person: never used to merge.
    generic_email_local_parts: list[str] = Field(default_factory=lambda: list(_GENERIC_LOCAL_PARTS))
    #: Trait conflicts: a value from an earlier source in this list wins over a
    #: later one; among equal sources the latest timestamp wins.
    source_precedence: list[str] = Field(
        default_factory=lambda: ["hubspot", "stripe", "zendesk", "segment"]
    )

    @field_validator("limits")
    @classmethod
    def _positive(cls, value: dict[IdentifierKind, int]) -> dict[IdentifierKind, int]:
        bad = [k for k, v in value.items() if v < 1]
        if bad:
            raise ValueError(f"limits must be at least 1 (check {', '.join(map(str, bad))})")
        return {**_default_limits(), **value}


class SourceSettings(_Section):
    #: A built-in mapping name (``stripe.subscriptions``, ``hubspot.contacts`` …,
    #: see ``tenure ingest --list-mappings``) or the path of a mapping YAML file.
    mapping: str
    #: Glob of files (relative to the project) this mapping applies to.
    path: str | None = None


class FeatureSettings(BaseModel):
    """Which features the build computes: the built-ins, minus ``disable``, plus ``define``.

    Feature definitions are project-file data (see :mod:`tenure.features`); the
    model lives with the features and holds no behaviour beyond validation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Built-in feature names to leave out.
    disable: list[str] = Field(default_factory=list)
    #: The project's own features (same fields as the built-ins).
    define: list[FeatureDefinition] = Field(default_factory=list)
    #: Entities scored with feature snapshots each build.
    entities: list[FeatureEntity] = Field(default_factory=lambda: [FeatureEntity.ACCOUNT])


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    lake: LakeSettings = LakeSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    identity: IdentitySettings = IdentitySettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    features: FeatureSettings = FeatureSettings()


_SECTIONS: dict[str, type[_Section]] = {
    "lake": LakeSettings,
    "warehouse": WarehouseSettings,
    "store": StoreSettings,
    "ingest": IngestSettings,
}


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Settings from ``TENURE_<SECTION>_<KEY>`` variables, and which variable set which key."""
    found: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    for section, model in _SECTIONS.items():
        for field in model.model_fields:
            name = f"{ENV_PREFIX}{section}_{field}".upper()
            if name in environ:
                found.setdefault(section, {})[field] = environ[name]
                origin[f"{section}.{field}"] = name
    return found, origin


def _problems(error: ValidationError, origin: Mapping[str, str]) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        expected = item["msg"]
        if item["type"] == "extra_forbidden":
            expected = "unknown key (check the spelling; `tenure init` writes every known key)"
        elif expected.startswith("Value error, "):
            expected = expected.removeprefix("Value error, ")
        if key in origin:
            key = f"{key} (from environment variable {origin[key]})"
        problems.append(ConfigProblem(key, expected, item.get("input")))
    return problems


def parse_config(
    data: Any, *, source: str, environ: Mapping[str, str] | None = None
) -> ProjectConfig:
    """Validate a parsed project file, applying environment overrides."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", "a mapping of settings", data)])
    overrides, origin = _env_overrides(os.environ if environ is None else environ)
    merged = dict(data)
    for section, values in overrides.items():
        current = merged.get(section)
        merged[section] = {**(current if isinstance(current, dict) else {}), **values}
    try:
        return ProjectConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(
            source,
            _problems(error, origin),
            hint=f"fix the keys above in {source}; `tenure init` documents every setting",
        ) from None


def load_config(project_dir: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """Read and validate ``tenure.yaml`` in *project_dir*."""
    path = project_dir / CONFIG_FILENAME
    if not path.is_file():
        raise ProjectNotFoundError(f"no {CONFIG_FILENAME} in {project_dir}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [ConfigProblem(where, f"valid YAML: {problem}")]) from None
    return parse_config(data, source=str(path), environ=environ)


def default_config_text() -> str:
    """The commented project file that ``tenure init`` writes."""
    return _DEFAULT_TEXT


_DEFAULT_TEXT = """\
# tenure project file. Relative paths are relative to this file's directory.
# Every scalar setting can be overridden with TENURE_<SECTION>_<KEY>,
# e.g. TENURE_STORE_URL=postgresql+psycopg://user@host/db
version: 1

lake:
  # Parquet lake: events partitioned by event date, entity snapshots by date.
  path: lake

warehouse:
  # Analytical engine for batch steps: duckdb (embedded) or pyspark (extra `spark`).
  backend: duckdb
  # DuckDB database file for warehouse tables (identities, profiles, features, scores).
  path: warehouse.duckdb
  # threads: 2            # default: all cores
  # memory_limit: 4GB     # default: DuckDB's (80 % of RAM)

store:
  # Operational store (ingest runs, quarantine, audit log, decisions, outbox).
  # SQLite file by default; PostgreSQL: postgresql+psycopg://user@host:5432/dbname
  url: sqlite:///tenure.db

ingest:
  # Events stamped more than this many hours after the ingest clock are quarantined.
  max_future_skew_hours: 24
  # Segment's per-event size limit, in bytes.
  max_event_bytes: 32768
  # Rows handled per batch; bounds memory on large files.
  batch_rows: 1000000

identity:
  # Most identifiers of one kind a profile may hold. A link that would exceed
  # a limit is refused and recorded (user_id: 1 means two known users never merge).
  limits:
    user_id: 1
    email: 5
    anonymous_id: 1000
    external_id: 5
  # Email local parts that belong to a role, not a person; never used to merge.
  generic_email_local_parts: [info, support, admin, sales, contact, hello, help, billing,
    noreply, no-reply, team, office, marketing, accounts, finance, hr, jobs, test]
  # When sources disagree on a trait, the earlier source in this list wins;
  # within one source the latest value wins.
  source_precedence: [hubspot, stripe, zendesk, segment]

# Column mappings for CSV/Parquet exports. `tenure ingest` also detects the
# built-in mappings (stripe.*, hubspot.*, zendesk.*) from a file's header;
# list them with `tenure ingest --list-mappings`.
sources: {}
#  stripe_subscriptions:
#    mapping: stripe.subscriptions
#    path: exports/stripe/subscriptions*.csv
#  my_crm_accounts:
#    mapping: mappings/crm_accounts.yaml
#    path: exports/crm/accounts.csv

features:
  # Built-in features to leave out (`tenure features` lists them).
  disable: []
  # The project's own features: name, entity (account|person), aggregation,
  # events, window ("30d"), field, where, description, reason.
  define: []
  #  - name: exports_30d
  #    aggregation: count
  #    events: [Report Exported]
  #    window: 30d
  #    description: reports exported in the last 30 days
  #  - name: enterprise_tickets_90d
  #    aggregation: count
  #    events: [Ticket Created]
  #    where: {priority: [urgent, high]}
  #    window: 90d
  entities: [account]
"""
