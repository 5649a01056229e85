"""The feature set of a project, point-in-time frames, and materialized snapshots."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tenure.errors import ConfigError, ConfigProblem
from tenure.features._attribute import attributed_events
from tenure.features._compile import compile_features, prepare_facts
from tenure.features._definitions import (
    BUILTIN_FEATURES,
    Aggregation,
    FeatureDefinition,
    FeatureEntity,
    definition_hash,
    milestones_feature,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

    # config validates feature definitions, so it imports this package: no cycle at run time
    from tenure.config import FeatureSettings
    from tenure.project import Project
    from tenure.warehouse import Warehouse

__all__ = [
    "FeatureBuild",
    "FeatureSet",
    "build_features",
    "facts",
    "feature_frame",
    "feature_set",
    "features_table",
    "project_features",
]

_ENTITY_COLUMN = {FeatureEntity.ACCOUNT: "account_id", FeatureEntity.PERSON: "profile_id"}
_ENTITY_TABLE = {FeatureEntity.ACCOUNT: "accounts", FeatureEntity.PERSON: "profiles"}


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """The definitions a project computes, validated together."""

    definitions: tuple[FeatureDefinition, ...]

    def for_entity(self, entity: FeatureEntity) -> tuple[FeatureDefinition, ...]:
        return tuple(d for d in self.definitions if d.entity is entity)

    def get(self, name: str) -> FeatureDefinition:
        for definition in self.definitions:
            if definition.name == name:
                return definition
        raise KeyError(name)

    def hashes(self, entity: FeatureEntity | None = None) -> dict[str, str]:
        chosen = self.definitions if entity is None else self.for_entity(entity)
        return {d.name: definition_hash(d) for d in chosen}

    def names(self, entity: FeatureEntity) -> list[str]:
        return [d.name for d in self.for_entity(entity)]


def feature_set(
    settings: FeatureSettings | None = None,
    *,
    milestones: Sequence[str] = (),
    source: str = "tenure.yaml",
) -> FeatureSet:
    """The built-ins minus ``disable`` plus ``define``; every problem reported at once.

    With onboarding *milestones* (``lifecycle.onboarding_milestones``) the built-ins
    include ``milestones_done``.
    """
    if settings is None:
        from tenure.config import FeatureSettings

        settings = FeatureSettings()
    problems: list[ConfigProblem] = []
    builtins = [*BUILTIN_FEATURES, *([milestones_feature(list(milestones))] if milestones else [])]
    builtin_names = {d.name for d in builtins}
    for index, name in enumerate(settings.disable):
        if name not in builtin_names:
            problems.append(
                ConfigProblem(f"features.disable[{index}]", "a built-in feature name", name)
            )
    kept = [d for d in builtins if d.name not in set(settings.disable)]
    seen = {d.name for d in kept}
    for index, definition in enumerate(settings.define):
        if definition.name in seen:
            problems.append(
                ConfigProblem(
                    f"features.define[{index}].name",
                    "a name no other feature has (disable the built-in to replace it)",
                    definition.name,
                )
            )
        seen.add(definition.name)
    chosen = [*kept, *settings.define]
    by_name = {d.name: d for d in chosen}
    for index, definition in enumerate(chosen):
        if definition.aggregation is not Aggregation.RATIO:
            continue
        for part in ("numerator", "denominator"):
            ref = getattr(definition, part)
            target = by_name.get(ref)
            if target is None or target.aggregation is Aggregation.RATIO:
                problems.append(
                    ConfigProblem(
                        f"feature {definition.name}.{part}",
                        "the name of a non-ratio feature of the same entity",
                        ref,
                    )
                )
            elif target.entity is not definition.entity:
                problems.append(
                    ConfigProblem(f"feature {definition.name}.{part}", "same entity", ref)
                )
        del index
    if problems:
        raise ConfigError(source, problems, hint="`tenure features` lists the built-ins")
    return FeatureSet(tuple(chosen))


def facts(
    warehouse: Warehouse, entity: FeatureEntity, *, before: dt.datetime | None = None
) -> ir.Table:
    """The attributed events a feature of *entity* reads (``entity_id`` first)."""
    events = attributed_events(warehouse)
    column = _ENTITY_COLUMN[entity]
    events = events.filter(events[column].notnull())
    if before is not None:
        events = events.filter(events.timestamp < before)
    return events.select(
        entity_id=events[column],
        user=events.profile_id,
        event=events.event,
        timestamp=events.timestamp,
        properties=events.properties,
        sentiment=events.sentiment,
    )


def _pairs_table(pairs: pd.DataFrame | ir.Table) -> ir.Table:
    if isinstance(pairs, pd.DataFrame):
        missing = {"entity_id", "cutoff"} - set(pairs.columns)
        if missing:
            raise ValueError(f"pairs need columns entity_id and cutoff; missing {sorted(missing)}")
        frame = pairs[["entity_id", "cutoff"]].copy()
        frame["cutoff"] = pd.to_datetime(frame["cutoff"], utc=True)
        schema = pa.schema([("entity_id", pa.string()), ("cutoff", pa.timestamp("us", tz="UTC"))])
        return ibis.memtable(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    return pairs.select("entity_id", "cutoff")


def feature_frame(
    warehouse: Warehouse,
    pairs: pd.DataFrame | ir.Table,
    features: FeatureSet,
    entity: FeatureEntity = FeatureEntity.ACCOUNT,
) -> pd.DataFrame:
    """Features of each (``entity_id``, ``cutoff``) pair from events before its cutoff.

    A training frame: each row sees only the events strictly before its own
    cutoff, so labels taken after the cutoff cannot leak into the features.
    """
    cutoffs = _pairs_table(pairs)
    definitions = features.for_entity(entity)
    latest = warehouse.backend.execute(cutoffs.cutoff.max())
    prepared = _materialized(warehouse, facts(warehouse, entity, before=latest), definitions)
    expr = compile_features(prepared, cutoffs, definitions)
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(expr).to_pandas()
    return frame.sort_values(["entity_id", "cutoff"], ignore_index=True)


@dataclass(frozen=True, slots=True)
class FeatureBuild:
    """What one materialization wrote."""

    entity: FeatureEntity
    as_of: dt.datetime
    rows: int
    features: int
    table: str
    snapshot: Path
    hashes: dict[str, str]
    seconds: float


def features_table(entity: FeatureEntity) -> str:
    return f"features_{entity.value}"


def build_features(
    warehouse: Warehouse,
    features: FeatureSet,
    *,
    as_of: dt.datetime,
    entity: FeatureEntity = FeatureEntity.ACCOUNT,
) -> FeatureBuild:
    """Materialize *entity*'s features as of *as_of* (events strictly before it).

    Writes the warehouse table ``features_<entity>`` (the latest build) and the
    lake snapshot ``features/<entity>/as_of=<date>/`` with the definitions'
    hashes beside the data. Running it again for the same *as_of* rewrites the
    same snapshot with the same values.
    """
    started = time.perf_counter()
    known = warehouse.table(_ENTITY_TABLE[entity])
    id_column = _ENTITY_COLUMN[entity]
    known = known.filter(known.first_seen < as_of)
    cutoffs = known.select(
        entity_id=known[id_column], cutoff=ibis.literal(as_of, "timestamp('UTC')")
    )
    definitions: Sequence[FeatureDefinition] = features.for_entity(entity)
    prepared = _materialized(warehouse, facts(warehouse, entity, before=as_of), definitions)
    expr = compile_features(prepared, cutoffs, definitions)
    name = features_table(entity)
    warehouse.replace_table(name, expr.rename(as_of="cutoff"))
    table = warehouse.backend.to_pyarrow(warehouse.table(name))
    hashes = features.hashes(entity)
    snapshot = _write_snapshot(warehouse.lake.root, entity, as_of, table, definitions, hashes)
    return FeatureBuild(
        entity=entity,
        as_of=as_of,
        rows=table.num_rows,
        features=len(definitions),
        table=name,
        snapshot=snapshot,
        hashes=hashes,
        seconds=time.perf_counter() - started,
    )


def _materialized(
    warehouse: Warehouse, raw: ir.Table, definitions: Sequence[FeatureDefinition]
) -> ir.Table:
    """The facts the definitions read, parsed once into a session-scoped temp table."""
    name = "_tenure_feature_facts"
    warehouse.backend.create_table(name, prepare_facts(raw, definitions), temp=True, overwrite=True)
    return warehouse.backend.table(name)


def _write_snapshot(
    lake_root: Path,
    entity: FeatureEntity,
    as_of: dt.datetime,
    table: pa.Table,
    definitions: Sequence[FeatureDefinition],
    hashes: dict[str, str],
) -> Path:
    folder = lake_root / "features" / entity.value / f"as_of={as_of.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "entity": entity.value,
        "as_of": as_of.isoformat(),
        "features": [
            {"name": d.name, "hash": hashes[d.name], "definition": d.model_dump(mode="json")}
            for d in definitions
        ],
    }
    _atomic_write(folder / "definitions.json", json.dumps(meta, indent=2).encode())
    tmp = folder / "features.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / "features.parquet")
    return folder


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def project_features(project: Project) -> FeatureSet:
    """The features *project* computes: its ``features`` settings and its milestones."""
    return feature_set(
        project.config.features,
        milestones=project.config.lifecycle.onboarding_milestones,
        source=str(project.config_path),
    )
