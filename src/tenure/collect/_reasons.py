"""Why a record was quarantined."""

from __future__ import annotations

import enum

__all__ = ["ReasonCode"]


class ReasonCode(enum.StrEnum):
    MALFORMED_JSON = "malformed_json"
    MALFORMED_ROW = (
        "malformed_row"  # a CSV row the parser could not split into the header's columns
    )
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_IDENTITY = "missing_identity"
    MISSING_EVENT_NAME = "missing_event_name"
    BAD_TIMESTAMP = "bad_timestamp"  # missing or unparseable
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_LARGE = "too_large"
    MISSING_PROPERTY = "missing_property"  # a catalog event without a required property
    WRONG_TYPE = "wrong_type"  # a catalog property or mapped column of the wrong type or range
