"""The column-mapping format: how a CSV or Parquet export becomes candidate events.

A mapping is declarative data, loaded from YAML and validated here. It names
the export it reads (``detect``: columns whose presence recognises the header),
the columns that identify a record (``key``), where identity comes from, and
the events each row produces. A value is a column with an optional type,
scale, lookup table (``map``) or ``default``; a ``constant``; or the one named
derivation, ``monthly`` (MRR from an amount, a quantity and a billing
interval). There is deliberately no expression language and nothing is
evaluated.

Wherever a column is expected, a list of columns means "the first of these
whose cell is not empty". That absorbs columns renamed between export versions
(Stripe's ``Start (UTC)`` became ``Start Date (UTC)``) and falls back from a
precise column to a rougher one. ``key`` and ``detect`` are plain lists of
columns that must all be present.

Comparisons in ``when`` and lookups in ``map`` ignore case and surrounding
whitespace, so ``Closed Won`` matches ``closed won``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tenure.errors import MappingError

__all__ = [
    "BadCell",
    "CastError",
    "CellReader",
    "Collection",
    "ColumnReader",
    "Condition",
    "ConditionReader",
    "ConstantReader",
    "Entity",
    "EventMapping",
    "EventType",
    "ExternalIdMapping",
    "IdentityMapping",
    "MappingSource",
    "MonthlyDerivation",
    "MonthlyReader",
    "Row",
    "Scalar",
    "TabularMapping",
    "ValueReader",
    "ValueSpec",
    "ValueType",
    "cast_text",
    "monthly_amount",
    "normalize_interval",
    "parse_mapping",
    "parse_mapping_yaml",
    "parse_timestamp",
    "plain_position",
    "read_decimal",
    "value_reader",
]

#: A value a YAML file can give literally: a constant, a default, a map entry.
Scalar = str | bool | int | float

_SNAKE = r"^[a-z][a-z0-9_]*$"
_MAPPING_NAME = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"


class CastError(ValueError):
    """A cell that cannot be read as the type its mapping asks for.

    The message is what was expected (``"a number"``); the reader adds the
    column and the value.
    """


# --------------------------------------------------------------------------- enums


class ValueType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # emitted as an ISO 8601 string in UTC


class EventType(enum.StrEnum):
    IDENTIFY = "identify"
    GROUP = "group"
    TRACK = "track"


class Entity(enum.StrEnum):
    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    OPPORTUNITIES = "opportunities"
    TICKETS = "tickets"
    SUBSCRIPTIONS = "subscriptions"
    INVOICES = "invoices"


class MappingSource(enum.StrEnum):
    STRIPE = "stripe"
    HUBSPOT = "hubspot"
    ZENDESK = "zendesk"
    CUSTOM = "custom"


class Collection(enum.StrEnum):
    """Segment's ``context.externalIds[].collection``: what kind of thing the id names."""

    USERS = "users"
    ACCOUNTS = "accounts"


# --------------------------------------------------------------------------- casting

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true/false, yes/no, 1/0)",
    "timestamp": "an ISO 8601 timestamp",
}
# periods per month as a fraction, so a yearly 1200 is exactly 100 a month
_PER_MONTH: dict[str, tuple[int, int]] = {
    "day": (365, 12),
    "week": (52, 12),
    "month": (1, 1),
    "quarter": (1, 3),
    "year": (1, 12),
}
_INTERVAL_ALIASES = {
    "daily": "day",
    "days": "day",
    "weekly": "week",
    "weeks": "week",
    "monthly": "month",
    "months": "month",
    "quarterly": "quarter",
    "quarters": "quarter",
    "yearly": "year",
    "years": "year",
    "annual": "year",
    "annually": "year",
}
_INTERVAL_EXPECTED = "a billing interval (day, week, month, quarter or year)"
_CENT = Decimal("0.01")


def read_decimal(text: str, expected: str = _EXPECTED["number"]) -> Decimal:
    """A plain decimal number (``12``, ``-0.5``, ``1e3``); CastError otherwise."""
    if not _DECIMAL.fullmatch(text):
        raise CastError(expected)
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise CastError(expected) from None


def _parse_iso(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        for suffix in (" UTC", " GMT"):
            if text.endswith(suffix):
                parsed = dt.datetime.fromisoformat(text.removesuffix(suffix))
                if parsed.tzinfo is None:
                    return parsed.replace(tzinfo=dt.UTC)
        raise


def parse_timestamp(text: str, fmt: str | None, tz: dt.tzinfo) -> str | None:
    """``text`` as an ISO 8601 string in UTC, or None when it cannot be read.

    Naive times are taken to be in ``tz`` (the mapping's timezone). Without a
    ``fmt`` (a :func:`datetime.strptime` format) any ISO 8601 form is accepted,
    with or without ``T``, seconds, fraction or offset.
    """
    try:
        parsed = dt.datetime.strptime(text, fmt) if fmt else _parse_iso(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(dt.UTC).isoformat()


def cast_text(
    text: str,
    type_: ValueType,
    *,
    scale: Decimal | None = None,
    fmt: str | None = None,
    tz: dt.tzinfo = dt.UTC,
) -> Scalar:
    """Read one non-empty cell as ``type_``; raise :class:`CastError` if it is not one."""
    if type_ is ValueType.STRING:
        return text
    if type_ is ValueType.INTEGER or type_ is ValueType.NUMBER:
        expected = _EXPECTED[type_]
        number = read_decimal(text, expected)
        if scale is not None:
            number *= scale
        if type_ is ValueType.NUMBER:
            return float(number)
        if number != number.to_integral_value():
            raise CastError(expected)
        return int(number)
    if type_ is ValueType.BOOLEAN:
        folded = text.casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise CastError(_EXPECTED[type_])
    stamp = parse_timestamp(text, fmt, tz)
    if stamp is None:
        raise CastError(f"a timestamp in the format {fmt}" if fmt else _EXPECTED[type_])
    return stamp


def normalize_interval(text: str) -> str:
    """``month``, ``year`` … from the spellings exports use; CastError otherwise."""
    folded = text.strip().casefold()
    folded = _INTERVAL_ALIASES.get(folded, folded)
    if folded not in _PER_MONTH:
        raise CastError(_INTERVAL_EXPECTED)
    return folded


def monthly_amount(amount: Decimal, quantity: int, interval: str, count: int) -> float:
    """The monthly equivalent of ``amount × quantity`` billed every ``count`` ``interval``s."""
    per, months = _PER_MONTH[interval]
    value = amount * quantity * per / (months * count)
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _expected_python_type(type_: ValueType, value: Scalar) -> bool:
    if isinstance(value, str):
        return True  # strings are cast like cells
    if type_ is ValueType.BOOLEAN:
        return isinstance(value, bool)
    if type_ is ValueType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ is ValueType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


# --------------------------------------------------------------------------- models


def _as_tuple(value: object) -> object:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(value)
    return value


def _as_value_spec(value: object) -> object:
    if isinstance(value, str | list):
        return {"column": value}
    return value


def _as_conditions(value: object) -> object:
    if value is None:
        return ()
    if isinstance(value, dict):
        return (value,)
    return _as_tuple(value)


ColumnName = Annotated[str, Field(min_length=1)]
#: One column, or a list meaning "the first of these whose cell is not empty".
Columns = Annotated[tuple[ColumnName, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
OutputName = Annotated[str, Field(pattern=_SNAKE)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonthlyDerivation(_Model):
    """MRR: ``amount × scale × quantity`` normalised from its billing interval to a month."""

    amount: Columns
    quantity: Columns | None = None  # missing or empty: 1
    interval: Columns | None = None  # missing: month; an empty cell: no value
    interval_count: Columns | None = None  # "every 3 months"; missing or empty: 1
    scale: float = Field(default=1.0, gt=0)


class ValueSpec(_Model):
    """Where one trait or property comes from. A bare string is ``{column: …}``."""

    column: Columns | None = None
    constant: Scalar | None = None
    monthly: MonthlyDerivation | None = None
    type: ValueType = ValueType.STRING
    scale: float | None = Field(default=None, gt=0)
    map: dict[str, Scalar | None] | None = None  # a null output means "treat as empty"
    default: Scalar | None = None
    format: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ValueSpec:
        given = [n for n in ("column", "constant", "monthly") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, constant or monthly")
        if self.monthly is not None:
            extra = {"scale", "map", "default", "format"} & self.model_fields_set
            if "type" in self.model_fields_set and self.type is not ValueType.NUMBER:
                extra.add("type")
            if extra:
                raise ValueError(
                    "monthly is always a number; put its scale inside monthly and drop "
                    + ", ".join(sorted(extra))
                )
            return self
        if self.scale is not None and self.type not in (ValueType.INTEGER, ValueType.NUMBER):
            raise ValueError(f"scale applies to integer and number values, not {self.type}")
        if self.format is not None and self.type is not ValueType.TIMESTAMP:
            raise ValueError("format (a strptime format) applies to timestamp values only")
        outputs: list[tuple[str, Scalar]] = [
            *((f"map[{k!r}]", v) for k, v in (self.map or {}).items() if v is not None),
            *(("constant", v) for v in [self.constant] if v is not None),
            *(("default", v) for v in [self.default] if v is not None),
        ]
        for where, output in outputs:
            ok = _expected_python_type(self.type, output)
            if ok and isinstance(output, str):
                try:
                    cast_text(output, self.type, fmt=self.format)
                except CastError:
                    ok = False
            if not ok:
                raise ValueError(f"{where} is {output!r}, not {_EXPECTED[self.type]}")
        return self

    def output(self, value: Scalar) -> Scalar:
        """A map, constant or default value as emitted (strings cast to ``type``)."""
        if isinstance(value, str):
            return cast_text(value, self.type, fmt=self.format)
        if self.type is ValueType.NUMBER:
            return float(value)
        return value


Value = Annotated[ValueSpec, BeforeValidator(_as_value_spec)]


class Condition(_Model):
    """When an event applies: exactly one test on a column (or the first non-empty of several)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    column: Columns
    not_empty: bool | None = None  # true: has a value; false: is empty
    equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [
            n for n in ("not_empty", "equals", "in_", "not_in") if getattr(self, n) is not None
        ]
        if len(tests) != 1:
            raise ValueError("give exactly one of not_empty, equals, in or not_in")
        return self

    def folded_values(self) -> frozenset[str]:
        """The values compared against, as the reader compares them."""
        values: tuple[Scalar, ...]
        if self.equals is not None:
            values = (self.equals,)
        else:
            values = self.in_ if self.in_ is not None else (self.not_in or ())
        return frozenset(_fold(v) for v in values)


def _fold(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().casefold()


class ExternalIdMapping(_Model):
    """One ``context.externalIds`` entry, as Segment writes it."""

    column: Columns
    type: Annotated[str, Field(pattern=_SNAKE)]
    collection: Collection = Collection.USERS


class IdentityMapping(_Model):
    user_id: Columns | None = None
    group_id: Columns | None = None
    email: Columns | None = None
    external_ids: tuple[ExternalIdMapping, ...] = ()


class EventMapping(_Model):
    """One event a row produces: an identify, a group or a named track event."""

    type: EventType
    event: str | None = None  # track only: the event name, e.g. "Subscription Started"
    timestamp: Columns
    timestamp_format: str | None = None  # a strptime format; default: any ISO 8601 form
    when: Annotated[tuple[Condition, ...], BeforeValidator(_as_conditions)] = ()
    message_id: Columns | None = None  # default: derived from the record's natural key
    traits: dict[OutputName, Value] = Field(default_factory=dict)
    properties: dict[OutputName, Value] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> EventMapping:
        if self.type is EventType.TRACK:
            if not self.event or not self.event.strip():
                raise ValueError("a track event needs an event name (event: …)")
            if self.traits:
                raise ValueError("a track event carries properties, not traits")
        else:
            if self.event is not None:
                raise ValueError(f"an {self.type} has no event name; remove event")
            if self.properties:
                raise ValueError(f"an {self.type} carries traits, not properties")
        return self

    @property
    def label(self) -> str:
        """The event name of a track, the type otherwise: the last part of a natural key."""
        return self.event if self.event is not None else self.type.value

    @property
    def values(self) -> dict[str, ValueSpec]:
        return self.properties if self.type is EventType.TRACK else self.traits


class TabularMapping(_Model):
    """How one export format (``stripe.subscriptions`` …) becomes candidate events."""

    name: Annotated[str, Field(pattern=_MAPPING_NAME)]
    source: MappingSource
    entity: Entity
    description: str = ""
    detect: Annotated[tuple[ColumnName, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
    key: Annotated[tuple[ColumnName, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
    identity: IdentityMapping = IdentityMapping()
    timezone: str = "UTC"  # for timestamps without an offset
    events: Annotated[tuple[EventMapping, ...], Field(min_length=1)]

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA timezone name such as UTC or Europe/Paris") from None
        return value

    @model_validator(mode="after")
    def _unique_events(self) -> TabularMapping:
        labels = [e.label for e in self.events]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(
                f"each event may appear once per row, so natural keys stay unique: {twice}"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def required_columns(self) -> tuple[str, ...]:
        """Columns a file must have for this mapping to apply: ``detect`` and ``key``."""
        return tuple(dict.fromkeys((*self.detect, *self.key)))

    def column_groups(self) -> list[tuple[str, ...]]:
        """Every column reference (a coalescing group) the mapping reads, in order."""
        groups: list[tuple[str, ...]] = []
        ident = self.identity
        groups += [g for g in (ident.user_id, ident.group_id, ident.email) if g is not None]
        groups += [x.column for x in ident.external_ids]
        for event in self.events:
            groups.append(event.timestamp)
            groups += [c.column for c in event.when]
            if event.message_id is not None:
                groups.append(event.message_id)
            for spec in event.values.values():
                if spec.column is not None:
                    groups.append(spec.column)
                elif spec.monthly is not None:
                    m = spec.monthly
                    parts = (m.amount, m.quantity, m.interval, m.interval_count)
                    groups += [p for p in parts if p is not None]
        return list(dict.fromkeys(groups))


# --------------------------------------------------------------------------- reading rows
#
# A mapping's references resolved against one header, so a row is read by
# position. Rows arrive cleaned: every cell stripped, and None when empty.

#: A cleaned row: text or None, by column position.
Row = Sequence[str | None]


class BadCell(Exception):
    """A cell that is not what its value spec asks for: the column, the value, what was wanted."""

    def __init__(self, column: str, value: str, expected: str) -> None:
        super().__init__(column, value, expected)
        self.column = column
        self.value = value
        self.expected = expected


class CellReader:
    """A column reference resolved against one header: the first non-empty of its columns."""

    __slots__ = ("only", "pairs")

    def __init__(self, group: Sequence[str], index: Mapping[str, int]) -> None:
        self.pairs = tuple((c, index[c]) for c in group if c in index)
        self.only = self.pairs[0][1] if len(self.pairs) == 1 else -1

    def text(self, clean: Row) -> str | None:
        if self.only >= 0:
            return clean[self.only]
        for _, i in self.pairs:
            value = clean[i]
            if value is not None:
                return value
        return None

    def column(self, clean: Row) -> str:
        """The column :meth:`text` read (for messages)."""
        return next((c for c, i in self.pairs if clean[i] is not None), "")


class ConditionReader:
    """A ``when`` condition resolved against one header."""

    __slots__ = ("cell", "empty", "member", "test", "values")

    def __init__(self, condition: Condition, index: Mapping[str, int]) -> None:
        self.cell = CellReader(condition.column, index)
        self.values = condition.folded_values()
        self.test = condition.not_empty is None  # a test of the value, not of presence
        self.empty = condition.not_empty is False or condition.not_in is not None
        self.member = condition.not_in is None  # in/equals rather than not_in

    def holds(self, clean: Row) -> bool:
        text = self.cell.text(clean)
        if text is None:
            return self.empty
        if not self.test:
            return not self.empty
        return (text.casefold() in self.values) is self.member


class ColumnReader:
    """A column value: lookup, default and cast as its :class:`ValueSpec` says."""

    __slots__ = ("cell", "default", "fmt", "lookup", "plain", "scale", "type", "tz")

    def __init__(self, spec: ValueSpec, cell: CellReader, tz: dt.tzinfo) -> None:
        self.cell = cell
        self.type = spec.type
        self.scale = Decimal(repr(spec.scale)) if spec.scale is not None else None
        self.fmt = spec.format
        self.tz = tz
        self.lookup: dict[str, Scalar | None] = {
            k.strip().casefold(): (None if v is None else spec.output(v))
            for k, v in (spec.map or {}).items()
        }
        self.default = spec.output(spec.default) if spec.default is not None else None
        self.plain = spec.type is ValueType.STRING and not self.lookup

    def evaluate(self, clean: Row) -> Scalar | None:
        text = self.cell.text(clean)
        if text is None:
            return self.default
        if self.plain:
            return text
        if self.lookup:
            folded = text.casefold()
            if folded in self.lookup:
                hit = self.lookup[folded]
                return self.default if hit is None else hit
            if self.type is ValueType.STRING:
                return text
        try:
            return cast_text(text, self.type, scale=self.scale, fmt=self.fmt, tz=self.tz)
        except CastError as error:
            raise BadCell(self.cell.column(clean), text, str(error)) from None


class ConstantReader:
    """A constant value."""

    __slots__ = ("value",)

    def __init__(self, value: Scalar) -> None:
        self.value = value

    def evaluate(self, clean: Row) -> Scalar | None:
        return self.value


class MonthlyReader:
    """MRR: amount × scale × quantity per interval, normalised to a month."""

    __slots__ = ("amount", "count", "interval", "quantity", "scale")

    def __init__(self, spec: MonthlyDerivation, index: Mapping[str, int]) -> None:
        self.amount = CellReader(spec.amount, index)
        self.quantity = CellReader(spec.quantity, index) if spec.quantity else None
        self.interval = CellReader(spec.interval, index) if spec.interval else None
        self.count = CellReader(spec.interval_count, index) if spec.interval_count else None
        self.scale = Decimal(repr(spec.scale))

    @staticmethod
    def _whole(cell: CellReader | None, clean: Row, minimum: int) -> int:
        text = cell.text(clean) if cell is not None else None
        if text is None:
            return 1
        try:
            value = cast_text(text, ValueType.INTEGER)
        except CastError:
            value = None
        if not isinstance(value, int) or value < minimum:
            assert cell is not None
            raise BadCell(cell.column(clean), text, f"a whole number ≥ {minimum}")
        return value

    def evaluate(self, clean: Row) -> Scalar | None:
        text = self.amount.text(clean)
        if text is None:
            return None
        try:
            amount = read_decimal(text) * self.scale
        except CastError as error:
            raise BadCell(self.amount.column(clean), text, str(error)) from None
        interval = "month"
        if self.interval is not None:
            period = self.interval.text(clean)
            if period is None:
                return None  # a one-off price: no recurring revenue to state
            try:
                interval = normalize_interval(period)
            except CastError as error:
                raise BadCell(self.interval.column(clean), period, str(error)) from None
        quantity = self._whole(self.quantity, clean, 0)
        count = self._whole(self.count, clean, 1)
        return monthly_amount(amount, quantity, interval, count)


ValueReader = ColumnReader | ConstantReader | MonthlyReader


def value_reader(spec: ValueSpec, index: Mapping[str, int], tz: dt.tzinfo) -> ValueReader:
    """How to read ``spec`` from rows with the header ``index`` (column → position)."""
    if spec.monthly is not None:
        return MonthlyReader(spec.monthly, index)
    if spec.constant is not None:
        return ConstantReader(spec.output(spec.constant))
    assert spec.column is not None  # the model guarantees one of the three
    return ColumnReader(spec, CellReader(spec.column, index), tz)


def plain_position(plan: ValueReader) -> int:
    """The position of a plain one-column text value, which can be read straight from the
    row (the most common kind, and the hot path), or -1."""
    if isinstance(plan, ColumnReader) and plan.plain and plan.default is None:
        return plan.cell.only
    return -1


# --------------------------------------------------------------------------- loading


def _known_keys() -> list[str]:
    models: list[type[BaseModel]] = [
        TabularMapping,
        IdentityMapping,
        ExternalIdMapping,
        EventMapping,
        Condition,
        ValueSpec,
        MonthlyDerivation,
    ]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "bool", "int", "float", "tuple[str, ...]") or "function-" in part:
            continue  # pydantic's names for union members and validators: noise to a reader
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_VALID = "Input should be a valid "


def _problem(item: Any) -> tuple[str, str]:
    """Where a problem is, and what it is."""
    where = _where(tuple(item["loc"]))
    message: str = item["msg"].removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        key = str(item["loc"][-1])
        close = difflib.get_close_matches(key, _known_keys(), n=1)
        return where, f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    if item["type"] == "missing":
        return where, "required key is missing"
    if item["type"] == "tuple_type":
        message = "Input should be a column name or a list of column names"
    return where, message


def _shown(item: Any) -> str:
    value = item.get("input")
    if value is None or isinstance(value, dict) or item["type"] == "extra_forbidden":
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def _describe(items: list[Any]) -> list[str]:
    # a list whose items failed also reports itself "too short": noise next to the cause
    locs = [tuple(i["loc"]) for i in items]
    items = [
        i
        for i in items
        if i["type"] != "too_short"
        or not any(len(n) > len(i["loc"]) and n[: len(i["loc"])] == tuple(i["loc"]) for n in locs)
    ]
    found: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        where, message = _problem(item)
        found.setdefault(where, []).append((message, _shown(item)))
    lines = []
    for where, messages in found.items():
        kinds = [m.removeprefix(_VALID) for m, _ in messages if m.startswith(_VALID)]
        if len(kinds) > 1 and len(kinds) == len(messages):
            # one value tried against each member of a union (a string, a number …)
            listed = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
            messages = [(f"Input should be a {listed}", messages[0][1])]
        lines += [f"{where}: {m}{shown}" for m, shown in dict.fromkeys(messages)]
    return lines


def parse_mapping(data: object, *, origin: str) -> TabularMapping:
    """Validate a parsed mapping document; :class:`MappingError` lists every problem."""
    if not isinstance(data, dict):
        raise MappingError(
            f"{origin}: a mapping file is a YAML mapping with name, source, entity, detect, "
            f"key and events (got {type(data).__name__})"
        )
    try:
        return TabularMapping.model_validate(data)
    except ValidationError as error:
        problems = _describe(error.errors())
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        lines = "\n".join(f"  - {p}" for p in problems)
        raise MappingError(
            f"{origin}: {count}\n{lines}",
            hint="see the built-in mappings (tenure ingest --list-mappings) for complete examples",
        ) from None


def parse_mapping_yaml(text: str, *, origin: str) -> TabularMapping:
    """Parse and validate the text of a mapping YAML file."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise MappingError(f"{origin}: not valid YAML{where}: {problem}") from None
    return parse_mapping(data, origin=origin)
