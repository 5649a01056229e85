"""Creating, reading and transactionally rewriting identity's warehouse tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from tenure.identity._model import (
    ACCOUNT_SPEC,
    ACCOUNTS_TABLE,
    DAYS_TABLE,
    EDGES_TABLE,
    MEMBERSHIPS_TABLE,
    NODE_EDGES_TABLE,
    NODE_MEMBERSHIPS_TABLE,
    NODE_TRAITS_TABLE,
    PERSON_SPEC,
    PROFILES_TABLE,
    RUNS_TABLE,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

    from tenure.warehouse import Warehouse

__all__ = [
    "conform",
    "ensure_tables",
    "rows",
    "scalar",
    "table_schemas",
    "transaction",
]


def table_schemas() -> dict[str, pa.Schema]:
    """Every table identity stitching writes, with its columns."""
    schemas: dict[str, pa.Schema] = {}
    for spec in (PERSON_SPEC, ACCOUNT_SPEC):
        schemas[spec.nodes_table] = spec.nodes_schema()
        schemas[spec.links_table] = spec.links_schema()
        schemas[spec.merges_table] = spec.merges_schema()
    for table in (
        RUNS_TABLE,
        DAYS_TABLE,
        NODE_TRAITS_TABLE,
        NODE_MEMBERSHIPS_TABLE,
        NODE_EDGES_TABLE,
        PROFILES_TABLE,
        ACCOUNTS_TABLE,
        MEMBERSHIPS_TABLE,
        EDGES_TABLE,
    ):
        schemas[table.name] = table.schema
    return schemas


def ensure_tables(warehouse: Warehouse) -> None:
    existing = set(warehouse.backend.list_tables())
    for name, schema in table_schemas().items():
        if name not in existing:
            warehouse.backend.create_table(name, schema=ibis.Schema.from_pyarrow(schema))


def conform(expr: ir.Table, schema: pa.Schema) -> ir.Table:
    """*expr* with exactly *schema*'s columns, in order and cast to its types."""
    target = ibis.Schema.from_pyarrow(schema)
    return expr.select(*[expr[name].cast(dtype).name(name) for name, dtype in target.items()])


def rows(backend: BaseBackend, expr: ir.Table) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = backend.to_pyarrow(expr).to_pylist()
    return result


def scalar(backend: BaseBackend, expr: ir.Scalar) -> Any:
    return backend.execute(expr)


@contextlib.contextmanager
def transaction(backend: BaseBackend) -> Iterator[None]:
    """All identity writes of one step commit together (DuckDB); elsewhere a no-op.

    Spark has no multi-table transactions: there a run that fails midway can
    leave tables partly written. Recover by dropping the identity tables and
    stitching again from the lake (splits then have to be made again).
    """
    connection = getattr(backend, "con", None)
    if getattr(backend, "name", None) != "duckdb" or connection is None:
        yield
        return
    connection.begin()
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
