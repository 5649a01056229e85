"""API keys and roles: who may call which route of ``tenure serve``.

A key reads ``tnr_<id>_<secret>``. The id is public (it names the key in
lists, logs and the audit trail); the secret is 256 random bits, and only its
SHA-256 is stored, so the key is shown once, at creation, and a stolen
database does not yield usable keys. (A slow password hash buys nothing for
random secrets of this length, and would cost every request.)

Every key has one role; a role is a set of scopes, and each route asks for
one scope. Only admin and operator keys see PII in clear: analyst and
read-only keys get pseudonyms (:mod:`tenure.govern.pii`).

Rotation makes a new key with the same name and role and lets the old one
live for a grace period, so clients can switch without downtime; revocation
ends a key at once. Both go to the audit log with who did them.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from tenure.errors import NotFoundError, TenureError
from tenure.store import append_audit
from tenure.store._tables import api_keys

__all__ = [
    "ROLE_SCOPES",
    "ApiKey",
    "ApiKeyError",
    "NewKey",
    "Role",
    "Scope",
    "authenticate",
    "create_key",
    "get_key",
    "list_keys",
    "revoke_key",
    "rotate_key",
    "sees_pii",
    "touch_key",
]


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"
    INGEST = "ingest"
    READ_ONLY = "read-only"


class Scope(enum.StrEnum):
    EVENTS_WRITE = "events:write"  # the collection API and webhooks
    PROFILES_READ = "profiles:read"  # profiles and timelines
    DECIDE = "decide"  # next-best action, in-app feeds
    DECISIONS_READ = "decisions:read"  # decisions, their explanations, the review queue
    REVIEW = "review"  # approve or reject queued actions
    POLICIES_READ = "policies:read"  # policies, journeys and templates
    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"  # promote, roll back
    CONSENT_READ = "consent:read"
    CONSENT_WRITE = "consent:write"
    ERASURE = "erasure"
    AUDIT_READ = "audit:read"
    KEYS = "keys"  # create, list, rotate and revoke API keys


_READ = frozenset(
    {Scope.PROFILES_READ, Scope.DECISIONS_READ, Scope.POLICIES_READ, Scope.MODELS_READ}
)

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.OPERATOR: _READ
    | {Scope.DECIDE, Scope.REVIEW, Scope.CONSENT_READ, Scope.CONSENT_WRITE, Scope.EVENTS_WRITE},
    Role.ANALYST: _READ,
    Role.INGEST: frozenset({Scope.EVENTS_WRITE}),
    Role.READ_ONLY: _READ,
}

_CLEAR_PII = frozenset({Role.ADMIN, Role.OPERATOR})


def sees_pii(role: Role) -> bool:
    """Whether *role* sees personal data in clear (else pseudonyms)."""
    return role in _CLEAR_PII


class ApiKeyError(TenureError):
    """A key could not be created, rotated or revoked as asked."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    role: Role
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rotated_to: str | None
    last_used_at: dt.datetime | None

    def active(self, at: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or at < self.expires_at)

    @property
    def scopes(self) -> frozenset[Scope]:
        return ROLE_SCOPES[self.role]


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: :attr:`secret` is the whole key, shown this once."""

    key: ApiKey
    secret: str


_KEY = re.compile(r"^tnr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_key(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        id=m["id"],
        name=m["name"],
        role=Role(m["role"]),
        created_at=m["created_at"],
        created_by=m["created_by"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        rotated_to=m["rotated_to"],
        last_used_at=m["last_used_at"],
    )


def create_key(
    connection: Connection,
    *,
    name: str,
    role: Role,
    at: dt.datetime,
    actor: str,
    expires_at: dt.datetime | None = None,
) -> NewKey:
    """Make a key; the returned :class:`NewKey` holds the only copy of its secret."""
    if not name.strip():
        raise ApiKeyError("a key needs a name (what or who uses it)")
    if expires_at is not None and expires_at <= at:
        raise ApiKeyError(f"expiry {expires_at.isoformat()} is not in the future")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    connection.execute(
        insert(api_keys).values(
            id=key_id,
            name=name.strip(),
            role=role.value,
            secret_hash=_hash(secret),
            created_at=at,
            created_by=actor,
            expires_at=expires_at,
        )
    )
    append_audit(
        connection,
        at=at,
        actor=actor,
        action="key.create",
        target=f"key:{key_id}",
        detail={"name": name.strip(), "role": role.value},
    )
    key = get_key(connection, key_id)
    return NewKey(key, f"tnr_{key_id}_{secret}")


def get_key(connection: Connection, key_id: str) -> ApiKey:
    row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}", hint="`tenure keys list` shows the keys")
    return _row_key(row)


def list_keys(connection: Connection) -> list[ApiKey]:
    rows = connection.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_row_key(r) for r in rows]


def authenticate(connection: Connection, presented: str, at: dt.datetime) -> ApiKey | None:
    """The active key *presented* is, or None (unknown, wrong secret, revoked or expired)."""
    match = _KEY.match(presented.strip())
    if match is None:
        return None
    row = connection.execute(select(api_keys).where(api_keys.c.id == match.group(1))).first()
    if row is None:
        return None
    if not hmac.compare_digest(row._mapping["secret_hash"], _hash(match.group(2))):
        return None
    key = _row_key(row)
    return key if key.active(at) else None


def touch_key(connection: Connection, key_id: str, at: dt.datetime) -> None:
    connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at))


def revoke_key(connection: Connection, key_id: str, *, at: dt.datetime, actor: str) -> ApiKey:
    key = get_key(connection, key_id)
    if key.revoked_at is not None:
        raise ApiKeyError(f"key {key_id} was already revoked at {key.revoked_at.isoformat()}")
    connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=at))
    append_audit(
        connection, at=at, actor=actor, action="key.revoke", target=f"key:{key_id}", detail={}
    )
    return get_key(connection, key_id)


def rotate_key(
    connection: Connection,
    key_id: str,
    *,
    at: dt.datetime,
    actor: str,
    grace: dt.timedelta = dt.timedelta(hours=24),
) -> NewKey:
    """A new key with the old one's name and role; the old one expires after *grace*."""
    old = get_key(connection, key_id)
    if not old.active(at):
        raise ApiKeyError(f"key {key_id} is revoked or expired; create a new key instead")
    new = create_key(connection, name=old.name, role=old.role, at=at, actor=actor)
    ends = at + grace
    if old.expires_at is not None and old.expires_at < ends:
        ends = old.expires_at
    connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(rotated_to=new.key.id, expires_at=ends)
    )
    append_audit(
        connection,
        at=at,
        actor=actor,
        action="key.rotate",
        target=f"key:{key_id}",
        detail={"new_key": new.key.id, "old_key_expires_at": ends.isoformat()},
    )
    return new
