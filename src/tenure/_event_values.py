"""Typed Ibis values from lake columns: JSON properties, identifiers as stitching writes them.

Below every stage (it imports only Ibis), so collect, identity, features, lifecycle and
models read event values the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["json_number", "typed_identifier"]


def json_number(value: ir.JSONValue) -> ir.FloatingValue:
    """A JSON property as a number, whether written as a number or as numeric text."""
    return ibis.coalesce(value.float, value.str.try_cast("float64"))


def typed_identifier(kind: str, column: ir.StringValue) -> ir.StringValue:
    """``kind:value`` as stitching writes identifiers, or null for a null or empty value."""
    value = column.nullif("")
    return value.isnull().ifelse(ibis.null("string"), ibis.literal(f"{kind}:") + value)
