"""Every event attributed to the person and the account identity stitching placed it in.

An event names its account directly (``group_id``/``context.groupId``) or only a
person (a Stripe invoice carries the billing contact's email). The account is
the group's when there is one, else the person's current account. Features read
this, never raw identifiers, so a merge or split changes every feature with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from tenure._event_values import typed_identifier

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = ["SENTIMENT_TABLE", "attributed_events"]

#: Optional table (message_id, sentiment) written by the sentiment step.
SENTIMENT_TABLE = "event_sentiment"


def attributed_events(warehouse: Warehouse) -> ir.Table:
    """Track events with ``profile_id``, ``account_id`` and ``sentiment`` (may be null)."""
    events = warehouse.events()
    events = events.filter(events.type == "track")
    keyed = events.select(
        "message_id",
        "event",
        "timestamp",
        "properties",
        person_key=ibis.coalesce(
            typed_identifier("user_id", events.user_id),
            typed_identifier("email", events.email.lower()),
            typed_identifier("anonymous_id", events.anonymous_id),
        ),
        group_key=typed_identifier("group_id", events.group_id),
    )
    people = warehouse.table("identity_nodes").select(
        person_key="identifier", profile_id="profile_id"
    )
    groups = warehouse.table("account_nodes").select(
        group_key="identifier", group_account="account_id"
    )
    current = warehouse.table("profiles").select(
        profile_key="profile_id", person_account="account_id"
    )
    joined = keyed.left_join(people, "person_key").drop("person_key_right")
    joined = joined.left_join(groups, "group_key").drop("group_key_right")
    joined = joined.left_join(current, joined.profile_id == current.profile_key)
    out = joined.select(
        "message_id",
        "event",
        "timestamp",
        "properties",
        "profile_id",
        account_id=ibis.coalesce(joined.group_account, joined.person_account),
    )
    if warehouse.has_table(SENTIMENT_TABLE):
        scores = warehouse.table(SENTIMENT_TABLE).select(
            sentiment_id="message_id", sentiment="sentiment"
        )
        out = out.left_join(scores, out.message_id == scores.sentiment_id).drop("sentiment_id")
    else:
        out = out.mutate(sentiment=ibis.null("float64"))
    return out
