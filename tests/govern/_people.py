"""Two people of one account, as Segment events and a HubSpot contacts export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

DEE_USER = "user-dee-7f3a"
DEE_ANON = "anon-dee-41c2"
DEE_EMAIL = "dee@acme.example"
DEE_STRIPE = "cus_Dee9k2"
DEE_HUBSPOT = "5151"
DEE_NAME = "Deirdre Quist"
KIM_USER = "user-kim-2b81"
KIM_EMAIL = "kim@acme.example"

#: Every value that names Dee; none may be left anywhere in the lake (emails without case).
DEE_VALUES = (DEE_USER, DEE_ANON, DEE_EMAIL, DEE_STRIPE, DEE_NAME, "Deirdre")

START = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def _at(days: float) -> str:
    return (START + dt.timedelta(days=days)).isoformat().replace("+00:00", "Z")


def dee_events() -> list[dict[str, Any]]:
    """Dee: anonymous visits, sign-up, product use on several days, a Stripe-linked event."""
    events: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": DEE_ANON, "name": "Pricing", "messageId": "dee-p1",
         "timestamp": _at(0)},
        {"type": "page", "anonymousId": DEE_ANON, "name": "Signup", "messageId": "dee-p2",
         "timestamp": _at(0.1)},
        {"type": "identify", "userId": DEE_USER, "anonymousId": DEE_ANON, "messageId": "dee-i1",
         "traits": {"email": "Dee@Acme.example", "name": DEE_NAME, "first_name": "Deirdre"},
         "context": {"groupId": "acme", "externalIds": [
             {"type": "stripe_customer_id", "id": DEE_STRIPE, "collection": "users"}]},
         "timestamp": _at(0.2)},
        {"type": "track", "userId": DEE_USER, "event": "Signed Up", "messageId": "dee-t1",
         "properties": {"plan": "pro"}, "context": {"groupId": "acme"}, "timestamp": _at(0.2)},
        {"type": "track", "anonymousId": "anon-other-device", "event": "Feature Used",
         "messageId": "dee-t2", "properties": {"feature": "export"},
         "context": {"groupId": "acme", "externalIds": [
             {"type": "stripe_customer_id", "id": DEE_STRIPE, "collection": "users"}]},
         "timestamp": _at(3)},
    ]  # fmt: skip
    for day in range(1, 9):
        events.append(
            {"type": "track", "userId": DEE_USER, "event": "Feature Used",
             "messageId": f"dee-u{day}", "properties": {"feature": "reports"},
             "context": {"groupId": "acme"}, "timestamp": _at(day + 0.5)}
        )  # fmt: skip
    return events


def kim_events() -> list[dict[str, Any]]:
    """Kim: the account's admin; one event of hers names Dee's email (an invitation)."""
    events: list[dict[str, Any]] = [
        {"type": "identify", "userId": KIM_USER, "messageId": "kim-i1",
         "traits": {"email": KIM_EMAIL, "name": "Kim Lee"}, "context": {"groupId": "acme"},
         "timestamp": _at(0)},
        {"type": "group", "userId": KIM_USER, "groupId": "acme", "messageId": "kim-g1",
         "traits": {"name": "Acme Inc", "plan": "pro"}, "timestamp": _at(0)},
        {"type": "track", "userId": KIM_USER, "event": "Invite Sent", "messageId": "kim-t1",
         "properties": {"invitee_email": "DEE@acme.example", "note": "welcome dee@acme.example!"},
         "context": {"groupId": "acme"}, "timestamp": _at(0.15)},
    ]  # fmt: skip
    for day in range(1, 9):
        events.append(
            {"type": "track", "userId": KIM_USER, "event": "Feature Used",
             "messageId": f"kim-u{day}", "properties": {"feature": "billing"},
             "context": {"groupId": "acme"}, "timestamp": _at(day + 0.25)}
        )  # fmt: skip
    return events


def write_events(path: Path) -> Path:
    """Both people's events, interleaved, as one JSONL file."""
    events = sorted([*dee_events(), *kim_events()], key=lambda e: (e["timestamp"], e["messageId"]))
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


def write_contacts(path: Path) -> Path:
    """A HubSpot contacts export holding both."""
    header = (
        "Record ID,First Name,Last Name,Email,Phone Number,Job Title,Company Name,"
        "Lifecycle Stage,Lead Status,Original Source,Create Date,Became a Lead Date,"
        "Became a Marketing Qualified Lead Date,Became a Sales Qualified Lead Date,"
        "Associated Company IDs (Primary)"
    )
    rows = [
        f"{DEE_HUBSPOT},Deirdre,Quist,{DEE_EMAIL},,Analyst,Acme Inc,Customer,,Direct,"
        "2024-03-01 09:10,,,,9001",
        f"5252,Kim,Lee,{KIM_EMAIL},,Admin,Acme Inc,Customer,,Direct,2024-02-01 10:00,,,,9001",
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path
