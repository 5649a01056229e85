"""Candidate records: what every input format is turned into before validation.

A reader (Segment JSON/JSONL, Parquet, a CSV export through a mapping) turns
its input into an Arrow table with exactly these columns. Values are still as
the source had them: timestamps are strings, JSON fields are JSON text, and
nothing has been checked yet. :mod:`tenure.collect._validate` then checks every
row in one vectorized pass and splits valid events from quarantined records.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["CANDIDATE_SCHEMA", "empty_candidates"]

CANDIDATE_SCHEMA = pa.schema(
    [
        # 1-based line (JSONL), record (JSON batch) or data row (CSV/Parquet) number
        pa.field("record_number", pa.int64(), nullable=False),
        # the original record as text, kept for the quarantine
        # (may be null for columnar inputs: the validator then rebuilds it from the
        # canonical fields, for quarantined rows only)
        pa.field("raw", pa.string()),
        # set when the reader already knows the record is broken: a reason code
        # from tenure.collect.ReasonCode (malformed_json, malformed_row, wrong_type …)
        # and the sentence that explains it, naming the field and the bad value
        pa.field("reader_error_code", pa.string()),
        pa.field("reader_error", pa.string()),
        pa.field("message_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("event", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("group_id", pa.string()),
        pa.field("previous_id", pa.string()),
        pa.field("email", pa.string()),
        pa.field("timestamp", pa.string()),  # as given; parsed during validation
        pa.field("sent_at", pa.string()),
        pa.field("properties", pa.string()),  # JSON object text or null
        pa.field("traits", pa.string()),  # JSON object text or null
        pa.field("context", pa.string()),  # JSON object text or null
        # For records without a messageId: what identifies the record in its source
        # (e.g. "stripe.subscriptions:sub_123:Subscription Started"). The message id
        # becomes a hash of it and the timestamp, so re-ingesting adds nothing.
        pa.field("natural_key", pa.string()),
    ]
)


def empty_candidates() -> pa.Table:
    return CANDIDATE_SCHEMA.empty_table()
