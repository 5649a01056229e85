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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tenure._config_decide import DecideSettings, DeliverySettings
from tenure._config_serve import ServeSettings
from tenure.errors import ConfigError, ConfigProblem, ProjectNotFoundError
from tenure.features._definitions import FeatureDefinition, FeatureEntity

__all__ = [
    "CONFIG_FILENAME",
    "ENV_PREFIX",
    "HealthBands",
    "HealthComponent",
    "HealthDirection",
    "HealthInput",
    "HealthSettings",
    "IdentifierKind",
    "IdentitySettings",
    "IngestSettings",
    "LakeSettings",
    "LifecycleSettings",
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
    #: DuckDB's memory limit (e.g. ``4GB``); beyond it DuckDB spills to disk.
    #: Default: half the machine's RAM, leaving the rest to model training and
    #: the Python side (DuckDB's own default, 80 %, left too little at scale).
    memory_limit: str | None = None

    def duckdb_memory_limit(self) -> str:
        if self.memory_limit is not None:
            return self.memory_limit
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return f"{max(total // 2 // 2**20, 256)}MB"


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
    #: The environment variable holding the key of the erasure suppression list's
    #: hashes (else ``.tenure/erasure.key``): every process that ingests or erases
    #: must see the same key.
    erasure_secret_env: str = "TENURE_ERASURE_SECRET"  # noqa: S105 (a variable name)


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
    #: Events stitched per step, in date order (whole days). Bounds the memory a
    #: large backfill needs without changing any decision.
    batch_events: int = Field(default=2_000_000, ge=1)

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


def _events(*names: str) -> Any:
    return Field(default_factory=lambda: list(names), min_length=1)


class LifecycleSettings(_Section):
    """How lifecycle stages are derived from an account's events (see :mod:`tenure.lifecycle`)."""

    #: A prospect without an opportunity (or a purchase) this long after first touch is unqualified.
    prospect_days: int = Field(default=30, gt=0)
    #: A (re)starting customer is onboarding for this many days after the purchase.
    onboarding_days: int = Field(default=90, gt=0)
    #: Then established until this many days after the purchase, mature afterwards.
    established_until_days: int = Field(default=365, gt=0)
    #: Days before each renewal date that form the renewal window.
    renewal_window_days: int = Field(default=90, gt=0)
    #: Cancellations up to this many days after a renewal date count against that
    #: renewal in the report's renewal rate (billing ends annual plans after the date).
    renewal_grace_days: int = Field(default=30, ge=0)
    #: Billing interval (the purchase event's ``interval_property``, lower-cased) → term
    #: in days. Renewal dates are purchase + k × term; only terms longer than the renewal
    #: window get renewal windows, and an unknown interval gets none.
    term_days: dict[str, int] = Field(default_factory=lambda: {"month": 30, "year": 365})
    interval_property: str = "interval"
    #: Events that count as first touch; empty means the account's first event of any kind.
    first_touch_events: list[str] = Field(default_factory=list)
    opportunity_events: list[str] = _events("Opportunity Created")
    won_events: list[str] = _events("Opportunity Won")
    lost_events: list[str] = _events("Opportunity Lost")
    #: The first of these is the purchase (the won event when there is none); one after
    #: a churn is a win-back and starts onboarding again.
    purchase_events: list[str] = _events("Subscription Started")
    #: Churn: the cancellation that leaves the account no active subscription.
    churn_events: list[str] = _events("Subscription Canceled")
    #: Report KPIs: lead qualification, time to value, onboarding milestones, MRR.
    lead_events: list[str] = _events("Lead Created")
    qualified_events: list[str] = _events("Lead Qualified")
    value_events: list[str] = _events("Feature Used")
    #: Events a new customer should have done within onboarding_days; none by default.
    onboarding_milestones: list[str] = Field(default_factory=list)
    mrr_events: list[str] = _events("Subscription Started", "Subscription Changed")
    mrr_property: str = "mrr"

    @field_validator("term_days")
    @classmethod
    def _terms(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if v < 1]
        if bad:
            raise ValueError(f"terms are at least 1 day (check {', '.join(bad)})")
        return {k.lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if self.established_until_days <= self.onboarding_days:
            raise ValueError(
                f"established_until_days ({self.established_until_days}) must be greater "
                f"than onboarding_days ({self.onboarding_days})"
            )
        return self


class HealthDirection(enum.StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class HealthInput(_Section):
    """One feature read by a health component."""

    feature: str
    direction: HealthDirection = HealthDirection.HIGHER_IS_BETTER
    #: Values above the cap count as the cap (all equally good, or equally bad).
    cap: float | None = None


class HealthComponent(_Section):
    weight: float = Field(ge=0)
    inputs: list[HealthInput] = Field(min_length=1)


def _component(weight: float, *inputs: tuple[str, str, float | None]) -> HealthComponent:
    return HealthComponent(
        weight=weight,
        inputs=[
            HealthInput(feature=name, direction=HealthDirection(direction), cap=cap)
            for name, direction, cap in inputs
        ],
    )


_UP, _DOWN = "higher_is_better", "lower_is_better"


def _default_components() -> dict[str, HealthComponent]:
    # weights checked against the simulator's churn with health_auc (sentiment and
    # billing carry the most signal there); tune them on your own churn the same way
    return {
        "usage_depth": _component(
            0.25,
            ("logins_30d", _UP, None),
            ("active_users_ratio", _UP, None),
            ("days_since_last_login", _DOWN, None),
        ),
        "breadth": _component(0.10, ("feature_breadth_90d", _UP, None)),
        "engagement_trend": _component(
            0.10, ("usage_trend", _UP, None), ("logins_change_30d", _UP, None)
        ),
        "support": _component(
            0.10,
            ("tickets_open", _DOWN, None),
            ("urgent_tickets_open", _DOWN, None),
            ("csat_mean_90d", _UP, None),
        ),
        "sentiment": _component(0.25, ("nps_last", _UP, None), ("ticket_sentiment_30d", _UP, None)),
        "billing": _component(0.20, ("payment_failures_90d", _DOWN, None)),
    }


class HealthBands(_Section):
    #: Health at or above ``green`` is green, at or above ``yellow`` yellow, else red.
    green: float = Field(default=70.0, ge=0, le=100)
    yellow: float = Field(default=40.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> HealthBands:
        if self.yellow > self.green:
            raise ValueError(f"yellow ({self.yellow}) must not exceed green ({self.green})")
        return self


_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: Columns of the health table that a component may not be named after.
HEALTH_COLUMNS = ("account_id", "as_of", "health", "band", "change_30d", "movers")


class HealthSettings(_Section):
    """The health score's components, their weights and inputs (see :mod:`tenure.models.health`)."""

    components: dict[str, HealthComponent] = Field(default_factory=_default_components)
    bands: HealthBands = HealthBands()
    #: How many of the components that moved the score most are named in ``movers``.
    movers: int = Field(default=2, ge=0)

    @field_validator("components")
    @classmethod
    def _named_and_weighted(cls, value: dict[str, HealthComponent]) -> dict[str, HealthComponent]:
        if not value:
            raise ValueError("at least one component")
        for name in value:
            if not _COMPONENT_NAME.match(name) or name in HEALTH_COLUMNS:
                raise ValueError(
                    f"component names are lower_snake_case and not one of "
                    f"{', '.join(HEALTH_COLUMNS)} (got {name!r})"
                )
        if sum(c.weight for c in value.values()) <= 0:
            raise ValueError("at least one component needs a weight above 0")
        return value


class SequentialSettings(_Section):
    """The always-valid test ``tenure report experiments`` shows beside the fixed-horizon one.

    ``mixture_sd`` per metric is the mSPRT's τ, in the metric's units: the size of
    effect the test detects soonest. It never affects validity, only how quickly a
    real effect shows (``docs/measure.md``). A metric without one (null) gets no
    always-valid test: revenue has no scale tenure could assume.
    """

    alpha: float = Field(default=0.05, gt=0, lt=1)
    conversion: float | None = Field(default=0.05, gt=0)
    retention: float | None = Field(default=0.05, gt=0)
    revenue: float | None = Field(default=None, gt=0)


class MeasureSettings(_Section):
    sequential: SequentialSettings = SequentialSettings()
    #: Acquisition spend for CAC payback in ``tenure report kpis``: a CSV file, or a glob
    #: of several, with columns month, amount and optionally channel (``docs/measure.md``);
    #: relative to the project unless absolute. None: CAC is unavailable.
    spend: str | None = None
    #: The share of MRR that is gross margin; CAC is paid back from that share.
    gross_margin: float = Field(default=1.0, gt=0, le=1)


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
    lifecycle: LifecycleSettings = LifecycleSettings()
    health: HealthSettings = HealthSettings()
    decide: DecideSettings = DecideSettings()
    measure: MeasureSettings = MeasureSettings()
    delivery: DeliverySettings = DeliverySettings()
    serve: ServeSettings = ServeSettings()


_SECTIONS: dict[str, type[BaseModel]] = {
    "lake": LakeSettings,
    "warehouse": WarehouseSettings,
    "store": StoreSettings,
    "ingest": IngestSettings,
    "identity": IdentitySettings,
    "decide": DecideSettings,
    "delivery": DeliverySettings,
    "serve": ServeSettings,
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
  # Parquet lake: events partitioned by event month, entity snapshots by date.
  path: lake

warehouse:
  # Analytical engine for batch steps: duckdb (embedded) or pyspark (extra `spark`).
  backend: duckdb
  # DuckDB database file for warehouse tables (identities, profiles, features, scores).
  path: warehouse.duckdb
  # threads: 2            # default: all cores
  # memory_limit: 4GB     # default: half the machine's RAM

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
  # Keys the hashes of erased people's identifiers, whose new events ingest drops
  # (the variable's name; without it, the key file .tenure/erasure.key).
  erasure_secret_env: TENURE_ERASURE_SECRET

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
  # Events stitched per step, whole days in date order; bounds memory on backfills.
  # batch_events: 2000000

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

lifecycle:
  # Stages: prospect → opportunity → onboarding → established → mature, with
  # renewal windows before each renewal date of an annual plan, churned, and the
  # funnel exits unqualified and lost (`tenure.lifecycle` documents the rules).
  # A prospect with no opportunity this many days after first touch is unqualified.
  prospect_days: 30
  # A new (or won-back) customer is onboarding for this many days after purchase,
  onboarding_days: 90
  # then established until this many days after purchase, and mature after that.
  established_until_days: 365
  # Days before each renewal date (purchase + k × term) that are its renewal window.
  renewal_window_days: 90
  # Cancellations up to this many days after a renewal date count as not renewing.
  renewal_grace_days: 30
  # Billing interval (the purchase event's `interval` property) → term in days.
  # Only terms longer than the renewal window have renewal windows.
  term_days: {month: 30, year: 365}
  interval_property: interval
  # Events that count as first touch; [] means the account's first event of any kind.
  first_touch_events: []
  opportunity_events: [Opportunity Created]
  won_events: [Opportunity Won]
  lost_events: [Opportunity Lost]
  # The first is the purchase (else the won event); one after a churn is a win-back.
  purchase_events: [Subscription Started]
  # Churn: the cancellation that leaves the account no active subscription.
  churn_events: [Subscription Canceled]
  # Stage KPIs: lead qualification, time to value (first value event after purchase).
  lead_events: [Lead Created]
  qualified_events: [Lead Qualified]
  value_events: [Feature Used]
  # Events a new customer should have done within onboarding_days (none by default,
  # so the report shows milestone completion as not available).
  onboarding_milestones: []
  mrr_events: [Subscription Started, Subscription Changed]
  mrr_property: mrr

health:
  # The health score (0–100) is the weighted mean of its components; weights are
  # normalized over the components an account has inputs for. Each input scores
  # 0–100 as the share of the reference accounts it does at least as well as
  # (`direction`); values above `cap` count as the cap. Tune the weights with
  # `tenure.models.health.health_auc` (these defaults were checked on the simulator).
  components:
    usage_depth:
      weight: 0.25
      inputs:
        - {feature: logins_30d, direction: higher_is_better}
        - {feature: active_users_ratio, direction: higher_is_better}
        - {feature: days_since_last_login, direction: lower_is_better}
    breadth:
      weight: 0.10
      inputs:
        - {feature: feature_breadth_90d, direction: higher_is_better}
    engagement_trend:
      weight: 0.10
      inputs:
        - {feature: usage_trend, direction: higher_is_better}
        - {feature: logins_change_30d, direction: higher_is_better}
    support:
      weight: 0.10
      inputs:
        - {feature: tickets_open, direction: lower_is_better}
        - {feature: urgent_tickets_open, direction: lower_is_better}
        - {feature: csat_mean_90d, direction: higher_is_better}
    sentiment:
      weight: 0.25
      inputs:
        - {feature: nps_last, direction: higher_is_better}
        - {feature: ticket_sentiment_30d, direction: higher_is_better}
    billing:
      weight: 0.20
      inputs:
        - {feature: payment_failures_90d, direction: lower_is_better}
  # Bands: green at or above `green`, yellow at or above `yellow`, else red.
  bands: {green: 70, yellow: 40}
  # How many of the components that moved the score most are named in `movers`.
  movers: 2

decide:
  # Policies (policies/*.yaml), templates and journeys live here.
  policies_dir: policies
  templates_dir: templates
  journeys_dir: journeys
  # Consent on a channel nobody has said anything about (opt-outs always win).
  default_consent: {email: true, in_app: true, webhook: true, csm_task: true}
  # At most `max` actions per customer in any rolling window, per channel or overall.
  caps:
    - {channel: email, max: 2, window: 7d}
    - {channel: in_app, max: 3, window: 7d}
    - {channel: null, max: 4, window: 7d}
  # Nothing starts in these hours of the customer's time zone (timezone trait);
  # the action waits until the end instead. Set to null to switch off.
  quiet_hours: {start: "21:00", end: "08:00", channels: [email, in_app], default_timezone: UTC}
  # Spend caps: per campaign ({campaign: {budget: 5000, period: 30d}}) and overall.
  # While any is set, customers whose best action is worth most are decided first.
  budgets: {}
  global_budget: null
  # Act where uplift says the action does more harm than good (uplift × value − cost
  # below 0)? By default such an action is blocked and the customer left alone.
  act_on_negative_value: false
  # No message to an account with an urgent ticket opened this recently.
  urgent_ticket_suppression: 7d
  suppression_channels: [email, in_app]
  # Human review before sending: high-value accounts and large discounts.
  review: {min_value: 10000, max_discount: 0.15, expires_after: 3d, channels: [email, webhook]}
  # After a decision, the account's purchases, plan changes and cancellations within
  # this window are its outcomes (`tenure explain`); message events link by decision_id.
  attribution_window: 30d
  # Who gets nothing, so that what the actions change can be measured: they are
  # decided for and logged (status holdout) but sent nothing. Membership is a hash
  # of the account and the salt: stable across cycles, no lookup.
  holdouts:
    global_control_percent: 0     # e.g. 5: held out of every campaign
    campaigns: {}                 # e.g. {save: 10}: 10 % of the save campaign's targets
    salt: tenure

# `tenure report experiments`: besides the fixed-horizon p-value, which holds only if
# the report is read once, an always-valid one (mSPRT) that holds however often it is
# read. Per metric, the effect (in its units) the test should detect soonest; null:
# no always-valid test for that metric. Set revenue to the revenue per customer a
# campaign must add to pay for itself.
measure:
  sequential: {alpha: 0.05, conversion: 0.05, retention: 0.05, revenue: null}
  # `tenure report kpis`: CAC and CAC payback per signup cohort come from acquisition
  # spend, a CSV file (or a glob of several) with columns month (YYYY-MM or a date),
  # amount (in the currency of MRR) and optionally channel; rows of a month add up.
  # spend: finance/marketing_spend.csv
  # Payback is on gross-margin MRR: the share of MRR left after the cost of serving it.
  gross_margin: 1.0

delivery:
  smtp:
    host: 127.0.0.1
    port: 25
    security: none          # none | starttls | ssl
    # username: tenure
    # password_env: TENURE_SMTP_PASSWORD   # the variable's name, never the password
    from_address: tenure@localhost
  # Named webhook targets: {crm: {url: https://…, secret_env: TENURE_CRM_SECRET}}
  webhooks: {}
  # csm_task_webhook: crm
  max_attempts: 6
  backoff_base_seconds: 30
  backoff_max_seconds: 3600
  lease_seconds: 120
  # Unsubscribe links point here (`tenure serve` records the opt-out).
  public_url: http://127.0.0.1:8000
  unsubscribe_secret_env: TENURE_UNSUBSCRIBE_SECRET

# `tenure serve`: the HTTP API (Segment-compatible collection, read and act).
serve:
  host: 127.0.0.1
  port: 8000
  max_event_bytes: 32768      # Segment's limits: one event, one (gunzipped) request
  max_batch_bytes: 512000
  loader: true                # move acknowledged events from the inbox to the lake
  loader_interval: 5s
  loader_batch: 50000
  dedupe_window: 7d           # a retried messageId is a no-op for at least this long
  rate_limit: 500             # requests per second per API key (burst: rate_burst)
  rate_burst: 1000
  key_cache_seconds: 5        # a key revoked elsewhere stops working within this time
  pseudonym_secret_env: TENURE_PSEUDONYM_SECRET
  stripe_secret_env: TENURE_STRIPE_WEBHOOK_SECRET
  stripe_tolerance: 5m
  # HubSpot and Zendesk webhooks: an events:write API key, or (once set) their signature
  hubspot_secret_env: TENURE_HUBSPOT_CLIENT_SECRET    # the HubSpot app's client secret
  zendesk_secret_env: TENURE_ZENDESK_WEBHOOK_SECRET   # the Zendesk webhook's signing secret
  tracing: none               # none | console | otlp
  otlp_endpoint: http://127.0.0.1:4318/v1/traces
  access_log: true
"""
