"""The model registry: versioned model artifacts and which one serves.

Each registered model is a joblib artifact under the project's ``models/``
directory, named by version and content hash, and a row in the operational
store's ``model_versions`` table. A version moves through

    candidate → shadow → production → retired

(candidate may skip shadow; any live version may be retired). Promoting a
version to production retires the one serving and remembers it, so
:meth:`ModelRegistry.rollback` can restore it. Every status change lands in the
tamper-evident audit log and in ``model_events``.

Artifacts are pickles, and unpickling runs code: :meth:`ModelRegistry.load`
checks the file's sha256 against the hash recorded at registration before it
unpickles anything.
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import orjson
from sqlalchemy import Connection, Engine, Row, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from tenure.errors import ModelError, NotFoundError, StoreError
from tenure.store import append_audit
from tenure.store._tables import model_events, model_versions

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "ModelEvent",
    "ModelRegistry",
    "ModelStatus",
    "ModelVersion",
    "ShadowAgreement",
    "registry_for",
    "shadow_agreement",
]

#: Where a project keeps its model artifacts, relative to the project root.
MODELS_DIRNAME = "models"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REGISTER_ATTEMPTS = 5


class ModelStatus(enum.StrEnum):
    CANDIDATE = "candidate"  # registered, not serving
    SHADOW = "shadow"  # scored alongside production for comparison, never acted on
    PRODUCTION = "production"  # the one version whose scores drive decisions
    RETIRED = "retired"


#: The moves :meth:`ModelRegistry.promote` and :meth:`ModelRegistry.retire` allow.
#: Only a rollback brings a retired version back.
TRANSITIONS: Mapping[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.CANDIDATE: frozenset(
        {ModelStatus.SHADOW, ModelStatus.PRODUCTION, ModelStatus.RETIRED}
    ),
    ModelStatus.SHADOW: frozenset({ModelStatus.PRODUCTION, ModelStatus.RETIRED}),
    ModelStatus.PRODUCTION: frozenset({ModelStatus.RETIRED}),
    ModelStatus.RETIRED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a named model (a row of ``model_versions``)."""

    id: int
    name: str
    version: int
    status: ModelStatus
    artifact_path: str  # relative to the registry's artifacts directory
    artifact_hash: str
    artifact_bytes: int
    created_at: dt.datetime
    created_by: str
    training_start: dt.datetime | None
    training_end: dt.datetime | None
    feature_hashes: dict[str, str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    description: str
    promoted_at: dt.datetime | None
    retired_at: dt.datetime | None
    previous_production_id: int | None

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """One status change of a model version."""

    model_version_id: int
    action: str  # register | promote | retire | rollback
    from_status: ModelStatus | None
    to_status: ModelStatus
    at: dt.datetime
    actor: str


def _json(value: Mapping[str, Any], field: str) -> str:
    try:
        return orjson.dumps(dict(value), option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as error:
        raise ModelError(
            f"{field} must be JSON-serialisable (str keys; numbers, strings, lists, dicts): {error}"
        ) from None


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        id=int(row.id),
        name=row.name,
        version=int(row.version),
        status=ModelStatus(row.status),
        artifact_path=row.artifact_path,
        artifact_hash=row.artifact_hash,
        artifact_bytes=int(row.artifact_bytes),
        created_at=row.created_at,
        created_by=row.created_by,
        training_start=row.training_start,
        training_end=row.training_end,
        feature_hashes=orjson.loads(row.feature_hashes),
        metrics=orjson.loads(row.metrics),
        params=orjson.loads(row.params),
        description=row.description,
        promoted_at=row.promoted_at,
        retired_at=row.retired_at,
        previous_production_id=(
            None if row.previous_production_id is None else int(row.previous_production_id)
        ),
    )


def _lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, stable for *name*."""
    digest = hashlib.sha256(f"tenure.model_versions:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write *data* so that *path* either does not exist or holds all of it, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    # the rename itself is durable only once the directory entry is synced
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ModelRegistry:
    """Registers model versions, moves them between statuses and loads them back.

    *artifacts_dir* holds the joblib files; *clock* stamps every change (pass a
    fixed one in tests and as-of runs). Loaded models are cached by content
    hash, so loading the serving model per batch costs one unpickle.
    """

    def __init__(
        self, engine: Engine, artifacts_dir: Path, *, clock: Callable[[], dt.datetime]
    ) -> None:
        self.engine = engine
        self.artifacts_dir = Path(artifacts_dir)
        self.clock = clock
        self._cache: dict[str, object] = {}

    # ------------------------------------------------------------ register
    def register(
        self,
        name: str,
        model: object,
        *,
        training_start: dt.datetime | None = None,
        training_end: dt.datetime | None = None,
        feature_hashes: Mapping[str, str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        description: str = "",
        actor: str = "system",
    ) -> ModelVersion:
        """Store *model* as the next version of *name*, with status candidate."""
        if not _NAME.fullmatch(name):
            raise ModelError(
                f"model name {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-',"
                " starting with a letter or digit (it names a directory)"
            )
        if training_start and training_end and training_start > training_end:
            raise ModelError(
                f"training_start {training_start.isoformat()} is after "
                f"training_end {training_end.isoformat()}"
            )
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        values = {
            "name": name,
            "status": ModelStatus.CANDIDATE.value,
            "artifact_hash": digest,
            "artifact_bytes": len(data),
            "created_by": actor,
            "training_start": training_start,
            "training_end": training_end,
            "feature_hashes": _json(feature_hashes or {}, "feature_hashes"),
            "metrics": _json(metrics or {}, "metrics"),
            "params": _json(params or {}, "params"),
            "description": description,
        }
        # Should two registrations of one name still pick the same next version,
        # the unique (name, version) constraint turns the loser into a retry.
        for _ in range(_REGISTER_ATTEMPTS):
            try:
                return self._insert_version(values, data)
            except IntegrityError:
                continue
        raise StoreError(
            f"could not register {name}: {_REGISTER_ATTEMPTS} attempts collided with "
            "concurrent registrations of the same name",
            hint="retry; if it persists, look for a process registering in a loop",
        )

    def _insert_version(self, values: dict[str, Any], data: bytes) -> ModelVersion:
        name = values["name"]
        at = self.clock()
        path: Path | None = None
        existed = True
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Serialize registrations of one name (until commit), so they queue
                    # instead of colliding; SQLite already has a single writer.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)}
                    )
                latest = connection.execute(
                    select(func.max(model_versions.c.version)).where(model_versions.c.name == name)
                ).scalar_one()
                version = int(latest or 0) + 1
                relative = f"{name}/{version}-{values['artifact_hash'][:12]}.joblib"
                path = self.artifacts_dir / relative
                existed = path.exists()
                row_id = connection.execute(
                    insert(model_versions)
                    .values(**values, version=version, artifact_path=relative, created_at=at)
                    .returning(model_versions.c.id)
                ).scalar_one()
                # written before the commit: a committed row always has its file
                _write_atomically(path, data)
                self._record(
                    connection,
                    row_id,
                    f"{name} v{version}",
                    action="register",
                    from_status=None,
                    to_status=ModelStatus.CANDIDATE,
                    at=at,
                    actor=values["created_by"],
                    detail={"artifact_hash": values["artifact_hash"]},
                )
                row = connection.execute(
                    select(model_versions).where(model_versions.c.id == row_id)
                ).one()
        except BaseException:
            if path is not None and not existed:  # a file for a version we did not get
                path.unlink(missing_ok=True)
            raise
        return _version(row)

    # ------------------------------------------------------------- queries
    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of *name*, if given), by name and version."""
        query = select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
        if name is not None:
            query = query.where(model_versions.c.name == name)
        with self.engine.connect() as connection:
            return [_version(row) for row in connection.execute(query)]

    def get(self, name: str, version: int) -> ModelVersion:
        with self.engine.connect() as connection:
            return self._get(connection, name, version)

    def _get(
        self, connection: Connection, name: str, version: int, *, lock: bool = False
    ) -> ModelVersion:
        query = select(model_versions).where(
            model_versions.c.name == name, model_versions.c.version == version
        )
        row = connection.execute(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            known = connection.execute(
                select(model_versions.c.version)
                .where(model_versions.c.name == name)
                .order_by(model_versions.c.version)
            ).scalars()
            versions = ", ".join(str(v) for v in known)
            raise NotFoundError(
                f"no model {name!r} version {version}"
                + (f"; {name!r} has versions {versions}" if versions else f"; no {name!r} at all"),
                hint="`tenure models list` shows the registered versions",
            )
        return _version(row)

    def production(self, name: str) -> ModelVersion | None:
        """The version of *name* that serves, or None."""
        with self.engine.connect() as connection:
            return self._production(connection, name)

    def _production(
        self, connection: Connection, name: str, *, lock: bool = False
    ) -> ModelVersion | None:
        query = select(model_versions).where(
            model_versions.c.name == name,
            model_versions.c.status == ModelStatus.PRODUCTION.value,
        )
        row = connection.execute(query.with_for_update() if lock else query).one_or_none()
        return None if row is None else _version(row)

    def shadows(self, name: str) -> builtins.list[ModelVersion]:
        """The versions of *name* in shadow, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(model_versions)
                .where(
                    model_versions.c.name == name,
                    model_versions.c.status == ModelStatus.SHADOW.value,
                )
                .order_by(model_versions.c.version)
            )
            return [_version(row) for row in rows]

    def history(self, name: str, version: int) -> builtins.list[ModelEvent]:
        """The status changes of one version, oldest first."""
        with self.engine.connect() as connection:
            target = self._get(connection, name, version)
            rows = connection.execute(
                select(model_events)
                .where(model_events.c.model_version_id == target.id)
                .order_by(model_events.c.id)
            )
            return [
                ModelEvent(
                    model_version_id=int(row.model_version_id),
                    action=row.action,
                    from_status=None if row.from_status is None else ModelStatus(row.from_status),
                    to_status=ModelStatus(row.to_status),
                    at=row.at,
                    actor=row.actor,
                )
                for row in rows
            ]

    # ---------------------------------------------------------------- load
    def artifact_file(self, version: ModelVersion) -> Path:
        return self.artifacts_dir / version.artifact_path

    def load(self, version: ModelVersion) -> object:
        """The model of *version*, after checking its artifact is the one registered."""
        if version.artifact_hash in self._cache:
            return self._cache[version.artifact_hash]
        path = self.artifact_file(version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"the artifact of {version.label} is missing: {path}",
                hint="restore the models directory from backup, or register the model again",
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != version.artifact_hash:
            raise StoreError(
                f"the artifact of {version.label} at {path} has sha256 {digest}, but "
                f"{version.artifact_hash} was registered; it changed after registration, "
                "so it is not unpickled",
                hint="restore the file from backup, or retire this version and register "
                "the model again",
            )
        model: object = joblib.load(io.BytesIO(data))
        self._cache[version.artifact_hash] = model
        return model

    # ------------------------------------------------------- status changes
    def promote(
        self,
        name: str,
        version: int,
        *,
        to: ModelStatus | str = ModelStatus.PRODUCTION,
        actor: str,
    ) -> ModelVersion:
        """Move a version to shadow or production; production retires the one serving."""
        target_status = ModelStatus(to) if to in set(ModelStatus) else None
        if target_status not in (ModelStatus.SHADOW, ModelStatus.PRODUCTION):
            raise ModelError(
                f"promote moves a version to shadow or production, not {str(to)!r}",
                hint="use retire() (`tenure models retire`) to retire a version",
            )
        at = self.clock()
        with self.engine.begin() as connection:
            target = self._get(connection, name, version, lock=True)
            self._check_transition(target, target_status)
            current = None
            if target_status is ModelStatus.PRODUCTION:
                current = self._production(connection, name, lock=True)
                if current is not None:
                    self._set_status(
                        connection,
                        current,
                        ModelStatus.RETIRED,
                        at,
                        actor,
                        "model.retire",
                        detail={"replaced_by_version": target.version},
                    )
            self._set_status(
                connection,
                target,
                target_status,
                at,
                actor,
                "model.promote",
                previous=current,
                detail={"replaced_version": None if current is None else current.version},
            )
        return self.get(name, version)

    def retire(self, name: str, version: int, *, actor: str) -> ModelVersion:
        """Retire a version; retiring the production version leaves none serving."""
        at = self.clock()
        with self.engine.begin() as connection:
            target = self._get(connection, name, version, lock=True)
            self._check_transition(target, ModelStatus.RETIRED)
            self._set_status(connection, target, ModelStatus.RETIRED, at, actor, "model.retire")
        return self.get(name, version)

    def rollback(self, name: str, *, actor: str) -> ModelVersion:
        """Retire the production version of *name* and restore the one it replaced."""
        at = self.clock()
        with self.engine.begin() as connection:
            current = self._production(connection, name, lock=True)
            if current is None:
                raise ModelError(
                    f"{name!r} has no production version to roll back",
                    hint="`tenure models list --name NAME` shows its versions",
                )
            if current.previous_production_id is None:
                raise ModelError(
                    f"{current.label} is in production but replaced no earlier production "
                    "version, so there is nothing to roll back to",
                    hint="promote another version, or retire this one",
                )
            previous = _version(
                connection.execute(
                    select(model_versions)
                    .where(model_versions.c.id == current.previous_production_id)
                    .with_for_update()
                ).one()
            )
            self._set_status(connection, current, ModelStatus.RETIRED, at, actor, "model.rollback")
            self._set_status(
                connection,
                previous,
                ModelStatus.PRODUCTION,
                at,
                actor,
                "model.rollback",
                detail={"replaced_version": current.version},
            )
        return self.get(name, previous.version)

    @staticmethod
    def _check_transition(target: ModelVersion, to: ModelStatus) -> None:
        allowed = TRANSITIONS[target.status]
        if to in allowed:
            return
        options = ", ".join(sorted(s.value for s in allowed)) or "none (only a rollback)"
        raise ModelError(
            f"cannot move {target.label} from {target.status.value} to {to.value}; "
            f"allowed from {target.status.value}: {options}",
            hint="register the model again to get a new candidate version"
            if target.status is ModelStatus.RETIRED
            else None,
        )

    def _set_status(
        self,
        connection: Connection,
        target: ModelVersion,
        to: ModelStatus,
        at: dt.datetime,
        actor: str,
        action: str,
        *,
        previous: ModelVersion | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": to.value}
        if to is ModelStatus.PRODUCTION:
            values.update(promoted_at=at, retired_at=None)
            if previous is not None:
                values["previous_production_id"] = previous.id
        elif to is ModelStatus.SHADOW:
            values["promoted_at"] = at
        elif to is ModelStatus.RETIRED:
            values["retired_at"] = at
        connection.execute(
            update(model_versions).where(model_versions.c.id == target.id).values(values)
        )
        self._record(
            connection,
            target.id,
            target.label,
            action=action.removeprefix("model."),
            from_status=target.status,
            to_status=to,
            at=at,
            actor=actor,
            detail=detail or {},
        )

    @staticmethod
    def _record(
        connection: Connection,
        version_id: int,
        label: str,
        *,
        action: str,
        from_status: ModelStatus | None,
        to_status: ModelStatus,
        at: dt.datetime,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        connection.execute(
            insert(model_events).values(
                model_version_id=version_id,
                action=action,
                from_status=None if from_status is None else from_status.value,
                to_status=to_status.value,
                at=at,
                actor=actor,
            )
        )
        append_audit(
            connection,
            at=at,
            actor=actor,
            action=f"model.{action}",
            target=label,
            detail={
                **detail,
                "from": None if from_status is None else from_status.value,
                "to": to_status.value,
            },
        )


def registry_for(project: Project) -> ModelRegistry:
    """The registry of *project*: its store, ``<project root>/models/`` and its clock."""
    return ModelRegistry(project.store, project.root / MODELS_DIRNAME, clock=project.clock)


# ----------------------------------------------------------------- shadow
@dataclass(frozen=True, slots=True)
class ShadowAgreement:
    """How closely a shadow model's scores follow production's on the same rows."""

    n: int
    spearman: float  # rank correlation; nan when either side is constant
    mean_abs_diff: float
    top_fraction: float
    top_overlap: float  # share of production's top rows that are also shadow's top rows


def shadow_agreement(
    production_scores: Sequence[float] | np.ndarray[Any, Any],
    shadow_scores: Sequence[float] | np.ndarray[Any, Any],
    top_fraction: float = 0.1,
) -> ShadowAgreement:
    """Compare two models' scores (e.g. churn probabilities) of the same rows, in order."""
    from scipy.stats import spearmanr

    p = np.asarray(production_scores, dtype=float)
    s = np.asarray(shadow_scores, dtype=float)
    if p.ndim != 1 or s.ndim != 1 or len(p) != len(s):
        raise ModelError(
            f"production_scores and shadow_scores must be 1-d and of one length; got shapes "
            f"{p.shape} and {s.shape}"
        )
    if len(p) < 2:
        raise ModelError(f"shadow_agreement needs at least 2 scored rows, got {len(p)}")
    for label, values in (("production_scores", p), ("shadow_scores", s)):
        if not np.isfinite(values).all():
            raise ModelError(
                f"{label} has {int((~np.isfinite(values)).sum())} missing or infinite values; "
                "score the same rows with both models"
            )
    if not 0 < top_fraction <= 1:
        raise ModelError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
    constant = np.ptp(p) == 0 or np.ptp(s) == 0
    rho = math.nan if constant else float(spearmanr(p, s).statistic)
    k = max(1, math.ceil(len(p) * top_fraction))
    # stable sorts, so ties keep row order and the result is deterministic
    top_p = set(np.argsort(-p, kind="stable")[:k].tolist())
    top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
    return ShadowAgreement(
        n=len(p),
        spearman=rho,
        mean_abs_diff=float(np.mean(np.abs(p - s))),
        top_fraction=top_fraction,
        top_overlap=len(top_p & top_s) / k,
    )
