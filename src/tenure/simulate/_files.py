"""Writers: event files (Parquet or JSON lines), CSV exports and ground truth.

Each writer is opened once and fed a month (events: a block of accounts) at a
time, so memory stays bounded by one block of events. Output is byte-identical
for the same inputs: no wall-clock times, no random file names, fixed column
order and compression.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tenure.simulate._config import EventFormat
from tenure.simulate._emit import (
    EVENT_SCHEMA,
    PLANS,
    PRIORITIES,
    account_name,
    fmt_time,
    trial_accounts,
    trial_span,
    user_email,
    user_id,
    user_name,
)
from tenure.simulate._world import MonthFacts, World

__all__ = ["EventFile", "ExportWriter", "corrupt"]

_SUBJECTS = (
    "Cannot export report",
    "Invite not received",
    "Billing question",
    "Dashboard is slow to load",
    "Integration sync failed",
    "How do I set up alerts?",
    "API rate limit reached",
)
_VIA = ("Web Form", "Email", "Chat", "Web Widget")
_PRIORITY_LABELS = ("Low", "Normal", "High", "Urgent")
assert len(_PRIORITY_LABELS) == len(PRIORITIES)

_CORRUPT_CONTEXT = '{"library":{"name":"analytics-node","version":"2.1.0"}}'


def corrupt(
    table: pa.Table, rng: np.random.Generator, fraction: float, fmt: EventFormat
) -> tuple[pa.Table, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Pick rows to break and strip identity from a third of them (the kind cycles).

    Returns the table, the rows picked, and each row's kind: 0 stripped of
    identity, 1 unreadable body (Parquet: properties that are a JSON array, not an object;
    JSON lines: a truncated line), 2 an unparseable timestamp (JSON lines only).
    """
    n = table.num_rows
    rows = np.flatnonzero(rng.random(n) < fraction).astype(np.int64)
    kinds = np.arange(len(rows), dtype=np.int64) % (3 if fmt is EventFormat.JSONL else 2)
    if not len(rows):
        return table, rows, kinds
    mask = np.zeros(n, np.bool_)
    mask[rows[kinds == 0]] = True
    strip = pa.array(mask)
    nulls = pa.nulls(n, pa.string())
    columns = {name: table[name] for name in table.column_names}
    columns["user_id"] = pc.if_else(strip, nulls, table["user_id"])
    columns["anonymous_id"] = pc.if_else(strip, nulls, table["anonymous_id"])
    columns["group_id"] = pc.if_else(strip, nulls, table["group_id"])
    columns["traits"] = pc.if_else(strip, nulls, table["traits"])
    columns["context"] = pc.if_else(strip, _CORRUPT_CONTEXT, table["context"])
    # CRM events carry the lead's email in properties: that would identify them
    columns["properties"] = pc.if_else(
        pc.and_(strip, pc.is_valid(table["properties"])), "{}", table["properties"]
    )
    if fmt is EventFormat.PARQUET:
        broken = np.zeros(n, np.bool_)
        broken[rows[kinds == 1]] = True
        # not a JSON object (unparseable JSON text here aborts today's Parquet reader)
        columns["properties"] = pc.if_else(pa.array(broken), '["feature"]', columns["properties"])
    return pa.table(columns, schema=EVENT_SCHEMA), rows, kinds


def _fragment(key: str, values: pa.ChunkedArray, quote: bool) -> pa.Array:
    q = '"' if quote else ""
    return pc.fill_null(pc.binary_join_element_wise(f',"{key}":{q}', values, q, ""), "")


def jsonl_lines(
    table: pa.Table, rows: npt.NDArray[np.int64], kinds: npt.NDArray[np.int64]
) -> bytes:
    """The events as Segment JSON lines; *rows* of kind 1 truncated, of kind 2 badly timed."""
    n = table.num_rows
    if n == 0:
        return b""
    stamp = fmt_time(table["timestamp"].cast(pa.int64()).to_numpy() // 1000, "%Y-%m-%dT%H:%M:%SZ")
    bad_time = np.zeros(n, np.bool_)
    bad_time[rows[kinds == 2]] = True
    stamp = pc.if_else(pa.array(bad_time), "sometime last tuesday", stamp)
    is_group = pc.equal(table["type"], "group")
    group_top = pc.if_else(is_group, table["group_id"], pa.nulls(n, pa.string()))
    # a page call's name is "name" in Segment's JSON ("event" in its warehouse tables)
    is_page = pc.equal(table["type"], "page")
    event = pc.if_else(is_page, pa.nulls(n, pa.string()), table["event"])
    name = pc.if_else(is_page, table["event"], pa.nulls(n, pa.string()))
    line = pc.binary_join_element_wise(
        '{"messageId":"',
        table["message_id"],
        '","type":"',
        table["type"],
        '"',
        _fragment("event", event, True),
        _fragment("name", name, True),
        _fragment("userId", table["user_id"], True),
        _fragment("anonymousId", table["anonymous_id"], True),
        _fragment("groupId", group_top, True),
        ',"timestamp":"',
        stamp,
        '"',
        _fragment("properties", table["properties"], False),
        _fragment("traits", table["traits"], False),
        ',"context":',
        table["context"],
        "}\n",
        "",
    )
    truncated = np.zeros(n, np.bool_)
    truncated[rows[kinds == 1]] = True
    half = pc.utf8_slice_codeunits(line, 0, 40)
    line = pc.if_else(pa.array(truncated), pc.binary_join_element_wise(half, "\n", ""), line)
    return _concatenated(line)


def _concatenated(text: pa.Array | pa.ChunkedArray) -> bytes:
    """The characters of a string column with no nulls, back to back (no per-row Python)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = text.cast(pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    data = text.buffers()[2]
    return b"" if data is None else data.to_pybytes()[int(offsets[0]) : int(offsets[-1])]


class EventFile:
    """One month's event file, written a block at a time (Parquet row groups or JSON lines)."""

    def __init__(self, path: Path, fmt: EventFormat) -> None:
        self.fmt = fmt
        self._parquet: pq.ParquetWriter | None = None
        self._lines: BinaryIO | None = None
        if fmt is EventFormat.PARQUET:
            self._parquet = pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd")
        else:
            self._lines = path.open("wb")

    def __enter__(self) -> EventFile:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._lines is not None:
            self._lines.close()

    def write(
        self, table: pa.Table, rows: npt.NDArray[np.int64], kinds: npt.NDArray[np.int64]
    ) -> None:
        if self._parquet is not None:
            self._parquet.write_table(table, row_group_size=1_000_000)
        elif self._lines is not None:
            self._lines.write(jsonl_lines(table, rows, kinds))


class _Csv:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pacsv.CSVWriter(
            self.sink, schema, write_options=pacsv.WriteOptions(quoting_style="needed")
        )

    def write(self, columns: dict[str, pa.Array]) -> None:
        self.writer.write_table(pa.table(columns, schema=self.schema))

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.writer.close()
        self.sink.close()


def _schema(*names: str) -> pa.Schema:
    return pa.schema([(n, pa.string()) for n in names])


_INVOICES = _schema(
    "id",
    "Amount Due",
    "Amount Paid",
    "Attempt Count",
    "Attempted",
    "Currency",
    "Customer",
    "Customer Email",
    "Date (UTC)",
    "Paid At (UTC)",
    "Paid",
    "Status",
    "Subscription",
    "Total",
)
_TICKETS = _schema(
    "Id",
    "Requester",
    "Requester id",
    "Requester external id",
    "Requester email",
    "Subject",
    "Status",
    "Priority",
    "Via",
    "Ticket type",
    "Created at",
    "Updated at",
    "Solved at",
    "Satisfaction Score",
    "Organization",
    "Full resolution time in minutes",
)
_SUBSCRIPTIONS = _schema(
    "id",
    "Customer ID",
    "Customer Description",
    "Customer Email",
    "Plan",
    "Product",
    "Quantity",
    "Currency",
    "Interval",
    "Amount",
    "Status",
    "Created (UTC)",
    "Start Date (UTC)",
    "Current Period Start (UTC)",
    "Current Period End (UTC)",
    "Trial Start (UTC)",
    "Trial End (UTC)",
    "Canceled At (UTC)",
    "Ended At (UTC)",
    "Cancel At Period End",
    "Cancellation Reason",
)
_CUSTOMERS = _schema(
    "id",
    "Description",
    "Email",
    "Name",
    "Created (UTC)",
    "Account Balance",
    "Currency",
    "Delinquent",
)


def _text(values: npt.NDArray[np.generic]) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _money(values: npt.NDArray[np.float64]) -> pa.Array:
    """Amounts as Stripe's dashboard writes them: major units, two decimals."""
    cents = np.round(np.asarray(values, np.float64) * 100).astype(np.int64)
    whole = pc.cast(pa.array(cents // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(whole, ".", frac, "")


def _choose(mask: npt.NDArray[np.bool_], yes: pa.Array | str, no: pa.Array | str) -> pa.Array:
    return pc.if_else(pa.array(mask), yes, no)


def _ids(prefix: str, numbers: npt.NDArray[np.int64], width: int) -> pa.Array:
    text = pc.cast(pa.array(numbers + 1, pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(text, width=width, padding="0"), "")


class ExportWriter:
    """Stripe and Zendesk CSV exports: invoices and tickets stream, snapshots at the end."""

    def __init__(self, root: Path, sim_end: int) -> None:
        (root / "stripe").mkdir(parents=True, exist_ok=True)
        (root / "zendesk").mkdir(parents=True, exist_ok=True)
        self.root = root
        self.sim_end = sim_end
        self.invoices = _Csv(root / "stripe" / "invoices.csv", _INVOICES)
        self.tickets = _Csv(root / "zendesk" / "tickets.csv", _TICKETS)
        self.invoice_count = 0
        self.ticket_count = 0

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.invoices.close()
        self.tickets.close()

    def flush(self) -> None:
        """Make every row written so far readable by others."""
        self.invoices.flush()
        self.tickets.flush()

    def month(self, world: World, facts: MonthFacts, rng: np.random.Generator) -> None:
        self._invoices(world, facts, rng)
        self._tickets(world, facts)

    def _invoices(self, world: World, facts: MonthFacts, rng: np.random.Generator) -> None:
        acc = facts.invoice_account
        n = len(acc)
        if n == 0:
            return
        numbers = np.arange(self.invoice_count, self.invoice_count + n, dtype=np.int64)
        self.invoice_count += n
        failed, recovered = facts.invoice_failed, facts.invoice_recovered
        paid = ~failed | recovered
        attempts = np.where(failed, np.where(recovered, rng.integers(2, 5, n), 4), 1)
        paid_at = facts.invoice_ts + np.where(recovered, (attempts - 1) * 3 * 86_400, 60)
        paid_at = np.minimum(paid_at, self.sim_end - 1)
        amount = _money(facts.invoice_amount)
        buyer = world.first_user(acc)
        self.invoices.write(
            {
                "id": _ids("in_", numbers, 8),
                "Amount Due": amount,
                "Amount Paid": _choose(paid, amount, "0.00"),
                "Attempt Count": _text(attempts),
                "Attempted": _text(np.full(n, "true")),
                "Currency": _text(np.full(n, "usd")),
                "Customer": _ids("cus_", acc, 6),
                "Customer Email": user_email(world, buyer),
                "Date (UTC)": fmt_time(facts.invoice_ts),
                "Paid At (UTC)": _choose(paid, fmt_time(paid_at), pa.nulls(n, pa.string())),
                "Paid": _text(np.where(paid, "true", "false")),
                "Status": _text(np.where(paid, "paid", "uncollectible")),
                "Subscription": _ids("sub_", acc, 6),
                "Total": amount,
            }
        )

    def _tickets(self, world: World, facts: MonthFacts) -> None:
        acc = facts.ticket_account
        n = len(acc)
        if n == 0:
            return
        numbers = np.arange(self.ticket_count, self.ticket_count + n, dtype=np.int64)
        self.ticket_count += n
        solved = (facts.ticket_solved_ts >= 0) & (facts.ticket_solved_ts < self.sim_end)
        pending = ~solved & (numbers % 3 == 0)
        status = np.where(solved, "Solved", np.where(pending, "Pending", "Open"))
        updated = np.where(
            solved,
            facts.ticket_solved_ts,
            np.minimum(facts.ticket_created_ts + 3600, self.sim_end - 1),
        )
        minutes = np.maximum((facts.ticket_solved_ts - facts.ticket_created_ts) // 60, 1)
        csat = np.where(
            solved & (facts.ticket_csat >= 0),
            np.where(facts.ticket_csat == 1, "Good", "Bad"),
            np.where(solved, "Offered", "Unoffered"),
        )
        user = facts.ticket_user
        self.tickets.write(
            {
                "Id": _text(numbers + 1001),
                "Requester": user_name(user),
                "Requester id": _text(user + 900_000_001),
                "Requester external id": user_id(user),
                "Requester email": user_email(world, user),
                "Subject": pc.take(pa.array(_SUBJECTS), pa.array((numbers * 31) % len(_SUBJECTS))),
                "Status": _text(status),
                "Priority": pc.take(pa.array(_PRIORITY_LABELS), pa.array(facts.ticket_priority)),
                "Via": pc.take(pa.array(_VIA), pa.array(numbers % len(_VIA))),
                "Ticket type": _text(np.full(n, "question")),
                "Created at": fmt_time(facts.ticket_created_ts),
                "Updated at": fmt_time(updated),
                "Solved at": _choose(
                    solved,
                    fmt_time(np.maximum(facts.ticket_solved_ts, 0)),
                    pa.nulls(n, pa.string()),
                ),
                "Satisfaction Score": _text(csat),
                "Organization": account_name(acc),
                "Full resolution time in minutes": _choose(
                    solved, _text(minutes), pa.nulls(n, pa.string())
                ),
            }
        )

    def snapshots(self, world: World, *, root: Path | None = None, now: int | None = None) -> None:
        """Customers and subscriptions as exported at *now* (default: the end of the window),
        into *root*/stripe (default: the export folder)."""
        root = self.root if root is None else root
        now = self.sim_end if now is None else now
        (root / "stripe").mkdir(parents=True, exist_ok=True)
        s = world.state
        acc = np.arange(s.n, dtype=np.int64)
        n = len(acc)
        buyer = world.first_user(acc)
        email = user_email(world, buyer)
        created = fmt_time(s.start_ts[acc])
        customers = _Csv(root / "stripe" / "customers.csv", _CUSTOMERS)
        customers.write(
            {
                "id": _ids("cus_", acc, 6),
                "Description": account_name(acc),
                "Email": email,
                "Name": user_name(buyer),
                "Created (UTC)": created,
                "Account Balance": _text(np.full(n, "0.00")),
                "Currency": _text(np.full(n, "usd")),
                "Delinquent": _text(
                    np.where(s.failed_unrecovered[acc] & (s.churn_ts[acc] < 0), "true", "false")
                ),
            }
        )
        customers.close()
        canceled = s.churn_ts[acc] >= 0
        annual = s.annual[acc]
        price = world.price[s.plan[acc]] * np.where(annual, 12.0, 1.0)
        # the current period: the latest anniversary (annual) or billing day (monthly)
        period_days = np.where(annual, 365, 30)
        elapsed = np.maximum(now - 1 - s.start_ts[acc], 0)
        period_start = s.start_ts[acc] + (elapsed // (period_days * 86_400)) * period_days * 86_400
        reasons = np.where(s.churn_involuntary[acc], "payment_failed", "cancellation_requested")
        subscriptions = _Csv(root / "stripe" / "subscriptions.csv", _SUBSCRIPTIONS)
        nulls = pa.nulls(n, pa.string())
        trial = trial_accounts(world, acc)
        trial_start, trial_end = trial_span(world, acc)
        subscriptions.write(
            {
                "id": _ids("sub_", acc, 6),
                "Customer ID": _ids("cus_", acc, 6),
                "Customer Description": account_name(acc),
                "Customer Email": email,
                "Plan": pc.binary_join_element_wise(
                    "price_", pc.take(pa.array(PLANS), pa.array(s.plan[acc])), ""
                ),
                "Product": pc.utf8_capitalize(pc.take(pa.array(PLANS), pa.array(s.plan[acc]))),
                "Quantity": _text(s.seats[acc]),
                "Currency": _text(np.full(n, "usd")),
                "Interval": _text(np.where(annual, "year", "month")),
                "Amount": _money(price),
                "Status": _text(np.where(canceled, "canceled", "active")),
                "Created (UTC)": created,
                "Start Date (UTC)": created,
                "Current Period Start (UTC)": fmt_time(
                    np.where(canceled, s.churn_ts[acc], period_start)
                ),
                "Current Period End (UTC)": fmt_time(
                    np.where(canceled, s.churn_ts[acc], period_start + period_days * 86_400)
                ),
                "Trial Start (UTC)": _choose(trial, fmt_time(trial_start), nulls),
                "Trial End (UTC)": _choose(trial, fmt_time(trial_end), nulls),
                "Canceled At (UTC)": _choose(
                    canceled, fmt_time(np.maximum(s.churn_ts[acc], 0)), nulls
                ),
                "Ended At (UTC)": _choose(
                    canceled, fmt_time(np.maximum(s.churn_ts[acc], 0)), nulls
                ),
                "Cancel At Period End": _text(np.full(n, "false")),
                "Cancellation Reason": _choose(canceled, _text(reasons), nulls),
            }
        )
        subscriptions.close()


def read_text_csv(path: Path) -> pa.Table:
    """An export CSV with every column as text, as it was written."""
    with path.open(encoding="utf-8", newline="") as handle:
        names = next(csv.reader(handle))
    options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True
    )
    return pacsv.read_csv(path, convert_options=options)


def _blank(table: pa.Table, name: str, mask: pa.Array, value: str | None) -> pa.Table:
    column = table.column(name)
    replaced = pc.if_else(mask, pa.scalar(value, pa.string()), column)
    return table.set_column(table.schema.get_field_index(name), name, replaced)


def rows_as_of(kind: str, table: pa.Table, now: int) -> tuple[pa.Table, pa.Array]:
    """Invoice or ticket rows as an export taken at *now* shows them, and which are final.

    The streams hold each row as it ends up (a ticket with its solve time, an invoice
    with the time a retry paid it). Before that time an export shows a ticket open
    and an invoice unpaid, and the row comes again, changed, in a later export.
    """
    stamp = pa.scalar(fmt_time(np.array([now]))[0].as_py(), pa.string())
    if kind == "tickets":
        later = pc.fill_null(pc.greater_equal(table.column("Solved at"), stamp), False)
        for name, value in (
            ("Solved at", None),
            ("Full resolution time in minutes", None),
            ("Status", "Open"),
            ("Satisfaction Score", "Unoffered"),
        ):
            table = _blank(table, name, later, value)
        updated = table.column("Updated at")
        late = pc.fill_null(pc.greater_equal(updated, stamp), False)
        created = table.column("Created at")
        table = table.set_column(
            table.schema.get_field_index("Updated at"),
            "Updated at",
            pc.if_else(late, created, updated),
        )
    elif kind == "invoices":
        later = pc.fill_null(pc.greater_equal(table.column("Paid At (UTC)"), stamp), False)
        for name, value in (
            ("Paid At (UTC)", None),
            ("Amount Paid", "0.00"),
            ("Paid", "false"),
            ("Status", "open"),
        ):
            table = _blank(table, name, later, value)
    else:
        raise ValueError(f"no as-of rule for {kind!r} rows")
    return table, pc.invert(later)
