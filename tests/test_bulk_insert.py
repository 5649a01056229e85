"""insert_rows stores exactly what SQLAlchemy's own executemany stores (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, insert, select

from tenure.store._bulk import insert_rows
from tenure.store._tables import UTCDateTime

_metadata = MetaData()


def _table(name: str) -> Table:
    return Table(
        name,
        _metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(16)),
        Column("at", UTCDateTime()),
        Column("cost", Float),
    )


_ours, _theirs = _table("bulk_ours"), _table("bulk_theirs")
_defaulted = Table(
    "bulk_defaulted",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("n", Integer, default=3),
)
T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(bare_store: Engine) -> Engine:
    _metadata.create_all(bare_store)
    return bare_store


def test_rows_read_back_as_sqlalchemys_own(engine: Engine) -> None:
    rows = [
        {"id": n, "name": None if n % 7 == 0 else f"n{n}",
         "at": T0 + dt.timedelta(minutes=n) if n % 5 else None, "cost": n / 3}
        for n in range(1, 4500)  # more than one chunk
    ]  # fmt: skip
    with engine.begin() as connection:
        insert_rows(connection, _ours, rows)
        connection.execute(insert(_theirs), rows)
    with engine.connect() as connection:
        ours = connection.execute(select(_ours).order_by(_ours.c.id)).all()
        theirs = connection.execute(select(_theirs).order_by(_theirs.c.id)).all()
    assert len(ours) == len(rows)
    assert ours == theirs
    assert ours[1].at == T0 + dt.timedelta(minutes=2)


def test_rows_roll_back_with_their_transaction(engine: Engine) -> None:
    with engine.connect() as connection:
        insert_rows(connection, _ours, [{"id": 1, "name": "x", "at": T0, "cost": 1.0}])
        connection.rollback()
        assert connection.execute(select(_ours)).all() == []


def test_mixed_columns_and_skipped_python_defaults_are_refused(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(ValueError, match="different columns"):
        insert_rows(connection, _ours, [{"id": 1, "name": "a"}, {"id": 2, "cost": 1.0}])
    with engine.begin() as connection, pytest.raises(ValueError, match="Python defaults"):
        insert_rows(connection, _defaulted, [{"id": 1}])
