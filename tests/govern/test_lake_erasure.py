"""The batch erasure step on a real project: lake, snapshots, warehouse, suppression, crashes.

Two people of one account are ingested (Segment events and a HubSpot export)
and stitched; one is erased through :func:`erase`, naming only her email, and
the batch step finds the rest of her through the identity graph.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest
from sqlalchemy import select

from tenure.collect import ingest
from tenure.collect._http import CollectedEvent
from tenure.collect._inbox import load_inbox
from tenure.collect._inbox import write_events as write_inbox
from tenure.collect._suppress import erasure_key
from tenure.features import FeatureEntity, build_features, project_features
from tenure.govern._erased import Erased
from tenure.govern.erasure import erase
from tenure.govern.lake_erasure import apply_erasures, pending_erasures
from tenure.govern.pii import Pseudonymizer
from tenure.govern.secrets import project_secret
from tenure.identity import find_profile, stitch
from tenure.project import Project
from tenure.store import read_audit, verify_audit_chain
from tenure.store._erasures import (
    ErasureKey,
    LakeStatus,
    add_erasure_request,
    add_suppressions,
    finish_erasure_request,
    get_erasure_request,
    list_erasure_requests,
    suppression_hashes,
)
from tenure.store._tables import erasure_requests, quarantine
from tenure.warehouse import SwapPhase
from tests.conftest import fixed_clock, make_project
from tests.govern._people import (
    DEE_ANON,
    DEE_EMAIL,
    DEE_HUBSPOT,
    DEE_STRIPE,
    DEE_USER,
    DEE_VALUES,
    KIM_EMAIL,
    KIM_USER,
    dee_events,
    kim_events,
    write_contacts,
    write_events,
)

NOW = dt.datetime(2024, 4, 1, 12, 0, tzinfo=dt.UTC)
DEE_IDS = {e["messageId"] for e in dee_events()}
KIM_IDS = {e["messageId"] for e in kim_events()}


def _masker(project: Project) -> Pseudonymizer:
    env = project.config.serve.pseudonym_secret_env
    return Pseudonymizer(project_secret(project.root, "pseudonym", env))


def _lake_rows(project: Project, kind: str = "events") -> list[dict[str, object]]:
    """Every row of the lake's registered files of *kind*, read straight from the Parquet."""
    files = [
        str(project.lake.root / path)
        for path, k in project.index.file_kinds().items()
        if k == kind or (kind == "snapshot" and k.startswith("snapshot:"))
    ]
    if not files:
        return []
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false)",
            [files],
        ).fetch_arrow_table()
    return rows.to_pylist()


def _on_disk(project: Project) -> dict[str, str]:
    """Every Parquet file under the lake (registered or not), with a hash of its bytes."""
    return {
        str(p.relative_to(project.lake.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(project.lake.root.rglob("*.parquet"))
    }


def _assert_no_trace_of_dee(project: Project) -> None:
    for kind in ("events", "snapshot"):
        for row in _lake_rows(project, kind):
            text = orjson.dumps(row, default=str).decode().lower()
            for value in DEE_VALUES:
                assert value.lower() not in text, (kind, value, row)
    # features, and files a crash left aside: every Parquet file under the lake
    for path in project.lake.root.rglob("*.parquet"):
        text = orjson.dumps(duckdb.sql(f"SELECT * FROM '{path}'").fetchall(), default=str)
        assert not any(v.lower() in text.decode().lower() for v in DEE_VALUES)


def _loaded_project(tmp_path: Path, store_url: str) -> tuple[Project, list[Path]]:
    project = make_project(tmp_path / "proj", store_url, fixed_clock(NOW))
    inputs = [
        write_events(tmp_path / "events.jsonl"),
        write_contacts(tmp_path / "hubspot_contacts.csv"),
    ]
    report = ingest(project, inputs)
    assert (report.loaded, report.quarantined) == (len(DEE_IDS) + len(KIM_IDS) + 2, 0)
    stitch(project)
    build_features(
        project.warehouse, project_features(project), as_of=NOW, entity=FeatureEntity.PERSON
    )
    return project, inputs


def _erase_dee(project: Project) -> str:
    with project.store.begin() as connection:
        report = erase(
            connection, f"email:{DEE_EMAIL.upper()}", masker=_masker(project), at=NOW,
            actor="test", key=erasure_key(project),
        )  # fmt: skip
    assert report.lake is LakeStatus.PENDING
    return report.request_id


@pytest.fixture
def loaded(tmp_path: Path, store_url: str) -> tuple[Project, list[Path]]:
    project, inputs = _loaded_project(tmp_path, store_url)
    yield project, inputs
    project.close()


def test_the_batch_step_erases_one_person_and_keeps_the_other(
    loaded: tuple[Project, list[Path]],
) -> None:
    project, inputs = loaded
    dee_profile = find_profile(project.warehouse, DEE_USER).profile_id
    kim_profile = find_profile(project.warehouse, KIM_USER).profile_id
    events_before = project.index.event_count()
    request_id = _erase_dee(project)
    with project.store.connect() as connection:
        pending = get_erasure_request(connection, request_id)
    assert pending.lake_status is LakeStatus.PENDING
    assert pending.identifiers == (f"email:{DEE_EMAIL}",)

    report = apply_erasures(project, actor="nightly")

    assert report.requests == (request_id,)
    assert (report.events_removed, report.events_redacted) == (len(DEE_IDS) + 1, 1)
    assert (report.snapshot_rows_removed, report.profiles) == (1, 1)
    # the lake: nothing of Dee in any event, snapshot or feature file, text included
    _assert_no_trace_of_dee(project)
    events = {r["message_id"]: r for r in _lake_rows(project)}
    kim_hubspot = {i for i in events if i not in KIM_IDS}
    assert len(kim_hubspot) == 1  # Kim's export row's identify; all of Kim's events are left
    assert set(events) - kim_hubspot == KIM_IDS
    invite = orjson.loads(str(events["kim-t1"]["properties"]))
    assert invite["invitee_email"] == _masker(project).pseudonym(DEE_EMAIL)
    assert [r["email"] for r in _lake_rows(project, "snapshot")] == ["kim@acme.example"]
    # message ids stay seen: a re-ingest finds Dee's events known (and suppresses them first)
    assert project.index.event_count() == events_before
    # the warehouse
    warehouse = project.warehouse
    nodes = warehouse.backend.to_pyarrow(warehouse.table("identity_nodes")).to_pylist()
    assert not [n for n in nodes if "dee" in n["identifier"].lower()]
    assert not [n for n in nodes if DEE_STRIPE in n["identifier"]]
    for table, column in (
        ("profiles", "profile_id"),
        ("account_memberships", "profile_id"),
        ("features_person", "entity_id"),
    ):
        ids = warehouse.backend.to_pyarrow(warehouse.table(table)).column(column).to_pylist()
        assert dee_profile not in ids, table
        assert kim_profile in ids, table
    edges = warehouse.backend.to_pyarrow(warehouse.table("graph_edges")).to_pylist()
    assert not [e for e in edges if dee_profile in (e["src_id"], e["dst_id"])]
    # the request: done, identifiers gone, the audit log says so by request id
    with project.store.connect() as connection:
        done = get_erasure_request(connection, request_id)
        raw = connection.execute(select(erasure_requests.c.identifiers)).scalar_one()
        [entry] = read_audit(connection, action="erasure.lake")
        assert verify_audit_chain(connection) is None
    assert (done.lake_status, done.lake_done_at, done.identifiers, raw) == (
        LakeStatus.DONE, NOW, (), None,
    )  # fmt: skip
    assert done.result["events_removed"] == len(DEE_IDS) + 1
    assert (entry.actor, entry.target) == ("nightly", f"erasure:{request_id}")
    assert DEE_EMAIL not in orjson.dumps(entry.detail).decode()

    # re-ingesting the original files loads nothing of Dee's
    again = ingest(project, inputs)
    assert (again.loaded, again.suppressed, again.quarantined) == (0, len(DEE_IDS) + 1, 0)
    # new events naming her, valid or not, are dropped, not quarantined
    fresh = project.root / "fresh.jsonl"
    fresh.write_bytes(
        b"\n".join(
            orjson.dumps(e)
            for e in [
                {"type": "track", "userId": DEE_USER, "event": "Feature Used",
                 "messageId": "dee-new", "timestamp": "2024-03-20T10:00:00Z"},
                {"type": "track", "anonymousId": DEE_ANON, "event": "Feature Used",
                 "messageId": "dee-bad", "timestamp": "not a time"},
                {"type": "track", "userId": KIM_USER, "event": "Feature Used",
                 "messageId": "kim-new", "timestamp": "2024-03-20T10:00:00Z",
                 "properties": {"feature": "billing"}},
            ]
        )
    )  # fmt: skip
    later = ingest(project, [fresh])
    assert (later.loaded, later.suppressed, later.quarantined) == (1, 2, 0)
    # the same from a Segment Parquet file (its reader hands candidates over as a view)
    fresh_parquet = project.root / "fresh.parquet"
    duckdb.sql(
        f"COPY (SELECT * REPLACE ('pq-' || messageId AS messageId) FROM read_json('{fresh}')) "
        f"TO '{fresh_parquet}' (FORMAT parquet)"
    )
    later = ingest(project, [fresh_parquet])
    assert (later.loaded, later.suppressed, later.quarantined) == (1, 2, 0)
    # and through the HTTP inbox's loader
    with project.store.begin() as connection:
        event = {"type": "identify", "userId": "someone-new", "messageId": "dee-http",
                 "traits": {"email": DEE_EMAIL.title()},
                 "timestamp": "2024-03-21T10:00:00Z"}  # fmt: skip
        write_inbox(connection, [("k1", [CollectedEvent("dee-http", orjson.dumps(event))])], NOW)
    loaded = load_inbox(project)
    assert loaded is not None
    assert (loaded.loaded, loaded.suppressed) == (0, 1)
    with project.store.connect() as connection:
        assert connection.execute(select(quarantine)).all() == []
    _assert_no_trace_of_dee(project)

    # the next pipeline run does not bring her back, and a second step changes nothing
    stitch(project)
    build_features(
        project.warehouse, project_features(project), as_of=NOW, entity=FeatureEntity.PERSON
    )
    profiles = warehouse.backend.to_pyarrow(warehouse.table("profiles")).to_pylist()
    assert not [p for p in profiles if DEE_EMAIL in p["emails"] or DEE_USER in p["user_ids"]]
    files = _on_disk(project)
    counts = warehouse.table_counts()
    assert apply_erasures(project).requests == ()
    assert (_on_disk(project), warehouse.table_counts()) == (files, counts)


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from tenure.govern.lake_erasure import apply_erasures
    from tenure.project import Project

    def stop(phase):
        if phase.value == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a crash

    apply_erasures(Project(Path(sys.argv[1])), checkpoint=stop)
    """
)


@pytest.mark.parametrize("phase", [SwapPhase.PUBLISHED, SwapPhase.REGISTERED])
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_crash_in_the_rewrite_leaves_old_or_new_files_and_a_rerun_finishes(
    loaded: tuple[Project, list[Path]], phase: SwapPhase
) -> None:
    project, _ = loaded
    request_id = _erase_dee(project)
    kim_before = sorted(
        (r["message_id"], r["timestamp"]) for r in _lake_rows(project) if r["user_id"] == KIM_USER
    )
    registered_before = set(project.index.registered_files())
    project.close()  # the step runs in another process, which is killed mid-way
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH, str(project.root), phase.value],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()

    project.index.recover()
    registered = set(project.index.registered_files())
    on_disk = {p for p in _on_disk(project) if p.startswith(("events/", "snapshots/"))}
    assert on_disk == registered  # never both sets, never a half one
    if phase is SwapPhase.PUBLISHED:
        assert registered == registered_before  # the old set: Dee still there
        assert DEE_IDS & {r["message_id"] for r in _lake_rows(project)}
    else:
        assert registered != registered_before  # the new set: the superseded files deleted
        assert not DEE_IDS & {r["message_id"] for r in _lake_rows(project)}
    assert [r.id for r in pending_erasures(project)] == [request_id]

    apply_erasures(project)
    _assert_no_trace_of_dee(project)
    kim_after = sorted(
        (r["message_id"], r["timestamp"]) for r in _lake_rows(project) if r["user_id"] == KIM_USER
    )
    assert kim_after == kim_before
    assert pending_erasures(project) == []


def test_requests_and_the_suppression_list_in_the_store(project: Project) -> None:
    key = ErasureKey(b"k" * 32)
    assert key.hash("user_id:u1") == hashlib.sha256(b"k" * 32 + b"\x1fuser_id:u1").hexdigest()
    with project.store.begin() as connection:
        for n, request_id in enumerate(("er_a", "er_b")):
            add_erasure_request(
                connection, request_id=request_id, at=NOW + dt.timedelta(minutes=n), actor="t",
                identifier_hash=key.hash("email:a@x.com"),
                identifiers=["user_id:u1", "email:a@x.com"],
            )  # fmt: skip
        assert add_suppressions(connection, "er_a", [key.hash("user_id:u1")] * 2, NOW) == 1
        assert add_suppressions(connection, "er_b", [key.hash("user_id:u1")], NOW) == 0
        assert finish_erasure_request(connection, "er_a", at=NOW, result={"events_removed": 3})
        assert not finish_erasure_request(connection, "er_a", at=NOW, result={})
    with project.store.connect() as connection:
        assert suppression_hashes(connection) == [key.hash("user_id:u1")]
        [waiting] = list_erasure_requests(connection, status=LakeStatus.PENDING)
        assert (waiting.id, waiting.identifiers) == ("er_b", ("email:a@x.com", "user_id:u1"))
        done = get_erasure_request(connection, "er_a")
        assert (done.lake_status, done.identifiers, done.result) == (
            LakeStatus.DONE, (), {"events_removed": 3},
        )  # fmt: skip
        with pytest.raises(LookupError, match="no erasure request with id 'er_zz'"):
            get_erasure_request(connection, "er_zz")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_cli_lists_and_applies_requests(loaded: tuple[Project, list[Path]]) -> None:
    from typer.testing import CliRunner

    from tenure.cli import app

    project, _ = loaded
    request_id = _erase_dee(project)
    project.close()
    runner = CliRunner()
    root = str(project.root)
    listed = runner.invoke(app, ["erasures", "list", "-p", root, "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = orjson.loads(listed.stdout)
    assert (row["id"], row["lake"]) == (request_id, "pending")
    assert DEE_EMAIL not in listed.stdout
    stitched = runner.invoke(app, ["identity", "stitch", "-p", root, "--json"])
    assert stitched.exit_code == 0, stitched.output
    assert orjson.loads(stitched.stdout)["erasures"]["requests"] == [request_id]
    again = runner.invoke(app, ["erasures", "apply", "-p", root])
    assert again.stdout.strip() == "erasures: none pending"
    done = runner.invoke(app, ["erasures", "list", "--status", "done", "-p", root, "--json"])
    assert [r["id"] for r in orjson.loads(done.stdout)] == [request_id]
    wrong = runner.invoke(app, ["erasures", "list", "--status", "nope", "-p", root])
    assert wrong.exit_code == 1


def _dee_by_record_id() -> Erased:
    """Dee as the batch step resolves her, with her HubSpot record id (a short number)."""
    return Erased(
        identifiers=frozenset(
            {f"external_id:hubspot_contact_id:{DEE_HUBSPOT}", f"user_id:{DEE_USER}",
             f"email:{DEE_EMAIL}"}
        ),
        profiles=frozenset(),
        emails=frozenset({DEE_EMAIL}),
    )  # fmt: skip


def test_snapshot_rows_match_ids_only_in_person_columns_and_emails_anywhere() -> None:
    from tenure.collect._tabular import builtin_mappings
    from tenure.govern._lake_rewrite import _erased_rows, person_columns

    columns = person_columns(builtin_mappings().values())
    # HubSpot contacts: the email and the contact's record id; never the company ids
    assert columns["contacts"] >= {"email", "record_id"}
    assert "associated_company_ids_primary" not in columns["contacts"]
    dee = _dee_by_record_id()
    table = pa.table(
        {
            "record_id": [DEE_HUBSPOT, "5252", "5353", "5454"],
            "email": ["", KIM_EMAIL, "lou@acme.example", "ann@acme.example"],
            # Lou's phone extension happens to be Dee's record id; Ann's notes name Dee's email
            "phone_number": ["", "", DEE_HUBSPOT, ""],
            "notes": ["", "", "", f"cc {DEE_EMAIL.upper()}"],
        }
    )
    hit = _erased_rows(table, dee, columns["contacts"]).to_pylist()
    assert hit == [True, False, False, True]
    # for an entity no known mapping writes, every cell is compared
    assert _erased_rows(table, dee).to_pylist() == [True, False, True, True]


def test_store_leftovers_go_by_her_user_ids_and_emails_not_her_short_record_ids(
    tmp_path: Path,
) -> None:
    from tenure.collect import ReasonCode
    from tenure.govern._warehouse_erasure import erase_store_leftovers
    from tenure.store import NewQuarantined, add_quarantined, start_run

    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 's.db'}")
    dee = _dee_by_record_id()
    raws = {
        1: orjson.dumps({"userId": DEE_USER, "type": "track", "timestamp": "never"}),
        2: orjson.dumps({"userId": KIM_USER, "type": "track", "properties": {"ext": DEE_HUBSPOT}}),
        3: orjson.dumps({"userId": "lou", "type": "track", "properties": {"cc": DEE_EMAIL}}),
    }
    with project.store.begin() as connection:
        start_run(connection, "r1", NOW, ["in.jsonl"])
        records = [
            NewQuarantined("segment", "in.jsonl", n, raw.decode(), ReasonCode.BAD_TIMESTAMP, "x")
            for n, raw in raws.items()
        ]
        add_quarantined(connection, "r1", NOW, records)
        deleted, _ = erase_store_leftovers(connection, dee, _masker(project))
        kept = connection.execute(select(quarantine.c.record_number)).scalars().all()
    # hers by user id, and the one naming her email; Kim's, which only holds a value
    # equal to her record id, stays
    assert (deleted, sorted(kept)) == (2, [2])
    project.close()
