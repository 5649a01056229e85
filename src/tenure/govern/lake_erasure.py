"""The batch erasure step: pending erasure requests applied to the lake and the warehouse.

:func:`tenure.govern.erasure.erase` (``POST /v1/erasure``) erases a person from
the operational store and records a request; the lake and the warehouse are
batch-owned, so this step does the rest (``tenure erasures apply``; ``tenure
identity stitch`` runs it first, so a nightly run applies what is pending):

1. the lake index is recovered (a crashed rewrite is finished or undone);
2. identities are stitched up to the lake's newest events, so that the graph
   knows every identifier of the person, and the person is resolved: the
   request's identifiers and every identifier of their profiles
   (:mod:`tenure.govern._erased`); each goes on the suppression list, so
   ingest drops new events carrying it;
3. the lake's event and snapshot files holding them are rewritten, all or
   nothing, and person feature snapshots lose their rows
   (:mod:`tenure.govern._lake_rewrite`); the removed events' message ids stay
   registered as seen;
4. the warehouse's derived tables lose them and identity's published tables
   are rebuilt; quarantined records and loaded inbox rows naming them go
   (:mod:`tenure.govern._warehouse_erasure`);
5. the requests are marked done, their identifiers dropped (the suppression
   list's keyed hashes stay), and the audit log says so, by pseudonym.

Each part is idempotent, so a run that stops anywhere is finished by the next
one: a request is marked done only after everything else is. A second run
with nothing pending changes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tenure.collect._suppress import erasure_key
from tenure.collect._tabular import TabularMapping, builtin_mappings, load_mapping
from tenure.govern._erased import Erased, resolve
from tenure.govern._lake_rewrite import LakeRewrite, person_columns, rewrite_lake
from tenure.govern._warehouse_erasure import erase_store_leftovers, erase_warehouse
from tenure.govern.pii import Pseudonymizer, pseudonym_secret
from tenure.identity._model import RUNS_TABLE
from tenure.identity._stitch import stitch_warehouse
from tenure.store import append_audit
from tenure.store._erasures import (
    ErasureRequest,
    LakeStatus,
    add_suppressions,
    finish_erasure_request,
    list_erasure_requests,
)
from tenure.warehouse import SwapPhase

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = ["LakeErasureReport", "apply_erasures", "pending_erasures"]


@dataclass(frozen=True, slots=True)
class LakeErasureReport:
    """What one run of the batch erasure step did."""

    requests: tuple[str, ...]  # the requests it completed
    identifiers: int = 0  # typed identifiers erased, after the identity graph
    profiles: int = 0  # warehouse profiles that were these people
    events_removed: int = 0
    events_redacted: int = 0  # other people's events that mentioned their email
    event_files: int = 0
    snapshot_rows_removed: int = 0
    snapshot_files: int = 0
    feature_rows_removed: int = 0
    warehouse_rows_removed: dict[str, int] = field(default_factory=dict)
    quarantine_removed: int = 0
    inbox_changed: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """The report as flat counts, as a request's result keeps them."""
        found = {k: v for k, v in asdict(self).items() if isinstance(v, int)}
        found["warehouse_rows_removed"] = sum(self.warehouse_rows_removed.values())
        return found


def pending_erasures(project: Project) -> list[ErasureRequest]:
    with project.store.connect() as connection:
        return list_erasure_requests(connection, status=LakeStatus.PENDING)


def _mappings(project: Project) -> list[TabularMapping]:
    """The built-in mappings and the project's own (its sources), which write its snapshots."""
    own = [load_mapping(s.mapping, project.root) for s in project.config.sources.values()]
    return [*builtin_mappings().values(), *own]


def apply_erasures(
    project: Project,
    *,
    actor: str = "system",
    checkpoint: Callable[[SwapPhase], None] | None = None,
) -> LakeErasureReport:
    """Apply every pending erasure request to the lake and the warehouse (see the module).

    *checkpoint* is called at the points of the lake files' swap
    (:class:`tenure.warehouse.SwapPhase`): progress for a caller, and where a
    crash test stops the process.
    """
    pending = pending_erasures(project)
    if not pending:
        return LakeErasureReport(requests=())
    started = time.perf_counter()
    at = project.clock()
    run_id = f"{at.astimezone(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    masker, key = Pseudonymizer(pseudonym_secret(project)), erasure_key(project)
    project.index.recover()
    warehouse = project.warehouse
    graph = warehouse.has_table(RUNS_TABLE.name)
    if graph:  # the identity graph must know the identifiers of events loaded since
        stitch_warehouse(warehouse, project.config.identity, at=at)
    people = {r.id: resolve(warehouse if graph else None, r.identifiers, masker) for r in pending}
    with project.store.begin() as connection:
        for request_id, person in people.items():
            add_suppressions(connection, request_id, [key.hash(i) for i in person.identifiers], at)
    erased = Erased.union(people.values())
    lake: LakeRewrite = rewrite_lake(
        project.index,
        erased,
        masker,
        run_id=run_id,
        at=at,
        columns=person_columns(_mappings(project)),
        checkpoint=checkpoint,
    )
    removed = erase_warehouse(warehouse, erased, project.config.identity)
    with project.store.begin() as connection:
        quarantined, inbox_changed = erase_store_leftovers(connection, erased, masker)
    report = LakeErasureReport(
        requests=tuple(people),
        identifiers=len(erased.identifiers),
        profiles=len(erased.profiles),
        events_removed=lake.events_removed,
        events_redacted=lake.events_redacted,
        event_files=lake.event_files,
        snapshot_rows_removed=lake.snapshot_rows_removed,
        snapshot_files=lake.snapshot_files,
        feature_rows_removed=lake.feature_rows_removed,
        warehouse_rows_removed=removed,
        quarantine_removed=quarantined,
        inbox_changed=inbox_changed,
        seconds=time.perf_counter() - started,
    )
    done_at = project.clock()
    with project.store.begin() as connection:
        for request_id in people:
            if not finish_erasure_request(
                connection, request_id, at=done_at, result=report.counts()
            ):
                continue
            append_audit(
                connection,
                at=done_at,
                actor=actor,
                action="erasure.lake",
                target=f"erasure:{request_id}",
                detail={"run": run_id, **report.counts()},
            )
    return report
