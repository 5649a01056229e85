"""CSV and Parquet exports through column mappings: the built-in mappings against
fixtures in each product's export format, detection, bad rows, and the format itself."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.collect._candidates import CANDIDATE_SCHEMA
from tenure.collect._mapping import monthly_amount, parse_mapping_yaml
from tenure.collect._segment import load_arrow, new_connection
from tenure.collect._tabular import (
    TabularBatch,
    TabularMapping,
    builtin_mappings,
    candidates_from_rows,
    detect_mapping,
    load_mapping,
    read_columns,
    read_tabular,
)
from tenure.collect._validate import validate
from tenure.errors import IngestError, MappingError
from tenure.events import CATALOG

from .conftest import FIXED_NOW

EXPORTS = Path(__file__).parent / "data" / "exports"
MAPPINGS_DIR = Path(__file__).parents[1] / "src" / "tenure" / "collect" / "mappings"

FIXTURES = {
    "stripe.customers": "stripe_customers.csv",
    "stripe.subscriptions": "stripe_subscriptions.csv",
    "stripe.invoices": "stripe_invoices.csv",
    "hubspot.contacts": "hubspot_contacts.csv",
    "hubspot.companies": "hubspot_companies.csv",
    "hubspot.deals": "hubspot_deals.csv",
    "zendesk.tickets": "zendesk_tickets.csv",
}


def read(path: Path, mapping: TabularMapping | str, batch_rows: int = 1000) -> list[TabularBatch]:
    chosen = builtin_mappings()[mapping] if isinstance(mapping, str) else mapping
    return list(read_tabular(path, chosen, batch_rows=batch_rows))


def candidates(
    path: Path, mapping: TabularMapping | str, batch_rows: int = 1000
) -> list[dict[str, Any]]:
    return [row for b in read(path, mapping, batch_rows) for row in b.candidates.to_pylist()]


def fixture(name: str) -> list[dict[str, Any]]:
    return candidates(EXPORTS / FIXTURES[name], name)


def events(rows: list[dict[str, Any]]) -> list[tuple[int, str, str | None, str | None]]:
    return [
        (r["record_number"], r["type"], r["event"], r["timestamp"])
        for r in rows
        if r["reader_error_code"] is None
    ]


def props(rows: list[dict[str, Any]], record: int, event: str) -> dict[str, Any]:
    (row,) = [
        r for r in rows if r["record_number"] == record and (r["event"] or r["type"]) == event
    ]
    payload = row["properties"] if row["type"] == "track" else row["traits"]
    result: dict[str, Any] = orjson.loads(payload)
    return result


def errors(rows: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    return {
        r["record_number"]: (r["reader_error_code"], r["reader_error"])
        for r in rows
        if r["reader_error_code"] is not None
    }


def context(rows: list[dict[str, Any]], record: int) -> dict[str, Any]:
    row = next(r for r in rows if r["record_number"] == record)
    result: dict[str, Any] = orjson.loads(row["context"])
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- built-ins


def test_every_builtin_mapping_is_shipped_under_its_own_name() -> None:
    mappings = builtin_mappings()
    assert sorted(mappings) == sorted(FIXTURES)
    assert sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml")) == sorted(FIXTURES)


def test_builtin_track_events_are_catalog_events() -> None:
    names = {e.event for m in builtin_mappings().values() for e in m.events if e.event is not None}
    assert names - set(CATALOG) == set()


def test_stripe_subscriptions_become_lifecycle_events() -> None:
    rows = fixture("stripe.subscriptions")
    assert events(rows) == [
        (1, "track", "Subscription Started", "2024-01-10T14:03:22+00:00"),
        (2, "track", "Subscription Started", "2023-11-02T09:00:00+00:00"),
        (2, "track", "Trial Started", "2023-11-02T09:00:00+00:00"),
        (2, "track", "Trial Ended", "2023-11-16T09:00:00+00:00"),
        (3, "track", "Subscription Started", "2023-08-01T12:00:00+00:00"),
        (3, "track", "Subscription Canceled", "2024-03-15T08:30:00+00:00"),
        (4, "track", "Subscription Started", "2024-05-20T10:00:00+00:00"),
        (4, "track", "Trial Started", "2024-05-20T10:00:00+00:00"),
        # 5 has a bad amount; 6 is incomplete_expired and never started
        (7, "track", "Subscription Started", "2024-03-03T07:45:10+00:00"),
    ]
    # 5 seats at 49.00 a month
    assert props(rows, 1, "Subscription Started") == {
        "subscription_id": "sub_1OkTeamAcme",
        "plan": "price_team_monthly",
        "product": "Team",
        "seats": 5,
        "mrr": 245.0,
        "currency": "usd",
        "interval": "month",
    }
    # a yearly plan of 1200.00 (dollars: Stripe's exports are in major units) is 100 a month
    yearly = props(rows, 2, "Subscription Started")
    assert (yearly["mrr"], yearly["interval"], yearly["seats"]) == (100.0, "year", 1)
    assert props(rows, 2, "Trial Ended") == {
        "subscription_id": "sub_1NyBizGlobex",
        "trial_plan_name": "price_business_yearly",
        "trial_start_date": "2023-11-02T09:00:00+00:00",
        "trial_end_date": "2023-11-16T09:00:00+00:00",
    }
    assert props(rows, 3, "Subscription Canceled") == {
        "subscription_id": "sub_1NbStartInitech",
        "plan": "price_starter_monthly",
        "seats": 2,
        "mrr": 58.0,
        "currency": "usd",
        "interval": "month",
        "cancel_at_period_end": True,
        "ended_at": "2024-04-01T12:00:00+00:00",
    }
    # weekly: 10 × 52 / 12; the catalog's interval knows month and year only, so it is left out
    weekly = props(rows, 7, "Subscription Started")
    assert weekly["mrr"] == 43.33
    assert "interval" not in weekly
    assert errors(rows) == {
        5: (
            "wrong_type",
            "column 'Amount': 'abc' is not a number (for 'mrr' of Subscription Started)",
        )
    }
    assert context(rows, 1) == {
        "externalIds": [
            {
                "id": "cus_PAcme01",
                "type": "stripe_customer_id",
                "collection": "users",
                "encoding": "none",
            }
        ],
        "source": "stripe",
        "mapping": "stripe.subscriptions",
    }
    assert {r["email"] for r in rows if r["record_number"] == 1} == {"billing@acme.example"}
    first = rows[0]
    assert first["natural_key"] == "stripe.subscriptions:sub_1OkTeamAcme:Subscription Started"
    assert first["message_id"] is None
    assert first["user_id"] is None


def test_stripe_customers_are_identified_by_email_and_customer_id() -> None:
    rows = fixture("stripe.customers")
    assert events(rows) == [
        (1, "identify", None, "2024-01-10T14:01:05+00:00"),
        (2, "identify", None, "2023-11-02T08:58:41+00:00"),
    ]
    assert props(rows, 1, "identify") == {
        "email": "billing@acme.example",
        "name": "Acme Corp",
        "description": "Acme Corp (enterprise)",
        "phone": "+1 415 555 0100",
        "currency": "usd",
        "delinquent": False,
        "created_at": "2024-01-10T14:01:05+00:00",
    }
    # empty cells are left out, not sent as empty strings
    assert props(rows, 2, "identify") == {
        "email": "ops@globex.example",
        "name": "Globex",
        "currency": "usd",
        "delinquent": True,
        "created_at": "2023-11-02T08:58:41+00:00",
    }
    assert context(rows, 2)["externalIds"][0]["id"] == "cus_PGlobex2"
    assert errors(rows) == {
        3: (
            "wrong_type",
            "column 'Delinquent': 'maybe' is not a boolean (true/false, yes/no, 1/0) "
            "(for 'delinquent' of identify)",
        ),
        4: (
            "missing_property",
            "key column 'id' is empty, so the stripe.customers record cannot be identified",
        ),
    }


def test_stripe_invoices_become_paid_and_failed_payments() -> None:
    rows = fixture("stripe.invoices")
    assert events(rows) == [
        (1, "track", "Invoice Paid", "2024-05-10T15:03:22+00:00"),
        (2, "track", "Payment Failed", "2024-05-01T01:00:00+00:00"),
    ]  # 3 is a draft: nothing happened yet
    assert props(rows, 1, "Invoice Paid") == {
        "invoice_id": "in_1PAcmeMay",
        "number": "ACME-0005",
        "amount": 245.0,
        "currency": "usd",
        "subscription_id": "sub_1OkTeamAcme",
    }
    failed = props(rows, 2, "Payment Failed")
    assert (failed["amount"], failed["attempt_count"]) == (49.0, 3)
    assert errors(rows)[4] == (
        "wrong_type",
        "column 'Amount Paid': '1.200,00' is not a number (for 'amount' of Invoice Paid)",
    )


def test_hubspot_contacts_become_people_and_leads() -> None:
    rows = fixture("hubspot.contacts")
    assert events(rows) == [
        (1, "identify", None, "2024-01-05T10:15:00+00:00"),
        (1, "track", "Lead Created", "2024-01-05T10:15:00+00:00"),
        (1, "track", "Lead Qualified", "2024-02-02T09:00:00+00:00"),
        (2, "identify", None, "2023-10-01T08:00:00+00:00"),
        # 3 is malformed; 4 skipped the lead stage: its lead starts at the MQL date
        (4, "identify", None, "2024-04-10T09:30:00+00:00"),
        (4, "track", "Lead Created", "2024-04-12T11:00:00+00:00"),
    ]
    traits = props(rows, 1, "identify")
    assert traits["first_name"] == "Ada"
    assert traits["lifecycle_stage"] == "sales_qualified_lead"
    assert traits["created_at"] == "2024-01-05T10:15:00+00:00"
    assert props(rows, 1, "Lead Qualified") == {
        "lead_id": "51",
        "lead_source": "Organic Search",
        "email": "ada@acme.example",
        "qualification": "sales_qualified_lead",
    }
    first = rows[0]
    assert (first["email"], first["group_id"]) == ("ada@acme.example", "9001")
    assert [(x["type"], x["id"], x["collection"]) for x in context(rows, 1)["externalIds"]] == [
        ("hubspot_contact_id", "51", "users"),
        ("hubspot_company_id", "9001", "accounts"),
    ]


def test_hubspot_companies_become_groups() -> None:
    rows = fixture("hubspot.companies")
    assert events(rows) == [
        (1, "group", None, "2023-12-15T10:00:00+00:00"),
        (2, "group", None, "2023-09-20T14:30:00+00:00"),
    ]
    assert rows[0]["group_id"] == "9001"
    assert props(rows, 1, "group") == {
        "name": "Acme Corp",
        "domain": "acme.example",
        "industry": "Computer Software",
        "employees": 250,
        "annual_revenue": 25000000.0,
        "country": "United States",
        "state": "California",
        "city": "San Francisco",
        "phone": "+1 415 555 0100",
        "lifecycle_stage": "customer",
        "created_at": "2023-12-15T10:00:00+00:00",
    }
    assert errors(rows) == {
        3: (
            "wrong_type",
            "column 'Number of Employees': 'about 50' is not an integer (for 'employees' of group)",
        )
    }


def test_hubspot_deals_are_won_or_lost_by_stage() -> None:
    rows = fixture("hubspot.deals")
    assert events(rows) == [
        (1, "track", "Opportunity Created", "2023-12-18T11:20:00+00:00"),
        (1, "track", "Opportunity Won", "2024-01-09T17:00:00+00:00"),
        (2, "track", "Opportunity Created", "2024-03-02T09:10:00+00:00"),
        (2, "track", "Opportunity Lost", "2024-03-28T15:00:00+00:00"),
        (3, "track", "Opportunity Created", "2024-05-02T13:45:00+00:00"),  # still open
    ]
    assert props(rows, 1, "Opportunity Won") == {
        "opportunity_id": "7001",
        "name": "Acme Corp - Team plan",
        "amount": 2940.0,
        "pipeline": "Sales Pipeline",
        "stage": "won",
    }
    assert props(rows, 2, "Opportunity Lost")["stage"] == "lost"
    assert {r["group_id"] for r in rows if r["record_number"] == 2} == {"9003"}
    # one message for the row, naming every event the bad cell spoils
    assert errors(rows) == {
        4: (
            "wrong_type",
            "column 'Amount': 'TBD' is not a number "
            "(for 'amount' of Opportunity Created, 'amount' of Opportunity Won)",
        )
    }


def test_zendesk_tickets_become_support_events() -> None:
    rows = fixture("zendesk.tickets")
    assert events(rows) == [
        (1, "track", "Ticket Created", "2024-03-04T09:15:22+00:00"),
        (1, "track", "Ticket Solved", "2024-03-05T11:30:00+00:00"),
        (1, "track", "CSAT Submitted", "2024-03-05T16:02:10+00:00"),
        (2, "track", "Ticket Created", "2024-05-20T13:00:05+00:00"),  # unrated: no CSAT
        # an unreadable time passes through as written, for the validator to reject
        (3, "track", "Ticket Created", "yesterday"),
        (3, "track", "Ticket Solved", "2024-04-02T17:45:00+00:00"),
        (3, "track", "CSAT Submitted", "2024-04-03T10:00:00+00:00"),
    ]
    assert props(rows, 1, "Ticket Created") == {
        "ticket_id": "1201",
        "subject": "Cannot export the usage report",
        "priority": "high",
        "channel": "web",
        "type": "Incident",
        "tags": "export bug",
        "group": "Support",
        "assignee": "Sam Agent",
        "organization": "Acme Corp",
    }
    assert props(rows, 1, "CSAT Submitted") == {
        "ticket_id": "1201",
        "score": 5,
        "rating": "good",
        "organization": "Acme Corp",
    }
    assert props(rows, 3, "CSAT Submitted")["score"] == 1
    assert props(rows, 3, "Ticket Created")["subject"] == 'API returns 500 on "bulk" endpoint'
    assert props(rows, 2, "Ticket Created")["subject"] == "Invoice address, please update"
    assert "priority" not in props(rows, 2, "Ticket Created")
    ada = rows[0]
    assert (ada["user_id"], ada["email"]) == ("user_42", "ada@acme.example")
    assert context(rows, 1)["externalIds"][0]["type"] == "zendesk_user_id"


# which records the validator turns away, and why: exactly the rows planted bad
QUARANTINED = {
    "stripe.customers": {(3, "wrong_type"), (4, "missing_property")},
    "stripe.subscriptions": {(5, "wrong_type")},
    "stripe.invoices": {(4, "wrong_type")},
    "hubspot.contacts": {(3, "malformed_row")},
    "hubspot.companies": {(3, "wrong_type")},
    "hubspot.deals": {(4, "wrong_type")},
    "zendesk.tickets": {(3, "bad_timestamp")},
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_validator_accepts_everything_but_the_planted_bad_rows(name: str) -> None:
    (batch,) = read(EXPORTS / FIXTURES[name], name)
    con = new_connection()
    try:
        load_arrow(con, batch.candidates)
        checked = validate(
            con,
            source=batch.source,
            run_id="r1",
            now=FIXED_NOW,
            max_future=dt.timedelta(hours=24),
            max_bytes=32 * 1024,
        )
    finally:
        con.close()
    rejected = checked.rejected.to_pylist()
    assert {(r["record_number"], r["reason_code"]) for r in rejected} == QUARANTINED[name]
    good = [r for r in batch.candidates.to_pylist() if r["reader_error_code"] is None]
    assert checked.valid == len(good) - (name == "zendesk.tickets")


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_detection_picks_the_mapping_from_the_header(name: str) -> None:
    columns = read_columns(EXPORTS / FIXTURES[name])
    assert detect_mapping(columns, builtin_mappings()).name == name


def test_detection_refuses_to_guess_between_several_mappings() -> None:
    ours = parse_mapping_yaml(
        "name: custom.people\nsource: custom\nentity: contacts\ndetect: [id, Email]\nkey: id\n"
        "events:\n  - {type: identify, timestamp: Created (UTC)}\n",
        origin="people.yaml",
    )
    mappings = [*builtin_mappings().values(), ours]
    columns = read_columns(EXPORTS / "stripe_customers.csv")
    with pytest.raises(MappingError) as info:
        detect_mapping(columns, mappings, origin="customers.csv")
    message = str(info.value)
    assert message.startswith("customers.csv matches several mappings (")
    assert "stripe.customers" in message
    assert "custom.people" in message
    assert "--mapping" in message


def test_detection_says_what_it_looked_for_when_nothing_matches() -> None:
    with pytest.raises(MappingError) as info:
        detect_mapping(["Order", "Total"], builtin_mappings(), origin="orders.csv")
    message = str(info.value)
    assert message.startswith("no mapping recognises the columns of orders.csv ('Order', 'Total')")
    assert "pass --mapping" in message
    assert "zendesk.tickets needs Id, Requester, Subject, Via, Created at" in message
    assert "--mapping" in str(info.value.hint)


def test_a_header_with_a_bom_and_padding_is_still_recognised(tmp_path: Path) -> None:
    original = (EXPORTS / "stripe_customers.csv").read_text(encoding="utf-8")
    header, rest = original.split("\n", 1)
    padded = ",".join(f" {c} " for c in header.split(","))
    path = tmp_path / "customers.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (padded + "\n" + rest).encode())
    mapping = detect_mapping(read_columns(path), builtin_mappings())
    assert mapping.name == "stripe.customers"
    assert events(candidates(path, mapping))[0] == (
        1,
        "identify",
        None,
        "2024-01-10T14:01:05+00:00",
    )


def test_a_file_without_the_mappings_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        read(EXPORTS / "hubspot_deals.csv", "stripe.subscriptions")
    message = str(info.value)
    assert "hubspot_deals.csv lacks the columns 'id', 'Customer ID'" in message
    assert "mapping stripe.subscriptions needs" in message


# --------------------------------------------------------------------------- bad rows


def test_a_row_with_too_many_fields_is_malformed_and_the_rest_loads(tmp_path: Path) -> None:
    lines = ["id,Email,Created (UTC)"]
    for i in range(1, 11):
        if i in (4, 9):
            lines.append(f"cus_{i},u{i}@example.com,2024-01-0{i % 9 + 1} 10:00:00,extra")
        else:
            lines.append(f"cus_{i},u{i}@example.com,2024-01-0{i % 9 + 1} 10:00:00")
    path = write(tmp_path / "customers.csv", "\n".join(lines) + "\n")
    batches = read(path, "stripe.customers", batch_rows=3)
    rows = [r for b in batches for r in b.candidates.to_pylist()]
    assert [r["record_number"] for r in rows] == list(range(1, 11))
    assert errors(rows) == {
        4: ("malformed_row", "row 4 has 4 fields but the header has 3 columns"),
        9: ("malformed_row", "row 9 has 4 fields but the header has 3 columns"),
    }
    malformed = next(r for r in rows if r["record_number"] == 4)
    assert malformed["raw"] == "cus_4,u4@example.com,2024-01-05 10:00:00,extra"
    assert [b.snapshot.num_rows for b in batches] == [3, 3, 2]
    snapshot_numbers = [n for b in batches for n in b.snapshot.column("record_number").to_pylist()]
    assert snapshot_numbers == [1, 2, 3, 5, 6, 7, 8, 10]


def test_a_malformed_row_in_a_quoted_multiline_file_keeps_its_row_number(tmp_path: Path) -> None:
    text = (
        "id,Email,Created (UTC),Description\n"
        'cus_1,a@example.com,2024-01-01 10:00:00,"two\nlines"\n'
        "cus_2,b@example.com,2024-01-02 10:00:00\n"
        "cus_3,c@example.com,2024-01-03 10:00:00,fine\n"
    )
    rows = candidates(write(tmp_path / "c.csv", text), "stripe.customers")
    assert errors(rows) == {2: ("malformed_row", "row 2 has 3 fields but the header has 4 columns")}
    assert props(rows, 1, "identify")["description"] == "two\nlines"
    assert [r["record_number"] for r in rows] == [1, 2, 3]


def test_rows_of_empty_cells_produce_nothing(tmp_path: Path) -> None:
    text = "id,Email,Created (UTC)\ncus_1,a@example.com,2024-01-01 10:00:00\n,,\n"
    rows = candidates(write(tmp_path / "c.csv", text), "stripe.customers")
    assert [r["record_number"] for r in rows] == [1]


def test_an_unreadable_file_is_an_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"empty\.csv: cannot be read"):
        read(write(tmp_path / "empty.csv", ""), "stripe.customers")
    with pytest.raises(IngestError, match=r"missing\.csv: cannot be read"):
        read(tmp_path / "missing.csv", "stripe.customers")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,Email,Created (UTC),Name\ncus_1,a@x.example,2024-01-01,Caf\xe9\n")
    with pytest.raises(IngestError, match="invalid UTF8") as info:
        read(latin, "stripe.customers")
    assert info.value.hint == "save the export as UTF-8 CSV and ingest it again"


def test_a_header_only_file_yields_no_batches(tmp_path: Path) -> None:
    assert read(write(tmp_path / "c.csv", "id,Email,Created (UTC)\n"), "stripe.customers") == []


# --------------------------------------------------------------------------- batches


def test_snapshot_holds_every_column_as_text_under_snake_case_names() -> None:
    (batch,) = read(EXPORTS / "stripe_subscriptions.csv", "stripe.subscriptions")
    snapshot = batch.snapshot
    assert snapshot.column_names[:6] == [
        "record_number",
        "id",
        "customer_id",
        "customer_description",
        "customer_email",
        "plan",
    ]
    assert "created_utc" in snapshot.column_names
    assert "cancel_at_period_end" in snapshot.column_names
    assert snapshot.schema.field("record_number").type == pa.int64()
    assert {f.type for f in snapshot.schema if f.name != "record_number"} == {pa.string()}
    assert snapshot.num_rows == 7
    first = snapshot.slice(0, 1).to_pylist()[0]
    assert (first["quantity"], first["amount"], first["coupon"]) == ("5", "49.00", None)
    assert (batch.entity, batch.source, batch.mapping) == (
        "subscriptions",
        "stripe",
        "stripe.subscriptions",
    )
    # the fixture has no cancellation reason column: said, not an error
    assert batch.missing_columns == ("Cancellation Reason",)
    assert batch.candidates.schema.equals(CANDIDATE_SCHEMA)


def test_raw_is_the_row_as_a_json_object() -> None:
    rows = fixture("stripe.customers")
    raw = orjson.loads(rows[1]["raw"])
    assert raw["id"] == "cus_PGlobex2"
    assert raw["Description"] is None
    assert raw["Created (UTC)"] == "2023-11-02 08:58:41"


def test_reading_twice_gives_the_same_natural_keys(tmp_path: Path) -> None:
    path = EXPORTS / "stripe_subscriptions.csv"
    first = read(path, "stripe.subscriptions")[0].candidates
    second = read(path, "stripe.subscriptions", batch_rows=2)
    assert pa.concat_tables([b.candidates for b in second]).equals(first)
    keys = [k for k in first.column("natural_key").to_pylist() if k is not None]
    assert len(keys) == len(set(keys)) == 9


def test_quarantined_rows_map_again_to_the_same_candidates() -> None:
    rows = fixture("zendesk.tickets")
    mapping = builtin_mappings()["zendesk.tickets"]
    again = candidates_from_rows(mapping, [(1, rows[0]["raw"])]).to_pylist()
    assert again == [r for r in rows if r["record_number"] == 1]
    (line,) = candidates_from_rows(mapping, [(7, "1,1207,too,many,commas")]).to_pylist()
    assert line["reader_error_code"] == "malformed_row"
    assert line["raw"] == "1,1207,too,many,commas"


def test_parquet_exports_are_read_as_text(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["sub_1", "sub_2"],
            "Customer ID": ["cus_1", None],
            "Quantity": pa.array([3, 1], pa.int64()),
            "Amount": [19.5, 1200.0],
            "Interval": ["month", "year"],
            "Created": pa.array(
                [dt.datetime(2024, 5, 1, 12, 0), dt.datetime(2024, 5, 2, 8, 30)],
                pa.timestamp("ns", tz="Europe/Paris"),
            ),
            "Active": [True, False],
        }
    )
    path = tmp_path / "subs.parquet"
    pq.write_table(table, path)
    mapping = parse_mapping_yaml(
        """
name: custom.subscriptions
source: custom
entity: subscriptions
detect: [id, Amount]
key: id
identity:
  external_ids: [{column: Customer ID, type: billing_customer_id}]
events:
  - type: track
    event: Subscription Started
    timestamp: Created
    properties:
      plan: {constant: pro}
      seats: {column: Quantity, type: integer}
      mrr: {monthly: {amount: Amount, quantity: Quantity, interval: Interval}}
      active: {column: Active, type: boolean}
""",
        origin="subs.yaml",
    )
    (batch,) = read(path, mapping)
    rows = batch.candidates.to_pylist()
    assert [r["timestamp"] for r in rows] == [
        "2024-05-01T12:00:00+00:00",
        "2024-05-02T08:30:00+00:00",
    ]
    assert orjson.loads(rows[0]["properties"]) == {
        "plan": "pro",
        "seats": 3,
        "mrr": 58.5,
        "active": True,
    }
    assert orjson.loads(rows[1]["properties"])["mrr"] == 100.0
    assert orjson.loads(rows[1]["context"])["externalIds"] == []
    snapshot = batch.snapshot.to_pylist()
    assert snapshot[0]["quantity"] == "3"
    assert snapshot[1]["customer_id"] is None
    assert [s["record_number"] for s in snapshot] == [1, 2]


# --------------------------------------------------------------------------- the format


CUSTOM = """
name: custom.orders
source: custom
entity: invoices
detect: [Order No, Placed]
key: [Region, Order No]
timezone: Europe/Paris
identity:
  user_id: Customer
  email: [Email, Backup Email]
events:
  - type: track
    event: Invoice Paid
    timestamp: Placed
    timestamp_format: "%d/%m/%Y %H:%M"
    message_id: Event Id
    when:
      - {column: State, equals: PAID}
      - {column: Region, not_in: [test]}
    properties:
      amount: {column: Cents, type: number, scale: 0.01}
      currency: {column: Currency, default: EUR}
      invoice_id: Order No
      channel: {column: Channel, map: {W: web, S: store}}
      shipped_at: {column: Shipped, type: timestamp}
      mrr: {monthly: {amount: Cents, interval: Every, interval_count: Count, scale: 0.01}}
"""


def test_a_custom_mapping_applies_types_scales_maps_and_timezones(tmp_path: Path) -> None:
    mapping_file = write(tmp_path / "orders.yaml", CUSTOM)
    mapping = load_mapping("orders.yaml", tmp_path)
    assert mapping.name == "custom.orders"
    data = write(
        tmp_path / "orders.csv",
        "Region,Order No,Customer,Email,Backup Email,State,Cents,Currency,Channel,Placed,"
        "Shipped,Every,Count,Event Id\n"
        "eu,1001,u1,,b@example.com,paid,1999,,W,05/03/2024 10:00,2024-03-06 09:15:22 +0100,"
        "month,3,evt-1\n"
        "eu,1002,u2,c@example.com,,open,500,USD,S,05/03/2024 11:00,,year,,\n"
        "test,1003,u3,d@example.com,,paid,100,USD,S,05/03/2024 12:00,,month,,\n"
        "eu,1004,u4,e@example.com,,paid,100,USD,X,2024-03-05,,month,,\n",
    )
    rows = candidates(data, mapping)
    assert events(rows) == [
        (1, "track", "Invoice Paid", "2024-03-05T09:00:00+00:00"),  # Paris, naive → UTC
        (4, "track", "Invoice Paid", "2024-03-05"),  # not the format: passed through
    ]
    first = rows[0]
    assert (first["user_id"], first["email"], first["message_id"]) == (
        "u1",
        "b@example.com",
        "evt-1",
    )
    assert first["natural_key"] == "custom.orders:eu|1001:Invoice Paid"
    assert props(rows, 1, "Invoice Paid") == {
        "amount": 19.99,
        "currency": "EUR",
        "invoice_id": "1001",
        "channel": "web",
        "shipped_at": "2024-03-06T08:15:22+00:00",
        "mrr": 6.66,  # 19.99 every 3 months
    }
    assert props(rows, 4, "Invoice Paid")["channel"] == "X"  # not in the map: as written
    assert mapping_file.exists()


def test_a_typo_in_a_mapping_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    write(tmp_path / "orders.yaml", CUSTOM.replace("    properties:", "    propertes:"))
    with pytest.raises(MappingError) as info:
        load_mapping("orders.yaml", tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'orders.yaml'}: 1 problem")
    assert "events[0].propertes: unknown key 'propertes'; did you mean 'properties'?" in message


def test_every_problem_in_a_mapping_is_listed(tmp_path: Path) -> None:
    text = """
name: Orders
source: shopify
entity: invoices
detect: [Order No]
key: Order No
timezone: Mars/Olympus
events:
  - type: track
    timestamp: Placed
    properties:
      Amount: {column: Cents, type: string, scale: 0.01}
      seats: {column: Seats, type: integer, default: many}
      mrr: {monthly: {amount: Cents}, type: integer}
  - type: identify
    timestamp: Placed
    when: {column: State, equals: paid, in: [open]}
"""
    with pytest.raises(MappingError) as info:
        parse_mapping_yaml(text, origin="orders.yaml")
    problems = str(info.value).splitlines()[1:]
    assert problems == [
        "  - name: String should match pattern '^[a-z0-9_]+(\\.[a-z0-9_]+)*$' (got 'Orders')",
        "  - source: Input should be 'stripe', 'hubspot', 'zendesk' or 'custom' (got 'shopify')",
        "  - timezone: an IANA timezone name such as UTC or Europe/Paris (got 'Mars/Olympus')",
        "  - events[0].properties.Amount.[key]: String should match pattern "
        "'^[a-z][a-z0-9_]*$' (got 'Amount')",
        "  - events[0].properties.Amount: scale applies to integer and number values, not string",
        "  - events[0].properties.seats: default is 'many', not an integer",
        "  - events[0].properties.mrr: monthly is always a number; put its scale inside monthly "
        "and drop type",
        "  - events[1].when[0]: give exactly one of not_empty, equals, in or not_in",
    ]


def test_a_track_event_needs_a_name_and_an_identify_none() -> None:
    base = "name: x.y\nsource: custom\nentity: contacts\ndetect: [a]\nkey: a\nevents:\n"
    with pytest.raises(MappingError, match=r"events\[0\]: a track event needs an event name"):
        parse_mapping_yaml(base + "  - {type: track, timestamp: a}\n", origin="m.yaml")
    with pytest.raises(MappingError, match=r"an identify has no event name"):
        parse_mapping_yaml(base + "  - {type: identify, event: X, timestamp: a}\n", origin="m.yaml")
    with pytest.raises(MappingError, match=r"each event may appear once per row"):
        parse_mapping_yaml(
            base + "  - {type: identify, timestamp: a}\n  - {type: identify, timestamp: b}\n",
            origin="m.yaml",
        )


def test_yaml_syntax_errors_say_where(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "name: x\nevents: [\n")
    with pytest.raises(MappingError, match=r"bad\.yaml: not valid YAML at line 3"):
        load_mapping(str(tmp_path / "bad.yaml"), Path("/nonexistent"))


def test_an_unknown_mapping_name_lists_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping("stripe.charges", tmp_path)
    assert str(info.value).startswith("'stripe.charges' is not a built-in mapping")
    assert "stripe.subscriptions" in str(info.value.hint)
    assert load_mapping("hubspot.deals", tmp_path) is builtin_mappings()["hubspot.deals"]


@given(
    cents=st.integers(min_value=0, max_value=10_000_000),
    quantity=st.integers(min_value=1, max_value=500),
)
def test_a_yearly_price_is_a_twelfth_of_it_a_month(cents: int, quantity: int) -> None:
    amount = Decimal(cents) / 100
    monthly = monthly_amount(amount, quantity, "year", 1)
    # rounding to the cent loses at most half a cent a month
    assert abs(Decimal(str(monthly)) * 12 - amount * quantity) <= Decimal("0.06")
    assert monthly_amount(amount, quantity, "month", 12) == monthly
    assert monthly_amount(amount * 12, quantity, "year", 1) == float(amount * quantity)


def test_union_and_column_errors_read_as_one_sentence() -> None:
    text = """
name: x.y
source: custom
entity: contacts
detect: [a]
key: a
events:
  - type: track
    event: Foo
    timestamp: 5
    properties:
      x: {constant: [1, 2]}
      y: {monthly: {amount: a, intervall: i}}
"""
    with pytest.raises(MappingError) as info:
        parse_mapping_yaml(text, origin="m.yaml")
    assert str(info.value).splitlines()[1:] == [
        "  - events[0].timestamp: Input should be a column name or a list of column names (got 5)",
        "  - events[0].properties.x.constant: Input should be a string, boolean, integer or "
        "number (got [1, 2])",
        "  - events[0].properties.y.monthly.intervall: unknown key 'intervall'; "
        "did you mean 'interval'?",
    ]
