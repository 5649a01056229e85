"""Consent per identifier and channel, and the signed unsubscribe tokens that change it.

A consent statement is about one typed identifier (``email:dee@acme.com``,
``user_id:u1``, ``profile:p_…``) and one channel, or ``all`` channels. The
latest statement per identifier and channel holds. A person may be reached on
a channel only if *none* of their identifiers has withdrawn consent for that
channel or for all of them (an erasure is a withdrawal for all, reason
``erasure``) and, where nobody said anything, the channel's default allows it.
Keying on identifiers rather than profile ids keeps an opt-out in force when
stitching later merges or splits profiles.

Unsubscribe tokens are ``base64url(identifier|channel).hmac`` with HMAC-SHA256
over that text and a project secret, so a link names what it unsubscribes and
cannot be forged or altered.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, insert, select

from tenure.errors import TenureError
from tenure.store._tables import consent

__all__ = [
    "ALL_CHANNELS",
    "ConsentReason",
    "ConsentStatement",
    "InvalidTokenError",
    "blocked_identifiers",
    "consent_history",
    "may_contact",
    "record_consent",
    "unsubscribe_token",
    "verify_unsubscribe_token",
]

ALL_CHANNELS = "all"


class InvalidTokenError(TenureError, ValueError):
    """An unsubscribe token that was altered, truncated or signed with another secret."""


class ConsentReason(enum.StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCE = "preference"
    ERASURE = "erasure"
    IMPORT = "import"


@dataclass(frozen=True, slots=True)
class ConsentStatement:
    identifier: str
    channel: str
    granted: bool
    reason: str
    source: str
    at: dt.datetime


def record_consent(
    connection: Connection,
    identifier: str,
    channel: str,
    *,
    granted: bool,
    reason: ConsentReason,
    source: str,
    at: dt.datetime,
) -> None:
    """Add one statement inside the caller's transaction."""
    if ":" not in identifier:
        raise ValueError(f"a typed identifier like email:… or user_id:… (got {identifier!r})")
    connection.execute(
        insert(consent).values(
            identifier=identifier,
            channel=channel,
            granted=1 if granted else 0,
            reason=reason.value,
            source=source,
            at=at,
        )
    )


def consent_history(connection: Connection, identifier: str) -> list[ConsentStatement]:
    rows = connection.execute(
        select(consent).where(consent.c.identifier == identifier).order_by(consent.c.id)
    )
    return [
        ConsentStatement(r.identifier, r.channel, bool(r.granted), r.reason, r.source, r.at)
        for r in rows
    ]


def _latest(connection: Connection, identifiers: Iterable[str]) -> dict[tuple[str, str], bool]:
    """The latest statement per (identifier, channel) among *identifiers*."""
    wanted = sorted(set(identifiers))
    if not wanted:
        return {}
    last = (
        select(func.max(consent.c.id).label("id"))
        .where(consent.c.identifier.in_(wanted))
        .group_by(consent.c.identifier, consent.c.channel)
        .subquery()
    )
    rows = connection.execute(
        select(consent.c.identifier, consent.c.channel, consent.c.granted).join(
            last, and_(consent.c.id == last.c.id)
        )
    )
    return {(r.identifier, r.channel): bool(r.granted) for r in rows}


def blocked_identifiers(
    connection: Connection, identifiers: Iterable[str], channel: str
) -> dict[str, str]:
    """Identifiers among *identifiers* that withdrew *channel* (or all): identifier → scope."""
    latest = _latest(connection, identifiers)
    blocked: dict[str, str] = {}
    for (identifier, scope), granted in latest.items():
        if not granted and scope in (channel, ALL_CHANNELS):
            blocked[identifier] = scope
    return blocked


def may_contact(
    connection: Connection,
    identifiers: Iterable[str],
    channel: str,
    *,
    defaults: Mapping[str, bool],
) -> tuple[bool, str]:
    """Whether a person with *identifiers* may get *channel*, and why, in one line."""
    ids = list(identifiers)
    latest = _latest(connection, ids)
    withdrawn = sorted(
        f"{identifier} withdrew {scope}"
        for (identifier, scope), granted in latest.items()
        if not granted and scope in (channel, ALL_CHANNELS)
    )
    if withdrawn:
        return False, "; ".join(withdrawn)
    granted = sorted(
        identifier
        for (identifier, scope), ok in latest.items()
        if ok and scope in (channel, ALL_CHANNELS)
    )
    if granted:
        return True, f"granted by {granted[0]}"
    if defaults.get(channel, False):
        return True, f"no statement; {channel} allowed by default"
    return False, f"no statement and {channel} needs an opt-in"


def _sign(text: str, secret: bytes) -> str:
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(identifier: str, channel: str, secret: bytes) -> str:
    """A URL-safe token that unsubscribes *identifier* from *channel*."""
    if not secret:
        raise ValueError("an unsubscribe secret is required")
    body = f"{identifier}\x1f{channel}"
    encoded = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{encoded}.{_sign(body, secret)}"


def verify_unsubscribe_token(token: str, secret: bytes) -> tuple[str, str]:
    """The (identifier, channel) a token names; :class:`InvalidTokenError` if it was forged."""
    encoded, _, signature = token.partition(".")
    try:
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, or not ASCII at all
        raise InvalidTokenError("the unsubscribe link is damaged (not base64)") from None
    identifier, sep, channel = body.partition("\x1f")
    expected = _sign(body, secret).encode()
    if not sep or not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
        raise InvalidTokenError("the unsubscribe link is not valid (bad signature)")
    return identifier, channel
