"""Versions of policies and templates: a new row whenever a file's text changes."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import Connection, insert, select

from tenure.store._tables import policy_versions

__all__ = ["ensure_version", "versions"]


def ensure_version(
    connection: Connection, kind: str, name: str, source: str, *, at: dt.datetime, actor: str
) -> int:
    """The version number of *source*: the latest one if unchanged, else a new one."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    latest = connection.execute(
        select(policy_versions.c.version, policy_versions.c.content_hash)
        .where((policy_versions.c.kind == kind) & (policy_versions.c.name == name))
        .order_by(policy_versions.c.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.content_hash == digest:
        return int(latest.version)
    version = 1 if latest is None else int(latest.version) + 1
    connection.execute(
        insert(policy_versions).values(
            kind=kind,
            name=name,
            version=version,
            content_hash=digest,
            source=source,
            created_at=at,
            created_by=actor,
        )
    )
    return version


def versions(connection: Connection, kind: str, name: str | None = None) -> list[dict[str, object]]:
    query = select(policy_versions).where(policy_versions.c.kind == kind)
    if name is not None:
        query = query.where(policy_versions.c.name == name)
    rows = connection.execute(query.order_by(policy_versions.c.name, policy_versions.c.version))
    return [dict(row._mapping) for row in rows]
