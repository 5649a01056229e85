"""A tamper-evident audit log: each entry's hash covers its content and the previous hash."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from tenure.store._tables import audit_log

__all__ = ["AuditEntry", "append_audit", "read_audit", "verify_audit_chain"]

_GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def _digest(
    prev_hash: str, at: dt.datetime, actor: str, action: str, target: str, detail: str
) -> str:
    payload = "\x1f".join(
        [prev_hash, at.astimezone(dt.UTC).isoformat(), actor, action, target, detail]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def append_audit(
    connection: Connection,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> str:
    """Append one entry inside the caller's transaction; returns its hash."""
    if connection.dialect.name == "postgresql":
        # Serialize writers so two appends never chain to the same predecessor.
        connection.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
    last = connection.execute(
        select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev = last or _GENESIS
    text = orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS).decode()
    digest = _digest(prev, at, actor, action, target, text)
    connection.execute(
        insert(audit_log).values(
            at=at,
            actor=actor,
            action=action,
            target=target,
            detail=text,
            prev_hash=prev,
            hash=digest,
        )
    )
    return digest


def read_audit(connection: Connection, *, action: str | None = None) -> list[AuditEntry]:
    query = select(audit_log).order_by(audit_log.c.id)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            detail=orjson.loads(row.detail),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )
        for row in connection.execute(query)
    ]


def verify_audit_chain(connection: Connection) -> int | None:
    """The id of the first entry whose hash does not hold, or None if the chain is intact."""
    prev = _GENESIS
    for row in connection.execute(select(audit_log).order_by(audit_log.c.id)):
        if row.prev_hash != prev or row.hash != _digest(
            prev, row.at, row.actor, row.action, row.target, row.detail
        ):
            return int(row.id)
        prev = row.hash
    return None
