"""The ``Message Sent`` event a delivery leaves in the inbox when it is sent.

It is written in the transaction that marks the delivery sent, so the lake
learns of every send exactly once (a resend after a crash carries the same
``messageId`` and is a duplicate), and messaging history reaches features,
profiles' timelines and the outcomes that link back to the decision.

Only sends to a person get one: an email (the address places it, as
``context.traits.email``) and an in-app message (the user id). A CSM task or
a webhook goes to a system, about an account; its event would need the
account's own group id, which the outbox does not hold (tenure's account id
is not one: stitching would take it for a new account). Those sends are in
the decision log and the outbox.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from tenure.collect._http import CollectedEvent

if TYPE_CHECKING:
    from tenure.deliver._outbox import Delivery

__all__ = ["EVENT_SOURCE", "sent_event"]

#: The inbox source of events tenure itself emits (the catalog's messaging source).
EVENT_SOURCE = "tenure"


def sent_event(delivery: Delivery, at: dt.datetime) -> CollectedEvent | None:
    """The ``Message Sent`` event of *delivery*, sent at *at*; None for a send to a system."""
    if delivery.channel not in ("email", "in_app"):
        return None
    # the channel's id for the message: the in-app feed's id, the email's Message-ID
    channel_id = str(delivery.id) if delivery.channel == "in_app" else delivery.idempotency_key
    properties: dict[str, Any] = {"channel": delivery.channel, "message_id": channel_id}
    if delivery.decision_id:
        properties["decision_id"] = delivery.decision_id
    if delivery.campaign:
        properties["campaign"] = delivery.campaign
    message_id = f"{delivery.channel}-{delivery.id}-sent"
    stamp = at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    event: dict[str, Any] = {
        "type": "track",
        "event": "Message Sent",
        "messageId": message_id,
        "timestamp": stamp,
        "receivedAt": stamp,
        "properties": properties,
    }
    if delivery.channel == "in_app":
        event["userId"] = delivery.recipient
    else:
        event["context"] = {"traits": {"email": delivery.recipient}}
    return CollectedEvent(message_id, orjson.dumps(event))
