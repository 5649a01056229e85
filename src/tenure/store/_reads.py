"""Small reads on a hot path, compiled once and run on the driver's own cursor.

SQLAlchemy spends tens of microseconds around each execution (execution
context, parameter and result processing through generic machinery); for
reads that SQLite answers in a few microseconds, and that the next-best action
runs about five of per request, that was about a third of its decision's time
(in process: 0.221 -> 0.151 ms). :class:`PreparedRead`
keeps SQLAlchemy as the author of the SQL and of the type conversions — the
statement is compiled by the dialect, each parameter goes through its type's
bind processor and each column through its result processor — and only skips
the per-call machinery. It runs in the SQLAlchemy connection's own DBAPI
connection, so it sees that connection's transaction.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal_column
from sqlalchemy.engine import Dialect

__all__ = ["PreparedRead", "one_of"]

_Processor = Callable[[Any], Any] | None


@dataclass(slots=True)
class _Compiled:
    sql: str
    #: bind names in the order the SQL takes them (positional paramstyles), else None
    order: tuple[str, ...] | None
    binds: dict[str, _Processor]
    #: the values the statement itself holds (its literals, a bindparam's value)
    defaults: dict[str, Any]
    #: each column's result processor, made at the first execution (some dialects'
    #: processors depend on the type the driver reports for the column)
    results: tuple[_Processor, ...] | None = None


class PreparedRead:
    """A SELECT compiled once per dialect; :meth:`rows` runs it with new parameters."""

    def __init__(self, statement: Select[Any]) -> None:
        self._statement = statement
        names = [str(column.key) for column in statement.selected_columns]
        self._make: Callable[[Any], Any] = namedtuple("Row", names, rename=True)._make  # type: ignore[attr-defined]
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            done = self._statement.compile(dialect=dialect)
            if done.literal_execute_params or done.post_compile_params:
                raise ValueError("a prepared read cannot expand parameters at execution")
            compiled = _Compiled(
                sql=done.string,
                order=tuple(done.positiontup) if done.positional and done.positiontup else None,
                binds={
                    name: bind.type._cached_bind_processor(dialect)
                    for bind, name in done.bind_names.items()
                },
                defaults={
                    name: bind.effective_value
                    for bind, name in done.bind_names.items()
                    if not bind.required
                },
            )
            self._compiled[key] = compiled
        return compiled

    def rows(self, connection: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows for *params*, each a named tuple of processed values."""
        compiled = self._for(connection.dialect)
        values = {**compiled.defaults, **(params or {})}
        processed = {
            name: (process(values[name]) if process is not None else values[name])
            for name, process in compiled.binds.items()
        }
        arguments: Any = (
            [processed[name] for name in compiled.order]
            if compiled.order is not None
            else processed
        )
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, arguments)
            fetched = cursor.fetchall()
            if compiled.results is None:
                compiled.results = tuple(
                    column.type._cached_result_processor(connection.dialect, described[1])
                    for column, described in zip(
                        self._statement.selected_columns, cursor.description, strict=True
                    )
                )
        finally:
            cursor.close()
        results = compiled.results
        make = self._make
        if not any(results):
            return [make(row) for row in fetched]
        return [
            make(
                value if process is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in fetched
        ]

    def first(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first row, or None."""
        found = self.rows(connection, params)
        return found[0] if found else None

    def scalar(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = self.first(connection, params)
        return None if row is None else row[0]


def one_of(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (…)`` over our own constant *values*, written into the statement.

    A prepared read expands nothing at execution, so a fixed list of plain
    words (statuses) is inlined; anything that would need quoting is refused.
    """
    if not all(v.replace("_", "").isalnum() for v in values):
        raise ValueError(f"not a list of plain words: {values!r}")
    return column.in_([literal_column(f"'{v}'") for v in values])
