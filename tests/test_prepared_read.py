"""Prepared reads give exactly what SQLAlchemy's own execution gives (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)

from tenure.store import create_store_engine
from tenure.store._reads import PreparedRead
from tenure.store._tables import UTCDateTime

_sends = Table(
    "prepared_read_sends",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("account", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("cost", Float, nullable=False),
    Column("payload", Text),
)
T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(bare_store: Engine) -> Engine:
    _sends.create(bare_store)
    with bare_store.begin() as connection:
        connection.execute(
            insert(_sends),
            [
                {"account": f"a{n % 3}", "status": ("queued", "sent", "dead")[n % 3 - 1],
                 "at": T0 + dt.timedelta(hours=n), "cost": n / 4, "payload": f'{{"n": {n}}}'}
                for n in range(12)
            ],
        )  # fmt: skip
    return bare_store


_STATEMENTS = {
    "by account and time": select(_sends.c.id, _sends.c.at, _sends.c.payload).where(
        (_sends.c.account == bindparam("account")) & (_sends.c.at > bindparam("since"))
    ),
    "a literal and a constant list": select(_sends.c.id).where(
        (_sends.c.account == "a1")
        & _sends.c.status.in_([literal_column("'queued'"), literal_column("'sent'")])
    ),
    "an aggregate of times": select(_sends.c.account, func.max(_sends.c.at))
    .where(_sends.c.at > bindparam("since"))
    .group_by(_sends.c.account)
    .order_by(_sends.c.account),
    "a bound value": select(func.coalesce(func.sum(_sends.c.cost), 0.0)).where(
        _sends.c.status == bindparam("status", "sent")
    ),
    "nothing found": select(_sends.c.id).where(_sends.c.account == bindparam("account")),
}
_PARAMS = {"account": "a2", "since": T0 + dt.timedelta(hours=4)}


@pytest.mark.parametrize("name", sorted(_STATEMENTS))
def test_rows_are_sqlalchemys_rows(engine: Engine, name: str) -> None:
    statement = _STATEMENTS[name]
    params = {k: v for k, v in _PARAMS.items() if k in statement.compile().params}
    if name == "nothing found":
        params = {"account": "nobody"}
    prepared = PreparedRead(statement)
    with engine.connect() as connection:
        expected = [tuple(row) for row in connection.execute(statement, params)]
        got = prepared.rows(connection, params)
        again = prepared.rows(connection, params)  # compiled once, run twice
    assert [tuple(row) for row in got] == expected
    assert again == got
    if name == "nothing found":
        assert got == []
    else:
        assert got  # each case finds something: a comparison of nothing would prove nothing
    if name == "by account and time":
        assert all(row.at.tzinfo is not None for row in got)  # the column type's processing


def test_a_read_sees_its_connections_uncommitted_writes(engine: Engine) -> None:
    prepared = PreparedRead(select(func.count()).select_from(_sends))
    with engine.begin() as connection:
        connection.execute(
            insert(_sends),
            {"account": "z", "status": "queued", "at": T0, "cost": 0.0, "payload": None},
        )
        assert prepared.scalar(connection) == 13
        connection.rollback()
    with engine.connect() as connection:
        assert prepared.scalar(connection) == 12


def test_an_expanding_parameter_is_refused() -> None:
    statement = select(_sends.c.id).where(_sends.c.account.in_(bindparam("a", expanding=True)))
    with pytest.raises(ValueError, match="expand"):
        PreparedRead(statement)._for(create_store_engine("sqlite://").dialect)
