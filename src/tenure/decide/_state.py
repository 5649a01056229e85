"""The customer state decisions read, published from the warehouse into the operational store.

Batch steps own the warehouse; the server never opens it (one DuckDB writer).
So after scoring, :func:`publish_state` copies what a decision needs — stage,
health, scores with reasons and model versions, features, traits and the
account's contacts — into ``customer_state``, one row per account. Batch
decisions, the API and journeys all read that same row, which is what lets one
set of guardrails serve every path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, text

from tenure.decide._prefilter import Guard, Prefilter
from tenure.store._tables import customer_state

if TYPE_CHECKING:
    import pandas as pd

    from tenure.project import Project

__all__ = [
    "Contact",
    "Contexts",
    "CustomerState",
    "load_contexts",
    "load_states",
    "publish_state",
    "save_states",
    "state_from_row",
]

_SCORE_COLUMNS = (
    "churn_probability",
    "renewal_probability",
    "clv",
    "expansion_probability",
    "promoter_probability",
    "probability_alive",
    "expected_purchases_12m",
    "clv_transactional_12m",
    "mrr",
)
_MODEL_COLUMNS = ("churn_model", "survival_model", "retention_model")
_CONTACTS_PER_ACCOUNT = 3


@dataclass(frozen=True, slots=True)
class Contact:
    profile_id: str
    email: str | None
    user_id: str | None
    name: str | None
    first_name: str | None
    timezone: str | None
    #: Typed identifiers consent is checked against (email:…, user_id:…, profile:…).
    identifiers: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "email": self.email,
            "user_id": self.user_id,
            "name": self.name,
            "first_name": self.first_name,
            "timezone": self.timezone,
            "identifiers": list(self.identifiers),
        }


@dataclass(frozen=True, slots=True)
class CustomerState:
    account_id: str
    as_of: dt.datetime
    name: str | None
    stage: str | None
    scores: dict[str, float] = field(default_factory=dict)
    reasons: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    contacts: tuple[Contact, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    uplift: dict[str, float] = field(default_factory=dict)
    features_hash: str = ""
    days_in_stage: float | None = None

    @property
    def value(self) -> float:
        """What the account is worth: CLV, else a year of MRR, else 0."""
        clv = self.scores.get("clv")
        if clv is not None:
            return float(clv)
        return 12.0 * float(self.scores.get("mrr") or 0.0)

    def context(self) -> dict[str, Any]:
        """The variables policy conditions see."""
        return {
            "scores": self.scores,
            "health": self.health,
            "features": self.features,
            "stage": self.stage or "",
            "traits": self.traits,
            "account": {
                "id": self.account_id,
                "name": self.name or "",
                "value": self.value,
                **({} if self.days_in_stage is None else {"days_in_stage": self.days_in_stage}),
            },
            "uplift": self.uplift,
        }

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "scores": self.scores,
                "reasons": self.reasons,
                "health": self.health,
                "features": self.features,
                "traits": self.traits,
                "contacts": [c.as_dict() for c in self.contacts],
                "models": self.models,
                "uplift": self.uplift,
                "days_in_stage": self.days_in_stage,
            }
        ).decode()


def _clean(value: Any) -> Any:
    """A JSON-safe scalar: NaN and None become None; numpy scalars plain Python."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _present(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ((k, _clean(v)) for k, v in mapping.items()) if v is not None}


def _table(project: Project, name: str) -> pd.DataFrame | None:
    backend = project.warehouse.backend
    if name not in backend.list_tables():
        return None
    frame: pd.DataFrame = backend.to_pandas(backend.table(name))
    return frame


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _contacts(profiles: pd.DataFrame | None) -> dict[str, list[Contact]]:
    found: dict[str, list[Contact]] = {}
    if profiles is None or profiles.empty:
        return found
    people = profiles[profiles["account_id"].notna()].sort_values(
        ["account_id", "event_count", "profile_id"], ascending=[True, False, True]
    )
    for row in people.itertuples(index=False):
        listed = found.setdefault(row.account_id, [])
        if len(listed) >= _CONTACTS_PER_ACCOUNT:
            continue
        traits = _json_object(row.traits)
        emails = [e for e in (row.emails if row.emails is not None else []) if e]
        user_ids = [u for u in (row.user_ids if row.user_ids is not None else []) if u]
        email = traits.get("email") if isinstance(traits.get("email"), str) else None
        email = (email or (emails[-1] if emails else None) or "").strip().lower() or None
        name = traits.get("name") if isinstance(traits.get("name"), str) else None
        first = traits.get("first_name") or traits.get("firstName")
        if not isinstance(first, str):
            first = name.split()[0] if name else None
        zone = traits.get("timezone") if isinstance(traits.get("timezone"), str) else None
        identifiers = (
            [f"email:{e.lower()}" for e in emails]
            + [f"user_id:{u}" for u in user_ids]
            + [f"profile:{row.profile_id}"]
        )
        listed.append(
            Contact(
                profile_id=row.profile_id,
                email=email,
                user_id=user_ids[0] if user_ids else None,
                name=name,
                first_name=first,
                timezone=zone,
                identifiers=tuple(dict.fromkeys(identifiers)),
            )
        )
    return found


def _features_hash(hashes: dict[str, str]) -> str:
    text = "\n".join(f"{name}={value}" for name, value in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def build_states(project: Project, *, as_of: dt.datetime) -> list[CustomerState]:
    """Every scored (else featured) account's state from the warehouse tables."""
    from tenure.features import FeatureEntity, project_features

    accounts = _table(project, "accounts")
    if accounts is None or accounts.empty:
        return []
    scores = _table(project, "scores")
    health = _table(project, "health")
    stages = _table(project, "account_stages")
    features = _table(project, "features_account")
    contacts = _contacts(_table(project, "profiles"))
    uplift = _uplift(_table(project, "uplift_scores"))
    hashes = project_features(project).hashes(FeatureEntity.ACCOUNT)
    features_hash = _features_hash(hashes)

    def by_id(frame: pd.DataFrame | None, column: str) -> dict[str, dict[str, Any]]:
        if frame is None or frame.empty:
            return {}
        return {str(r[column]): r for r in frame.to_dict("records")}

    score_rows = by_id(scores, "account_id")
    health_rows = by_id(health, "account_id")
    stage_rows = by_id(stages, "account_id")
    feature_rows = by_id(features, "entity_id")
    feature_names = [n for n in hashes if features is not None and n in features.columns]
    ids = list(score_rows) or list(feature_rows) or [str(a) for a in accounts["account_id"]]
    names = {str(r["account_id"]): r for r in accounts.to_dict("records")}
    states = []
    for account_id in ids:
        account = names.get(account_id, {})
        score = score_rows.get(account_id, {})
        h = health_rows.get(account_id)
        stage = stage_rows.get(account_id, {})
        feats = feature_rows.get(account_id, {})
        models = {c.removesuffix("_model"): score[c] for c in _MODEL_COLUMNS if score.get(c)}
        models.update(_json_object(score.get("other_models")))
        gains = uplift.get(account_id, {})
        models.update({f"uplift-{t}": label for t, (_, label) in gains.items()})
        health_map: dict[str, Any] = {}
        if h is not None:
            health_map = _present(
                {"score": h.get("health"), "band": h.get("band"), "change": h.get("change_30d")}
            )
            movers = h.get("movers")
            if isinstance(movers, str) and movers:
                health_map["movers"] = movers
        reasons = score.get("churn_reasons")
        states.append(
            CustomerState(
                account_id=account_id,
                as_of=as_of,
                name=_clean(account.get("name")),
                stage=_clean(stage.get("stage")),
                scores=_present({c: score.get(c) for c in _SCORE_COLUMNS}),
                reasons=json.loads(reasons) if isinstance(reasons, str) and reasons else [],
                health=health_map,
                features=_present({n: feats.get(n) for n in feature_names}),
                traits=_present(_json_object(account.get("traits"))),
                contacts=tuple(contacts.get(account_id, [])),
                models=models,
                features_hash=features_hash,
                days_in_stage=_clean(stage.get("days_in_stage")),
                uplift={t: gain for t, (gain, _) in gains.items()},
            )
        )
    return states


def _uplift(frame: pd.DataFrame | None) -> dict[str, dict[str, tuple[float, str]]]:
    """account → treatment → (estimated gain in retention, model label), from the
    production uplift models' scores (:mod:`tenure.measure._feedback`)."""
    found: dict[str, dict[str, tuple[float, str]]] = {}
    if frame is None or frame.empty:
        return found
    for account, treatment, gain, model in frame[
        ["account_id", "treatment", "uplift", "model"]
    ].itertuples(index=False):
        if gain is not None and math.isfinite(gain):
            found.setdefault(str(account), {})[str(treatment)] = (float(gain), str(model))
    return found


def publish_state(project: Project, *, as_of: dt.datetime) -> int:
    """Replace ``customer_state`` with the warehouse's current state; returns the row count."""
    states = build_states(project, as_of=as_of)
    with project.store.begin() as connection:
        save_states(connection, states, published_at=project.clock(), replace=True)
    return len(states)


def save_states(
    connection: Connection,
    states: Iterable[CustomerState],
    *,
    published_at: dt.datetime,
    replace: bool = False,
) -> None:
    """Write *states* (all of ``customer_state`` when *replace*, else upserting by account)."""
    rows = [
        {
            "account_id": s.account_id,
            "as_of": s.as_of,
            "name": s.name,
            "stage": s.stage,
            "state": s.to_json(),
            "features_hash": s.features_hash,
            "published_at": published_at,
        }
        for s in states
    ]
    if replace:
        connection.execute(delete(customer_state))
    else:
        ids = [r["account_id"] for r in rows]
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            connection.execute(delete(customer_state).where(customer_state.c.account_id.in_(chunk)))
    for start in range(0, len(rows), 5000):
        connection.execute(insert(customer_state), rows[start : start + 5000])


def state_from_row(row: Any) -> CustomerState:
    data = orjson.loads(row.state)
    return CustomerState(
        account_id=row.account_id,
        as_of=row.as_of,
        name=row.name,
        stage=row.stage,
        scores=data.get("scores", {}),
        reasons=data.get("reasons", []),
        health=data.get("health", {}),
        features=data.get("features", {}),
        traits=data.get("traits", {}),
        contacts=tuple(
            Contact(**{**c, "identifiers": tuple(c.get("identifiers", ()))})
            for c in data.get("contacts", [])
        ),
        models=data.get("models", {}),
        uplift=data.get("uplift", {}),
        features_hash=row.features_hash,
        days_in_stage=data.get("days_in_stage"),
    )


def load_states(
    connection: Connection, account_ids: Iterable[str] | None = None
) -> list[CustomerState]:
    query = select(customer_state).order_by(customer_state.c.account_id)
    if account_ids is not None:
        query = query.where(customer_state.c.account_id.in_(sorted(set(account_ids))))
    return [state_from_row(row) for row in connection.execute(query)]


#: Variables a condition context is built from straight out of the stored JSON.
_STORED = ("scores", "health", "features", "traits", "uplift")


def _extract_sql(dialect: str, columns: list[tuple[str, str | None]], where: str) -> str:
    """SQL giving account_id, stage and one JSON array of the wanted values, per customer.

    The stored document is parsed once per row (SQLite's multi-path
    ``json_extract``; one ``jsonb`` cast on PostgreSQL). Names are ``\\w+``, checked.
    """
    paths = [[v] if n is None else [v, n] for v, n in columns]
    if not all(part.isidentifier() for path in paths for part in path):
        raise ValueError(f"not plain field names: {paths!r}")
    if dialect == "postgresql":
        items = ", ".join("j #> '{" + ",".join(path) + "}'" for path in paths)
        return (
            f"SELECT account_id, stage, jsonb_build_array({items})::text FROM "
            f"(SELECT account_id, stage, CAST(state AS JSONB) AS j FROM customer_state"
            f"{where}) AS s ORDER BY account_id"
        )
    # one path gives a bare value, two or more an array: ask for the first one twice
    json_paths = ["'$." + ".".join(path) + "'" for path in paths]
    if len(json_paths) == 1:
        json_paths.append(json_paths[0])
    return (
        f"SELECT account_id, stage, json_extract(state, {', '.join(json_paths)}) "
        f"FROM customer_state{where} ORDER BY account_id"
    )


@dataclass(frozen=True, slots=True)
class Contexts:
    """What :func:`load_contexts` read: how many customers, and the contexts kept."""

    customers: int
    #: (account, stage, condition context), in account order.
    found: list[tuple[str, str | None, dict[str, Any]]]


def load_contexts(
    connection: Connection,
    fields: dict[str, frozenset[str] | None],
    account_ids: Iterable[str] | None = None,
    *,
    guards: Sequence[tuple[tuple[Guard, ...], Sequence[str] | None]] | None = None,
) -> Contexts | None:
    """(account, stage, condition context) for every published customer, or None.

    Only the fields the conditions read are extracted, by the database, from
    the stored JSON: the full state of a customer is loaded only when one of
    its rules matches. None when a condition reads ``account`` (derived
    values): the caller then loads full states. With *guards* (each rule's
    :func:`~tenure.decide._prefilter.guards` and stages) a customer no rule can be
    eligible for is counted but gets no context (:class:`~tenure.decide._prefilter.Prefilter`).
    """
    if "account" in fields:
        return None
    dialect = connection.dialect.name
    columns: list[tuple[str, str | None]] = []
    for variable, names in sorted(fields.items()):
        if variable == "stage":
            continue
        if variable not in _STORED:
            return None
        if names is None:
            columns.append((variable, None))
        else:
            columns.extend((variable, name) for name in sorted(names))
    params: dict[str, Any] = {}
    where = ""
    if account_ids is not None:
        params["ids"] = sorted(set(account_ids))
        if not params["ids"]:
            return Contexts(0, [])
        where = " WHERE account_id IN :ids"
    if not columns:  # conditions read only the stage
        columns_sql = "SELECT account_id, stage, NULL FROM customer_state"
        query = text(f"{columns_sql}{where} ORDER BY account_id")
    else:
        query = text(_extract_sql(dialect, columns, where))
    if params:
        query = query.bindparams(bindparam("ids", expanding=True))
    rows = [
        (account_id, stage, orjson.loads(values) if values else [])
        for account_id, stage, values in connection.execute(query, params)
    ]
    kept = rows
    if guards is not None and rows:
        may_act = Prefilter(guards, columns).may_act([r[1] for r in rows], [r[2] for r in rows])
        kept = [row for row, keep in zip(rows, may_act.tolist(), strict=True) if keep]
    found = []
    for account_id, stage, extracted in kept:
        # every map a condition reads is there, empty if need be, as in the full state
        context: dict[str, Any] = {variable: {} for variable, _ in columns}
        if "stage" in fields:
            context["stage"] = stage or ""
        for (variable, name), value in zip(columns, extracted, strict=False):
            if value is None:
                continue
            if name is None:
                context[variable] = value
            else:
                context[variable][name] = value
        found.append((account_id, stage, context))
    return Contexts(len(rows), found)
