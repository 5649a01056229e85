from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text, update

from tenure.errors import NotFoundError, StoreError
from tenure.store import (
    NewQuarantined,
    QuarantineStatus,
    add_quarantined,
    append_audit,
    create_store_engine,
    current_revision,
    get_quarantined,
    head_revision,
    is_current,
    list_quarantined,
    metadata,
    quarantine_counts,
    read_audit,
    resolve_quarantined,
    upgrade,
    verify_audit_chain,
)
from tenure.store._tables import audit_log

AT = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(store_url: str) -> Engine:
    engine = create_store_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_migrations_reach_head_and_are_idempotent(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == "0006"
    upgrade(engine)  # a second run is a no-op
    assert is_current(engine)


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    engine.dispose()


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="tenure supports sqlite and postgresql"):
        create_store_engine("mysql://localhost/x")


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="timezone-aware"), engine.begin() as connection:
        append_audit(connection, at=dt.datetime(2024, 1, 1), actor="a", action="x", target="t")


def _record(n: int, raw: str = "{}") -> NewQuarantined:
    return NewQuarantined("segment", "/in/events.jsonl", n, raw, "bad_timestamp", "no timestamp")


def test_quarantine_round_trip_and_dedupe(engine: Engine) -> None:
    with engine.begin() as connection:
        assert add_quarantined(connection, "run1", AT, [_record(1), _record(2, '{"a":1}')]) == 2
        # the same records from a re-ingest of the same file are not added again
        assert add_quarantined(connection, "run2", AT, [_record(1), _record(3)]) == 1
    with engine.connect() as connection:
        records = list_quarantined(connection)
        assert [(r.record_number, r.run_id) for r in records] == [
            (1, "run1"),
            (2, "run1"),
            (3, "run2"),
        ]
        assert records[1].raw == '{"a":1}'
        assert records[0].created_at == AT
        assert quarantine_counts(connection) == {"bad_timestamp": 3}
    with engine.begin() as connection:
        resolve_quarantined(connection, [records[0].id], QuarantineStatus.LOADED, AT, "run3")
    with engine.connect() as connection:
        assert get_quarantined(connection, records[0].id).status is QuarantineStatus.LOADED
        assert len(list_quarantined(connection)) == 2
        assert len(list_quarantined(connection, status=None)) == 3
        with pytest.raises(NotFoundError, match="no quarantined record with id 999"):
            get_quarantined(connection, 999)


def test_audit_chain_detects_tampering(engine: Engine) -> None:
    with engine.begin() as connection:
        for i in range(3):
            append_audit(
                connection,
                at=AT,
                actor="ann",
                action="identity.split",
                target=f"link{i}",
                detail={"reason": "wrong merge", "n": i},
            )
    with engine.connect() as connection:
        entries = read_audit(connection)
        assert [e.target for e in entries] == ["link0", "link1", "link2"]
        assert entries[1].prev_hash == entries[0].hash
        assert entries[2].detail == {"n": 2, "reason": "wrong merge"}
        assert verify_audit_chain(connection) is None
    with engine.begin() as connection:
        connection.execute(
            update(audit_log).where(audit_log.c.id == entries[1].id).values(actor="mallory")
        )
    with engine.connect() as connection:
        assert verify_audit_chain(connection) == entries[1].id


def test_store_is_empty_after_migration(engine: Engine) -> None:
    with engine.connect() as connection:
        for table in ("ingest_runs", "quarantine", "audit_log", "model_versions", "model_events"):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
