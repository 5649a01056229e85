from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tenure.collect import ReasonCode, ingest, retry_quarantined
from tenure.errors import IngestError
from tenure.project import Project
from tenure.store import QuarantineStatus, latest_run, list_quarantined

from .conftest import FIXED_NOW, fixed_clock


def event(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messageId": f"m{i}",
        "type": "track",
        "event": "Signed In",
        "userId": f"u{i % 3}",
        "timestamp": f"2024-05-{1 + i % 28:02d}T10:00:00Z",
        "context": {"groupId": "acct-1", "library": {"name": "analytics-python"}},
        "properties": {"plan": "pro"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lake_events(project: Project) -> list[dict[str, Any]]:
    table = project.warehouse.events().order_by("message_id")
    return project.warehouse.backend.to_pyarrow(table).to_pylist()


def test_jsonl_loads_into_month_partitions(sqlite_project: Project, tmp_path: Path) -> None:
    records = [
        event(1),
        event(
            2,
            type="identify",
            event=None,
            userId=None,
            anonymousId="a1",
            traits={"email": "  Ada@Example.COM ", "name": "Ada"},
        ),
        event(3, type="page", event=None, name="Pricing", timestamp="2024-05-03T23:30:00-02:00"),
        event(4, type="group", event=None, groupId="acct-9", traits={"name": "Acme"}),
        event(5, type="alias", event=None, previousId="a1", userId="u5"),
    ]
    report = ingest(sqlite_project, [write_jsonl(tmp_path / "e.jsonl", records)])
    assert (report.loaded, report.duplicates, report.quarantined) == (5, 0, 0)
    assert report.inputs[0].format == "segment-jsonl"
    rows = {r["message_id"]: r for r in lake_events(sqlite_project)}
    assert rows["m2"]["email"] == "ada@example.com"
    assert orjson.loads(rows["m2"]["traits"]) == {"email": "  Ada@Example.COM ", "name": "Ada"}
    assert rows["m3"]["event"] == "Pricing"
    # 23:30 at -02:00 is 01:30 UTC the next day, and that is its date
    assert rows["m3"]["timestamp"] == dt.datetime(2024, 5, 4, 1, 30, tzinfo=dt.UTC)
    assert rows["m3"]["event_date"] == dt.date(2024, 5, 4)
    assert rows["m4"]["group_id"] == "acct-9"
    assert rows["m1"]["group_id"] == "acct-1"  # from context.groupId
    assert rows["m5"]["previous_id"] == "a1"
    assert rows["m1"]["received_at"] == FIXED_NOW
    assert {r["source"] for r in rows.values()} == {"segment"}
    assert {r["ingest_run"] for r in rows.values()} == {report.run_id}
    partitions = sorted(p.name for p in sqlite_project.lake.events_dir.iterdir())
    assert partitions == ["event_month=2024-05"]


def test_both_lake_writers_split_months_at_utc_midnight(
    sqlite_project: Project, tmp_path: Path
) -> None:
    """An event late on 30 April west of UTC is a May event: its file and its date say so,
    whether ingest (DuckDB) or the server's loader (Arrow) writes it."""
    records = [
        event(1, timestamp="2024-04-30T21:00:00-02:00"),
        event(2, timestamp="2024-04-30T23:30:00-02:00"),
        event(3, timestamp="2024-05-02T08:00:00Z"),
    ]
    ingest(sqlite_project, [write_jsonl(tmp_path / "e.jsonl", records)])

    def months_of(files: list[tuple[Path, Path]]) -> dict[str, list[tuple[str, dt.date]]]:
        """{partition: [(message id, event_date)]} of (file, where it is published) pairs."""
        found: dict[str, list[tuple[str, dt.date]]] = {}
        for file, final in files:
            rows = pq.read_table(file, columns=["message_id", "event_date"]).to_pylist()
            found.setdefault(final.parent.name, []).extend(
                (r["message_id"], r["event_date"]) for r in rows
            )
        return {month: sorted(rows) for month, rows in found.items()}

    expected = {
        "event_month=2024-04": [("m1", dt.date(2024, 4, 30))],
        "event_month=2024-05": [("m2", dt.date(2024, 5, 1)), ("m3", dt.date(2024, 5, 2))],
    }
    written = sorted(sqlite_project.lake.events_dir.rglob("*.parquet"))
    assert months_of([(f, f) for f in written]) == expected
    table = pa.Table.from_pylist(lake_rows_for(sqlite_project, tmp_path / "e.jsonl"))
    staged = sqlite_project.lake.stage_events(table.drop_columns(["event_date"]), "arrow")
    assert months_of([(f.staged, f.final) for f in staged]) == expected


def test_reingest_adds_nothing(project: Project, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(50)] + ["{broken"])
    first = ingest(project, [path])
    assert (first.loaded, first.duplicates, first.quarantined) == (50, 0, 1)
    files = sorted(project.lake.events_dir.rglob("*.parquet"))
    second = ingest(project, [path])
    assert (second.loaded, second.duplicates, second.quarantined) == (0, 50, 0)
    assert sorted(project.lake.events_dir.rglob("*.parquet")) == files
    assert project.warehouse.event_count() == 50
    with project.store.connect() as connection:
        assert len(list_quarantined(connection)) == 1
        run = latest_run(connection)
    assert run is not None
    assert run.id == second.run_id
    assert run.status == "succeeded"
    assert (run.loaded, run.duplicates) == (0, 50)


def test_duplicates_within_one_file_keep_the_first(sqlite_project: Project, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [event(1), event(1, event="Signed Out"), event(2)])
    report = ingest(sqlite_project, [path])
    assert (report.loaded, report.duplicates) == (2, 1)
    assert {r["event"] for r in lake_events(sqlite_project)} == {"Signed In"}


def test_records_without_message_id_get_a_deterministic_one(
    sqlite_project: Project, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [event(1, messageId=None), event(2, messageId=None)])
    assert ingest(sqlite_project, [path]).loaded == 2
    ids = [r["message_id"] for r in lake_events(sqlite_project)]
    assert all(i.startswith("tn-") for i in ids)
    assert len(set(ids)) == 2
    again = ingest(sqlite_project, [path])
    assert (again.loaded, again.duplicates) == (0, 2)


BAD: list[tuple[Any, ReasonCode, str]] = [
    ('{"type": "track", "event": ', ReasonCode.MALFORMED_JSON, "line is not valid JSON"),
    ("[1, 2]", ReasonCode.NOT_AN_OBJECT, "a JSON array where an event object was expected"),
    (
        event(1, type="purchase"),
        ReasonCode.UNKNOWN_TYPE,
        "unknown type 'purchase'; expected one of",
    ),
    (event(1, type=None), ReasonCode.UNKNOWN_TYPE, "no type; expected one of"),
    (
        event(1, userId=None),
        ReasonCode.MISSING_IDENTITY,
        "no userId, anonymousId, email or external id",
    ),
    (event(1, type="group", event=None), ReasonCode.MISSING_IDENTITY, "group call without groupId"),
    (
        event(1, type="alias", event=None),
        ReasonCode.MISSING_IDENTITY,
        "alias call needs both previousId",
    ),
    (event(1, event=None), ReasonCode.MISSING_EVENT_NAME, "track call without an event name"),
    (event(1, timestamp=None), ReasonCode.BAD_TIMESTAMP, "no timestamp"),
    (
        event(1, timestamp="last tuesday"),
        ReasonCode.BAD_TIMESTAMP,
        "timestamp 'last tuesday' is not an ISO 8601 time",
    ),
    (
        event(1, timestamp="2024-06-03T12:00:00Z"),
        ReasonCode.FUTURE_TIMESTAMP,
        "timestamp 2024-06-03T12:00:00Z is more than 24 hours after the ingest time "
        "2024-06-01T12:00:00Z",
    ),
    (
        event(1, properties={"blob": "x" * 40_000}),
        ReasonCode.TOO_LARGE,
        "an event may be at most 32768 bytes",
    ),
    (
        event(1, properties=["not", "an", "object"]),
        ReasonCode.WRONG_TYPE,
        'properties must be a JSON object, got ["not","an","object"]',
    ),
    (
        event(1, event="NPS Submitted", properties={"score": "ten"}),
        ReasonCode.WRONG_TYPE,
        "property 'score' of 'NPS Submitted' must be an integer 0–10, got \"ten\"",
    ),
    (
        event(1, event="NPS Submitted", properties={"score": 11}),
        ReasonCode.WRONG_TYPE,
        "property 'score' of 'NPS Submitted' must be an integer 0–10, got 11",
    ),
    (
        event(1, event="NPS Submitted", properties={"comment": "meh"}),
        ReasonCode.MISSING_PROPERTY,
        "'NPS Submitted' needs property 'score' (an integer 0–10) but the event has none",
    ),
]


@pytest.mark.parametrize(
    ("record", "code", "reason"), BAD, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(BAD)]
)
def test_every_quarantine_reason(
    sqlite_project: Project, tmp_path: Path, record: Any, code: ReasonCode, reason: str
) -> None:
    # the bad record sits between two good ones: it never aborts the batch
    path = write_jsonl(tmp_path / "e.jsonl", [event(10), record, event(11)])
    report = ingest(sqlite_project, [path])
    assert (report.loaded, report.quarantined) == (2, 1)
    assert report.quarantined_by_reason == {code.value: 1}
    with sqlite_project.store.connect() as connection:
        (q,) = list_quarantined(connection)
    assert q.reason_code == code.value
    assert reason in q.reason
    assert q.record_number == 2
    assert q.source_file == str(path)
    assert q.source == "segment"
    expected_raw = record if isinstance(record, str) else orjson.dumps(record).decode()
    assert q.raw == expected_raw


def test_valid_catalog_event_loads(sqlite_project: Project, tmp_path: Path) -> None:
    nps = event(1, event="NPS Submitted", properties={"score": 9, "comment": "great"})
    assert ingest(sqlite_project, [write_jsonl(tmp_path / "e.jsonl", [nps])]).loaded == 1


@pytest.mark.parametrize("shape", ["single", "array", "batch"])
def test_json_documents(sqlite_project: Project, tmp_path: Path, shape: str) -> None:
    events = [event(1, context=None), event(2, context=None)]
    doc: Any = {
        "single": events[0],
        "array": events,
        "batch": {
            "batch": events,
            "context": {"groupId": "acct-7"},
            "sentAt": "2024-05-30T00:00:00Z",
        },
    }[shape]
    path = tmp_path / "e.json"
    path.write_bytes(orjson.dumps(doc))
    report = ingest(sqlite_project, [path])
    assert report.inputs[0].format == "segment-json"
    rows = lake_events(sqlite_project)
    assert len(rows) == (1 if shape == "single" else 2)
    if shape == "batch":  # the batch's context applies to each event
        assert {r["group_id"] for r in rows} == {"acct-7"}


def test_batch_bodies_inside_jsonl(sqlite_project: Project, tmp_path: Path) -> None:
    body = {"batch": [event(1), event(2, timestamp="nope")], "context": {"ip": "1.2.3.4"}}
    report = ingest(sqlite_project, [write_jsonl(tmp_path / "e.jsonl", [body, event(3)])])
    assert (report.loaded, report.quarantined) == (2, 1)
    assert orjson.loads(lake_events(sqlite_project)[0]["context"])["ip"] == "1.2.3.4"


def test_malformed_json_document_is_quarantined(sqlite_project: Project, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"batch": [', encoding="utf-8")
    report = ingest(sqlite_project, [path])
    assert (report.loaded, report.quarantined) == (0, 1)
    assert report.quarantined_by_reason == {"malformed_json": 1}


def test_gzipped_jsonl(sqlite_project: Project, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(orjson.dumps(event(i)) for i in range(5))))
    assert ingest(sqlite_project, [path]).loaded == 5


def test_parquet_flattened_segment_columns(sqlite_project: Project, tmp_path: Path) -> None:
    table = pa.table(
        {
            "message_id": ["p1", "p2", "p3"],
            "type": ["track", "track", "identify"],
            "event": ["Signed In", "NPS Submitted", None],
            "user_id": ["u1", "u2", "u3"],
            "anonymous_id": [None, None, "a3"],
            "timestamp": pa.array(
                [dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)] * 3, pa.timestamp("ms", "UTC")
            ),
            "properties": ['{"plan": "pro"}', '{"score": 42}', None],
            "context_traits_email": [None, None, "U3@X.io"],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    report = ingest(sqlite_project, [tmp_path / "events.parquet"])
    assert report.inputs[0].format == "segment-parquet"
    assert (report.loaded, report.quarantined) == (2, 1)
    assert report.quarantined_by_reason == {"wrong_type": 1}
    rows = {r["message_id"]: r for r in lake_events(sqlite_project)}
    assert rows["p1"]["timestamp"] == dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)
    assert rows["p3"]["email"] == "u3@x.io"
    with sqlite_project.store.connect() as connection:
        (q,) = list_quarantined(connection)
    # a columnar record's raw text is rebuilt from its fields
    assert q.record_number == 2
    assert orjson.loads(q.raw)["properties"] == {"score": 42}


def test_parquet_json_text_that_is_not_json_is_quarantined(
    sqlite_project: Project, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "message_id": ["p1", "p2"],
            "type": ["track", "track"],
            "event": ["Signed In", "Signed In"],
            "user_id": ["u1", "u2"],
            "timestamp": ["2024-05-01T08:00:00Z", "2024-05-01T09:00:00Z"],
            "properties": ['{"plan": "pro"}', "{not json"],
            "context": ['{"groupId": "g1"}', "{nor this"],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    report = ingest(sqlite_project, [tmp_path / "events.parquet"])
    assert (report.loaded, report.quarantined) == (1, 1)
    with sqlite_project.store.connect() as connection:
        (q,) = list_quarantined(connection)
    assert (q.record_number, q.reason_code) == (2, "wrong_type")
    assert q.reason == "properties must be a JSON object, got {not json"
    assert lake_events(sqlite_project)[0]["group_id"] == "g1"


def test_parquet_nested_tracking_api_shape(sqlite_project: Project, tmp_path: Path) -> None:
    rows = [event(i) for i in range(4)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "nested.parquet")
    assert ingest(sqlite_project, [tmp_path / "nested.parquet"]).loaded == 4
    stored = lake_events(sqlite_project)
    assert orjson.loads(stored[0]["properties"]) == {"plan": "pro"}
    assert {r["group_id"] for r in stored} == {"acct-1"}


def test_batches_bound_memory_and_count_correctly(tmp_path: Path) -> None:
    from .conftest import make_project

    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 's.db'}")
    config = project.config.model_copy(
        update={"ingest": project.config.ingest.model_copy(update={"batch_rows": 7})}
    )
    small = Project(project.root, config, clock=fixed_clock())
    records = [event(i) for i in range(40)] + [event(5)]  # the repeat lands in a later batch
    report = ingest(small, [write_jsonl(tmp_path / "e.jsonl", records)])
    assert (report.loaded, report.duplicates) == (40, 1)
    small.close()
    project.close()


def test_parquet_repeats_keep_the_first_occurrence_within_and_across_batches(
    tmp_path: Path,
) -> None:
    from .conftest import make_project

    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 's.db'}")
    config = project.config.model_copy(
        update={"ingest": project.config.ingest.model_copy(update={"batch_rows": 4})}
    )
    small = Project(project.root, config, clock=fixed_clock())
    ids = ["m1", "m2", "m1", "m3", "m4", "m2", "m5", "m5"]  # repeats in one batch and the next
    table = pa.table(
        {
            "message_id": ids,
            "type": ["track"] * len(ids),
            "event": [f"Event {i}" for i in range(len(ids))],
            "user_id": ["u1"] * len(ids),
            "timestamp": pa.array(
                [dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)] * len(ids), pa.timestamp("ms", "UTC")
            ),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet", row_group_size=3)
    report = ingest(small, [tmp_path / "events.parquet"])
    assert (report.loaded, report.duplicates) == (5, 3)
    names = {r["message_id"]: r["event"] for r in lake_events(small)}
    assert names == {
        "m1": "Event 0", "m2": "Event 1", "m3": "Event 3", "m4": "Event 4", "m5": "Event 6",
    }  # fmt: skip
    small.close()
    project.close()


def test_directories_and_unknown_files(sqlite_project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [event(1)])
    write_jsonl(folder / "b.ndjson", [event(2)])
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    assert ingest(sqlite_project, [folder]).loaded == 2
    with pytest.raises(IngestError, match="no such file or directory"):
        ingest(sqlite_project, [tmp_path / "missing.jsonl"])
    with pytest.raises(IngestError, match="cannot tell the format"):
        ingest(sqlite_project, [folder / "notes.txt"])


def test_crash_leftovers_are_set_aside_and_reloaded(
    sqlite_project: Project, tmp_path: Path
) -> None:
    # a crash after files reached the lake but before they were registered
    # leaves unregistered files: the next run sets them aside and loads the events once
    path = write_jsonl(tmp_path / "e.jsonl", [event(i) for i in range(6)])
    table = pa.Table.from_pylist(
        [{**r, "event_date": None} for r in lake_rows_for(sqlite_project, path)]
    )
    staged = sqlite_project.lake.stage_events(table.drop_columns(["event_date"]), "crashed")
    sqlite_project.lake.publish(staged)  # published, never registered
    (sqlite_project.lake.staging_dir / "half-written").mkdir(parents=True)
    report = ingest(sqlite_project, [path])
    assert report.loaded == 6
    assert not any("crashed" in p.name for p in sqlite_project.lake.events_dir.rglob("*.parquet"))
    set_aside = list((sqlite_project.lake.root / "_unregistered").rglob("crashed-*.parquet"))
    assert len(set_aside) == len(staged)
    assert not sqlite_project.lake.staging_dir.exists()
    assert len(lake_events(sqlite_project)) == 6


def lake_rows_for(project: Project, path: Path) -> list[dict[str, Any]]:
    """What ingesting *path* would write, produced in a scratch project."""
    from .conftest import make_project

    scratch = make_project(
        project.root.parent / "scratch", f"sqlite:///{project.root.parent / 'x.db'}"
    )
    ingest(scratch, [path])
    rows = lake_events(scratch)
    scratch.close()
    return rows


def test_retry_loads_what_now_passes(project: Project, tmp_path: Path) -> None:
    early = event(1, timestamp="2024-06-05T09:00:00Z")  # four days ahead of the clock
    broken = event(2, timestamp="soon")
    ingest(project, [write_jsonl(tmp_path / "e.jsonl", [early, broken, event(3)])])
    with project.store.connect() as connection:
        records = list_quarantined(connection)
    assert [r.reason_code for r in records] == ["future_timestamp", "bad_timestamp"]
    later = Project(
        project.root, project.config, clock=fixed_clock(dt.datetime(2024, 6, 5, 12, tzinfo=dt.UTC))
    )
    report = retry_quarantined(later, records)
    assert (report.loaded, report.quarantined) == (1, 1)
    with later.store.connect() as connection:
        after = {r.id: r for r in list_quarantined(connection, status=None)}
    assert after[records[0].id].status is QuarantineStatus.LOADED
    assert after[records[1].id].status is QuarantineStatus.REQUARANTINED
    reopened = [r for r in after.values() if r.status is QuarantineStatus.OPEN]
    assert [(r.record_number, r.reason_code) for r in reopened] == [(2, "bad_timestamp")]
    assert later.warehouse.event_count() == 2
    later.close()


ORDERS_MAPPING = """
name: custom.orders
source: custom
entity: invoices
detect: [Order No, Buyer Email, Placed]
key: Order No
identity:
  email: Buyer Email
events:
  - type: track
    event: Order Completed
    timestamp: Placed
{format}
    properties:
      order_id: Order No
      revenue: {{column: Total, type: number}}
"""


def test_retry_a_custom_export_after_fixing_its_mapping(
    sqlite_project: Project, tmp_path: Path
) -> None:
    mapping = tmp_path / "orders.yaml"
    mapping.write_text(ORDERS_MAPPING.format(format=""), encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "Order No,Buyer Email,Placed,Total\n"
        "A-1,ann@shop.example,2024-05-01 10:00,25.50\n"
        "A-2,bob@shop.example,02/05/2024 11:30,12.00\n",
        encoding="utf-8",
    )
    first = ingest(sqlite_project, [orders], mapping=str(mapping))
    assert (first.loaded, first.quarantined) == (1, 1)
    with sqlite_project.store.connect() as connection:
        (record,) = list_quarantined(connection)
    assert record.reason_code == "bad_timestamp"
    assert record.source == str(mapping)  # enough to read the record again
    # the shop writes day-first dates: say so in the mapping and retry
    mapping.write_text(
        ORDERS_MAPPING.format(format='    timestamp_format: "%d/%m/%Y %H:%M"'), encoding="utf-8"
    )
    retried = retry_quarantined(sqlite_project, [record])
    assert (retried.loaded, retried.quarantined) == (1, 0)
    rows = {r["message_id"]: r for r in lake_events(sqlite_project)}
    placed = sorted(r["timestamp"] for r in rows.values())
    assert placed[-1] == dt.datetime(2024, 5, 2, 11, 30, tzinfo=dt.UTC)
    assert {r["source"] for r in rows.values()} == {"custom"}


def test_duckdb_draws_no_progress_bar_on_the_cli_s_stdout(sqlite_project: Project) -> None:
    """Queries over 2 s would otherwise draw one into tables, --json output and job logs."""
    from tenure.collect._segment import new_connection

    setting = "select current_setting('enable_progress_bar')"
    warehouse = sqlite_project.warehouse.backend.raw_sql(setting).fetchall()
    index = sqlite_project.index.con.execute(setting).fetchall()
    scratch = new_connection().execute(setting).fetchall()
    assert warehouse == index == scratch == [(False,)]
