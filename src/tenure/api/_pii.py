"""PII at the API's edge: pseudonyms for keys that must not see it, an audit entry otherwise."""

from __future__ import annotations

import datetime as dt

from fastapi import Request
from sqlalchemy import Connection

from tenure.api._auth import Principal
from tenure.govern.pii import Pseudonymizer
from tenure.store import append_audit

__all__ = ["IDENTIFIER_PATTERN", "PLAIN", "audit_pii_read", "masker_of"]

#: Text a path or query value may hold: no control characters (PostgreSQL refuses NUL).
PLAIN = r"^[^\x00-\x1f\x7f]+$"
#: A typed identifier: ``email:dee@acme.com``, ``user_id:u1``, ``profile:p_…`` (a value
#: that is not only spaces).
IDENTIFIER_PATTERN = r"^[A-Za-z_]+:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"


def masker_of(request: Request) -> Pseudonymizer:
    """The pseudonymizer keyed with the server's pseudonym secret."""
    return Pseudonymizer(request.app.state.tenure.pseudonym_secret)


def audit_pii_read(
    connection: Connection, principal: Principal, at: dt.datetime, route: str, accounts: list[str]
) -> None:
    """One ``pii.read`` entry per account whose PII an answer shows in clear."""
    for account_id in sorted(set(accounts)):
        append_audit(
            connection,
            at=at,
            actor=principal.actor,
            action="pii.read",
            target=f"account:{account_id}",
            detail={"route": route, "role": principal.role.value},
        )
