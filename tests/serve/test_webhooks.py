"""Provider webhooks: Stripe's signature scheme, and Stripe, Zendesk and HubSpot payloads
mapped to catalog events that load into the lake with nothing quarantined."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tenure.api import create_app, load_once
from tenure.collect import ingest
from tenure.collect._http import RequestError
from tenure.collect.webhooks import (
    SignatureError,
    SignatureProblem,
    file_message_id,
    hubspot_events,
    hubspot_uri,
    stripe_events,
    verify_hubspot_signature,
    verify_stripe_signature,
    verify_zendesk_signature,
    zendesk_events,
)
from tenure.govern.keys import Role
from tenure.project import Project
from tenure.store import list_quarantined
from tenure.store._tables import inbox
from tests.conftest import FIXED_NOW
from tests.serve._live import running

SECRET = "whsec_test_9f8e7d6c5b4a"
SIGNED_AT = int(FIXED_NOW.timestamp()) - 30
TOLERANCE = dt.timedelta(minutes=5)


def _unix(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


def _sign(body: bytes, at: int = SIGNED_AT, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


# --------------------------------------------------------------------------- payloads

# modelled on the objects of Stripe's API reference (only the fields tenure reads, and a few more)
PRICE = {
    "id": "price_team_monthly",
    "object": "price",
    "currency": "usd",
    "product": "prod_PTeam",
    "unit_amount": 4900,
    "unit_amount_decimal": "4900",
    "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
}


def _subscription(**changes: Any) -> dict[str, Any]:
    started = _unix("2024-05-10T14:03:22")
    return {
        "id": "sub_1OkTeamAcme",
        "object": "subscription",
        "customer": "cus_PAcme01",
        "status": "active",
        "currency": "usd",
        "created": started,
        "start_date": started,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "trial_start": None,
        "trial_end": None,
        "items": {
            "object": "list",
            "data": [
                {"id": "si_PA1", "object": "subscription_item", "quantity": 5, "price": PRICE}
            ],
        },
        **changes,
    }


def _invoice(**changes: Any) -> dict[str, Any]:
    return {
        "id": "in_1PAcmeMay",
        "object": "invoice",
        "customer": "cus_PAcme01",
        "customer_email": "billing@acme.example",
        "number": "ACME-0005",
        "currency": "usd",
        "amount_due": 24500,
        "amount_paid": 24500,
        "attempt_count": 1,
        "status": "paid",
        "subscription": "sub_1OkTeamAcme",
        "status_transitions": {"paid_at": _unix("2024-05-10T15:03:22")},
        **changes,
    }


def _stripe(
    event_id: str, kind: str, obj: dict[str, Any], at: str, previous: Any = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-04-10",
        "created": _unix(at),
        "livemode": False,
        "pending_webhooks": 1,
        "type": kind,
        "data": data,
    }


STRIPE_EVENTS = [
    _stripe(
        "evt_cus",
        "customer.created",
        {
            "id": "cus_PAcme01",
            "object": "customer",
            "email": "billing@acme.example",
            "name": "Acme Corp",
            "currency": "usd",
            "delinquent": False,
            "created": _unix("2024-05-10T14:01:05"),
        },
        "2024-05-10T14:01:05",
    ),
    _stripe(
        "evt_sub_created",
        "customer.subscription.created",
        _subscription(),
        "2024-05-10T14:03:22",
    ),
    _stripe("evt_paid", "invoice.paid", _invoice(), "2024-05-10T15:03:22"),
    _stripe(
        "evt_failed",
        "invoice.payment_failed",
        _invoice(id="in_1PAcmeJun", amount_paid=0, attempt_count=2, status="open"),
        "2024-05-28T15:00:00",
    ),
    _stripe(
        # 5 seats become 8: the previous items are in previous_attributes
        "evt_upgrade",
        "customer.subscription.updated",
        _subscription(items={"object": "list", "data": [{"quantity": 8, "price": PRICE}]}),
        "2024-05-20T09:00:00",
        previous={"items": {"object": "list", "data": [{"quantity": 5, "price": PRICE}]}},
    ),
    _stripe(
        "evt_deleted",
        "customer.subscription.deleted",
        _subscription(
            status="canceled",
            canceled_at=_unix("2024-05-30T08:30:00"),
            ended_at=_unix("2024-05-30T08:30:00"),
            cancellation_details={"reason": "cancellation_requested", "feedback": "too_expensive"},
        ),
        "2024-05-30T08:30:00",
    ),
]


def _zendesk_ticket(**changes: Any) -> dict[str, Any]:
    # a trigger's body, with the ticket as Zendesk's Tickets API shows it
    return {
        "id": 1201,
        "subject": "Cannot export the usage report",
        "description": "The export button does nothing on the usage page.",
        "status": "open",
        "priority": "high",
        "type": "incident",
        "tags": ["export", "bug"],
        "via": {"channel": "web"},
        "requester": {"id": 361234001, "email": "ada@acme.example", "external_id": "user_42"},
        "organization": {"id": 90001, "external_id": "acme", "name": "Acme Corp"},
        "group": {"id": 7, "name": "Support"},
        "created_at": "2024-05-04T09:15:22Z",
        "updated_at": "2024-05-04T09:15:22Z",
        **changes,
    }


ZENDESK_SOLVED_EVENT = {
    # Zendesk's event webhooks (zen:event-type:…), modelled on its documented example
    "type": "zen:event-type:ticket.status_changed",
    "account_id": 12345,
    "id": "cbe4028c-7239-495d-b020-f22348516046",
    "time": "2024-05-06T11:30:00Z",
    "zendesk_event_version": "2022-11-06",
    "subject": "zen:ticket:1202",
    "detail": {
        "id": "1202",
        "subject": "Invoice address, please update",
        "status": "SOLVED",
        "priority": "NORMAL",
        "requester_id": "361234002",
        "organization_id": "90002",
        "via": {"channel": "email"},
        "tags": [],
        "type": "QUESTION",
        "created_at": "2024-05-05T13:00:05Z",
        "updated_at": "2024-05-06T11:30:00Z",
    },
    "event": {"current": "SOLVED", "previous": "OPEN"},
}


def _hubspot(event_id: int, kind: str, object_id: int, at: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": _unix(at) * 1000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM",
        **extra,
    }


HUBSPOT_BATCH = [
    _hubspot(101, "contact.creation", 51, "2024-05-05T10:15:00"),
    _hubspot(
        102,
        "contact.propertyChange",
        51,
        "2024-05-05T10:15:01",
        propertyName="email",
        propertyValue="ada@acme.example",
    ),
    _hubspot(
        103,
        "contact.propertyChange",
        51,
        "2024-05-06T16:40:00",
        propertyName="lifecyclestage",
        propertyValue="lead",
    ),
    _hubspot(
        104,
        "contact.propertyChange",
        51,
        "2024-05-08T09:00:00",
        propertyName="lifecyclestage",
        propertyValue="salesqualifiedlead",
    ),
    _hubspot(105, "company.creation", 9001, "2024-05-01T10:00:00"),
    _hubspot(
        106,
        "company.propertyChange",
        9001,
        "2024-05-01T10:00:02",
        propertyName="numberofemployees",
        propertyValue="250",
    ),
    _hubspot(107, "deal.creation", 7001, "2024-05-09T11:20:00"),
    {
        **{
            k: v
            for k, v in _hubspot(108, "deal.associationChange", 0, "2024-05-09T11:20:01").items()
            if k != "objectId"
        },
        "associationType": "DEAL_TO_COMPANY",
        "fromObjectId": 7001,
        "toObjectId": 9001,
        "associationRemoved": False,
        "isPrimaryAssociation": True,
    },
    _hubspot(
        109,
        "deal.propertyChange",
        7001,
        "2024-05-29T17:00:00",
        propertyName="dealstage",
        propertyValue="closedwon",
    ),
    # not recorded: acknowledged and ignored
    _hubspot(110, "contact.deletion", 52, "2024-05-29T17:00:00"),
    _hubspot(
        111,
        "deal.propertyChange",
        7001,
        "2024-05-29T17:00:01",
        propertyName="hs_lastmodifieddate",
        propertyValue="1717002001000",
    ),
]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def stripe_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The endpoint's signing secret in the environment, before the server starts."""
    monkeypatch.setenv("TENURE_STRIPE_WEBHOOK_SECRET", SECRET)
    return SECRET


def _post_stripe(http: httpx.Client, event: dict[str, Any], **sign: Any) -> httpx.Response:
    body = orjson.dumps(event)
    headers = {"stripe-signature": _sign(body, **sign), "content-type": "application/json"}
    return http.post("/v1/webhooks/stripe", content=body, headers=headers)


def _inbox(project: Project) -> list[dict[str, Any]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(inbox.c.payload).order_by(inbox.c.id)).scalars().all()
    return [orjson.loads(r) for r in rows]


def _inbox_count(project: Project) -> int:
    with project.store.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(inbox)).scalar_one())


def _named(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e.get("event") or e["type"]: e for e in events}


def _loads_cleanly(project: Project, expected: int) -> None:
    """Every event of the inbox passes the catalog: all in the lake, none quarantined."""
    assert load_once(project) == expected
    assert project.index.event_count() == expected
    with project.store.connect() as connection:
        assert [(q.reason_code, q.reason) for q in list_quarantined(connection)] == []


def _ext(events: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(x["type"], x["id"], x["collection"]) for x in events["context"]["externalIds"]]


# --------------------------------------------------------------------------- Stripe's signature


def test_a_stripe_signature_made_with_the_secret_verifies() -> None:
    body = b'{"id": "evt_1"}'
    verify_stripe_signature(body, _sign(body), SECRET.encode(), FIXED_NOW, TOLERANCE)
    # rolling a secret: Stripe sends a v1 for each, and either secret may be configured
    other = _sign(body, secret="whsec_old").split(",")[1]
    header = f"{_sign(body)},{other},v0=ignored"
    verify_stripe_signature(body, header, [b"whsec_old"], FIXED_NOW, TOLERANCE)
    verify_stripe_signature(body, header, [b"whsec_x", SECRET.encode()], FIXED_NOW, TOLERANCE)
    # within the tolerance either side of the server's clock
    ahead = int(FIXED_NOW.timestamp()) + 290
    verify_stripe_signature(body, _sign(body, at=ahead), SECRET.encode(), FIXED_NOW, TOLERANCE)


BODY = b'{"id": "evt_1"}'
STALE = int(FIXED_NOW.timestamp()) - 301


@pytest.mark.parametrize(
    ("header", "secret", "problem", "words"),
    [
        (_sign(b"{}"), SECRET, SignatureProblem.MISMATCH, "no v1 signature matches"),
        (_sign(BODY), "whsec_other", SignatureProblem.MISMATCH, "not from Stripe"),
        (_sign(BODY, at=STALE), SECRET, SignatureProblem.STALE, "2024-06-01T11:54:59Z"),
        (_sign(BODY, at=STALE + 700), SECRET, SignatureProblem.STALE, "more than 0:05:00"),
        ("", SECRET, SignatureProblem.MALFORMED, "has no timestamp"),
        ("v1=abc", SECRET, SignatureProblem.MALFORMED, "has no timestamp"),
        ("t=soon,v1=abc", SECRET, SignatureProblem.MALFORMED, "has no timestamp"),
        ("t=1,t=2,v1=abc", SECRET, SignatureProblem.MALFORMED, "has no timestamp"),
        (f"t={SIGNED_AT},v0=abc", SECRET, SignatureProblem.MALFORMED, "has no v1 signature"),
    ],
)
def test_a_stripe_signature_that_fails_says_why(
    header: str, secret: str, problem: SignatureProblem, words: str
) -> None:
    with pytest.raises(SignatureError) as raised:
        verify_stripe_signature(BODY, header, [secret.encode()], FIXED_NOW, TOLERANCE)
    assert raised.value.problem is problem
    assert raised.value.field == "header.Stripe-Signature"
    assert words in raised.value.message


def test_file_message_ids_are_those_file_ingest_gives(
    tmp_path: Path, sqlite_project: Project
) -> None:
    # a subscription seen in an export and by a webhook is one event, not two
    export = tmp_path / "subscriptions.csv"
    export.write_text(
        "id,Customer ID,Customer Email,Plan,Product,Quantity,Currency,Interval,Amount,Status,"
        "Start Date (UTC),Current Period Start (UTC),Current Period End (UTC)\n"
        "sub_1OkTeamAcme,cus_PAcme01,billing@acme.example,price_team_monthly,Team,5,usd,month,"
        "49.00,active,2024-05-10 14:03:22,2024-05-10 14:03:22,2024-06-10 14:03:22\n",
        encoding="utf-8",
    )
    assert ingest(sqlite_project, [export]).loaded == 1
    mapped = stripe_events(STRIPE_EVENTS[1])
    started = _named(mapped.events)["Subscription Started"]
    ids = sqlite_project.index.con.execute("SELECT message_id FROM event_ids").fetchall()
    assert ids == [(started["messageId"],)]
    at = dt.datetime(2024, 5, 10, 14, 3, 22, tzinfo=dt.UTC)
    key = "stripe.subscriptions:sub_1OkTeamAcme:Subscription Started"
    assert started["messageId"] == file_message_id("stripe", key, at)


# --------------------------------------------------------------------------- Stripe mappings


def test_stripe_events_map_as_the_stripe_exports_do() -> None:
    events = [e for raw in STRIPE_EVENTS for e in stripe_events(raw).events]
    by_name = _named(events)
    assert [e.get("event") or e["type"] for e in events] == [
        "identify",
        "Subscription Started",
        "Invoice Paid",
        "Payment Failed",
        "Subscription Changed",
        "Subscription Canceled",
    ]
    # the same properties the stripe.subscriptions mapping gives (cents become dollars)
    assert by_name["Subscription Started"]["properties"] == {
        "subscription_id": "sub_1OkTeamAcme",
        "plan": "price_team_monthly",
        "product": "prod_PTeam",
        "seats": 5,
        "mrr": 245.0,
        "currency": "usd",
        "interval": "month",
    }
    assert by_name["Subscription Started"]["timestamp"] == "2024-05-10T14:03:22+00:00"
    assert by_name["Subscription Changed"]["properties"] == {
        "subscription_id": "sub_1OkTeamAcme",
        "plan": "price_team_monthly",
        "seats": 8,
        "mrr": 392.0,
        "previous_mrr": 245.0,
        "currency": "usd",
        "interval": "month",
    }
    assert by_name["Subscription Canceled"]["properties"] == {
        "subscription_id": "sub_1OkTeamAcme",
        "plan": "price_team_monthly",
        "seats": 5,
        "mrr": 245.0,
        "currency": "usd",
        "interval": "month",
        "cancel_at_period_end": False,
        "ended_at": "2024-05-30T08:30:00+00:00",
        "reason": "too_expensive",
    }
    assert by_name["Invoice Paid"]["properties"] == {
        "invoice_id": "in_1PAcmeMay",
        "number": "ACME-0005",
        "amount": 245.0,
        "currency": "usd",
        "subscription_id": "sub_1OkTeamAcme",
    }
    assert by_name["Invoice Paid"]["timestamp"] == "2024-05-10T15:03:22+00:00"
    failed = by_name["Payment Failed"]
    assert (failed["properties"]["amount"], failed["properties"]["attempt_count"]) == (245.0, 2)
    assert failed["messageId"] == "stripe:evt_failed:Payment Failed"
    assert by_name["identify"]["traits"] == {
        "email": "billing@acme.example",
        "name": "Acme Corp",
        "currency": "usd",
        "delinquent": False,
        "created_at": "2024-05-10T14:01:05+00:00",
    }
    # identity as the exports': the customer id (people), and the email where Stripe gives it
    for event in events:
        assert _ext(event) == [("stripe_customer_id", "cus_PAcme01", "users")]
        assert "userId" not in event
    assert by_name["Invoice Paid"]["context"]["traits"] == {"email": "billing@acme.example"}


def test_stripe_subscription_updates_are_read_from_previous_attributes() -> None:
    trial = {"trial_start": _unix("2024-05-01T09:00:00"), "trial_end": _unix("2024-05-15T09:00:00")}
    converted = stripe_events(
        _stripe(
            "evt_conv",
            "customer.subscription.updated",
            _subscription(**trial),
            "2024-05-15T09:00:00",
            previous={"status": "trialing"},
        )
    )
    assert [e["event"] for e in converted.events] == ["Trial Ended"]
    assert converted.events[0]["properties"] == {
        "subscription_id": "sub_1OkTeamAcme",
        "trial_plan_name": "price_team_monthly",
        "trial_start_date": "2024-05-01T09:00:00+00:00",
        "trial_end_date": "2024-05-15T09:00:00+00:00",
    }
    paid = stripe_events(
        _stripe(
            "evt_paid_first",
            "customer.subscription.updated",
            _subscription(),
            "2024-05-10T14:05:00",
            previous={"status": "incomplete"},
        )
    )
    assert [e["event"] for e in paid.events] == ["Subscription Started"]
    # a metadata change is acknowledged, and nothing to record
    nothing = stripe_events(
        _stripe(
            "evt_meta",
            "customer.subscription.updated",
            _subscription(),
            "2024-05-11T00:00:00",
            previous={"metadata": {}},
        )
    )
    assert (nothing.events, nothing.received, nothing.ignored) == ([], 1, 1)
    # an incomplete subscription has not started
    assert (
        stripe_events(
            _stripe(
                "evt_inc",
                "customer.subscription.created",
                _subscription(status="incomplete"),
                "2024-05-10T14:03:22",
            )
        ).events
        == []
    )


def test_stripe_amounts_follow_the_currency_and_the_billing_interval() -> None:
    yen = {**PRICE, "currency": "jpy", "unit_amount": 12000, "unit_amount_decimal": "12000"}
    yearly = {**yen, "recurring": {"interval": "year", "interval_count": 1}}
    sub = _subscription(currency="jpy", items={"data": [{"quantity": 1, "price": yearly}]})
    started = stripe_events(
        _stripe("evt_y", "customer.subscription.created", sub, "2024-05-10T14:03:22")
    ).events[0]["properties"]
    assert (started["mrr"], started["interval"], started["currency"]) == (1000.0, "year", "jpy")
    # a tiered price has no unit amount: no mrr, so the loader quarantines it and says why
    tiered = {**PRICE, "unit_amount": None, "unit_amount_decimal": None}
    sub = _subscription(items={"data": [{"quantity": 3, "price": tiered}]})
    started = stripe_events(
        _stripe("evt_t", "customer.subscription.created", sub, "2024-05-10T14:03:22")
    ).events[0]["properties"]
    assert "mrr" not in started


# --------------------------------------------------------------------------- Stripe route


def test_signed_stripe_events_are_stored_and_load_into_the_lake(
    api_project: Project, stripe_secret: str, http: httpx.Client
) -> None:
    answers = [_post_stripe(http, event) for event in STRIPE_EVENTS]
    assert [a.status_code for a in answers] == [200] * len(STRIPE_EVENTS), answers[0].text
    assert [a.json() for a in answers[:2]] == [
        {"received": 1, "accepted": 1, "duplicates": 0, "ignored": 0}
    ] * 2
    stored = _inbox(api_project)
    assert [e.get("event") or e["type"] for e in stored] == [
        "identify",
        "Subscription Started",
        "Invoice Paid",
        "Payment Failed",
        "Subscription Changed",
        "Subscription Canceled",
    ]
    assert stored[1]["receivedAt"] == "2024-06-01T12:00:00Z"
    _loads_cleanly(api_project, 6)


def test_a_replayed_stripe_event_is_a_duplicate_and_stores_nothing(
    api_project: Project, stripe_secret: str, http: httpx.Client
) -> None:
    first = _post_stripe(http, STRIPE_EVENTS[2])
    assert first.json() == {"received": 1, "accepted": 1, "duplicates": 0, "ignored": 0}
    # Stripe retries with a fresh signature; an attacker replays the old one within the window
    again = _post_stripe(http, STRIPE_EVENTS[2], at=SIGNED_AT + 10)
    assert again.json() == {"received": 1, "accepted": 0, "duplicates": 1, "ignored": 0}
    # invoice.payment_succeeded is the same fact as invoice.paid: one event between them
    twin = {**STRIPE_EVENTS[2], "id": "evt_succeeded", "type": "invoice.payment_succeeded"}
    assert _post_stripe(http, twin).json()["duplicates"] == 1
    assert _inbox_count(api_project) == 1
    _loads_cleanly(api_project, 1)


def test_stripe_signatures_that_fail_are_400_naming_the_header(
    api_project: Project, stripe_secret: str, http: httpx.Client
) -> None:
    body = orjson.dumps(STRIPE_EVENTS[2])
    cases = {
        "invalid_signature": _sign(body, secret="whsec_someone_else"),
        "stale_signature": _sign(body, at=SIGNED_AT - 600),
        "malformed_signature": "v1=" + "0" * 64,
    }
    messages = {}
    for code, header in cases.items():
        answer = http.post(
            "/v1/webhooks/stripe", content=body, headers={"stripe-signature": header}
        )
        assert answer.status_code == 400, answer.text
        assert (answer.json()["error"], answer.json()["field"]) == (code, "header.Stripe-Signature")
        messages[code] = answer.json()["message"]
    assert messages["stale_signature"] == (
        "was signed at 2024-06-01T11:49:30Z, more than 0:05:00 from the server's time "
        "2024-06-01T12:00:00Z (a replay, or a clock is wrong)"
    )
    tampered = body.replace(b"24500", b"2450")
    answer = http.post(
        "/v1/webhooks/stripe", content=tampered, headers={"stripe-signature": _sign(body)}
    )
    assert answer.json()["error"] == "invalid_signature"
    missing = http.post("/v1/webhooks/stripe", content=body)
    assert missing.status_code == 400
    assert missing.json()["field"] == "header.Stripe-Signature"
    assert _inbox_count(api_project) == 0


def test_unknown_stripe_types_are_acknowledged_and_ignored(
    api_project: Project, stripe_secret: str, http: httpx.Client
) -> None:
    charge = _stripe(
        "evt_ch", "charge.succeeded", {"id": "ch_1", "object": "charge"}, "2024-05-10T15:03:22"
    )
    answer = _post_stripe(http, charge)
    assert answer.status_code == 200
    assert answer.json() == {"received": 1, "accepted": 0, "duplicates": 0, "ignored": 1}
    assert _inbox_count(api_project) == 0


def test_a_stripe_event_the_catalog_refuses_is_quarantined_with_its_reason(
    api_project: Project, stripe_secret: str, http: httpx.Client
) -> None:
    tiered = {**PRICE, "unit_amount": None, "unit_amount_decimal": None, "tiers_mode": "graduated"}
    sub = _subscription(items={"data": [{"quantity": 3, "price": tiered}]})
    event = _stripe("evt_tiered", "customer.subscription.created", sub, "2024-05-10T14:03:22")
    assert _post_stripe(http, event).json()["accepted"] == 1  # acknowledged: Stripe must not retry
    assert load_once(api_project) == 0
    with api_project.store.connect() as connection:
        quarantined = list_quarantined(connection)
    assert [(q.source_file, q.reason) for q in quarantined] == [
        (
            "inbox:stripe",
            "'Subscription Started' needs property 'mrr' (a number ≥ 0) but the event has none",
        )
    ]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (
            {**STRIPE_EVENTS[2], "data": {"object": _invoice(customer=None)}},
            "body.data.object.customer",
        ),
        (
            {**STRIPE_EVENTS[1], "data": {"object": _subscription(items={})}},
            "body.data.object.items",
        ),
        ({**STRIPE_EVENTS[1], "created": "yesterday"}, "body.created"),
        ({**STRIPE_EVENTS[1], "data": []}, "body.data"),
        ([1, 2], "body"),
    ],
)
def test_a_signed_stripe_event_missing_what_it_needs_is_400_naming_the_field(
    api_project: Project, stripe_secret: str, http: httpx.Client, event: Any, field: str
) -> None:
    answer = _post_stripe(http, event)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert _inbox_count(api_project) == 0


@pytest.fixture
def no_stripe_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENURE_STRIPE_WEBHOOK_SECRET", raising=False)


def test_stripe_webhooks_without_a_secret_are_not_enabled(
    api_project: Project, no_stripe_secret: None, http: httpx.Client
) -> None:
    answer = _post_stripe(http, STRIPE_EVENTS[2])
    assert (answer.status_code, answer.json()["error"]) == (404, "not_configured")
    assert "TENURE_STRIPE_WEBHOOK_SECRET" in answer.json()["message"]
    assert _inbox_count(api_project) == 0


# --------------------------------------------------------------------------- Zendesk


def test_zendesk_tickets_map_as_the_zendesk_export_does() -> None:
    created = zendesk_events({"ticket": _zendesk_ticket()}).events
    assert [e["event"] for e in created] == ["Ticket Created"]
    assert created[0]["properties"] == {
        "ticket_id": "1201",
        "subject": "Cannot export the usage report",
        "body": "The export button does nothing on the usage page.",
        "priority": "high",
        "channel": "web",
        "type": "incident",
        "tags": "export bug",
        "group": "Support",
        "organization": "Acme Corp",
        "status": "open",
    }
    # identity as zendesk.tickets: external id as userId, email, Zendesk id; the org's external id
    assert (created[0]["userId"], created[0]["context"]["traits"]) == (
        "user_42",
        {"email": "ada@acme.example"},
    )
    assert _ext(created[0]) == [("zendesk_user_id", "361234001", "users")]
    assert created[0]["context"]["groupId"] == "acme"
    # placeholders send display values, read as the CSV's are
    solved = zendesk_events(
        {
            "ticket": _zendesk_ticket(
                status="Solved",
                priority="Urgent",
                via="Web Form",
                tags="export bug",
                updated_at="2024-05-05T11:30:00Z",
                satisfaction_rating={"id": 77, "score": "good", "comment": "quick, thanks"},
            )
        }
    ).events
    assert [e["event"] for e in solved] == ["Ticket Solved", "CSAT Submitted"]
    assert {k: solved[0]["properties"][k] for k in ("status", "priority", "channel")} == {
        "status": "solved",
        "priority": "urgent",
        "channel": "web",
    }
    assert solved[1]["properties"] == {
        "ticket_id": "1201",
        "score": 5,
        "rating": "good",
        "comment": "quick, thanks",
        "organization": "Acme Corp",
    }
    event = zendesk_events(ZENDESK_SOLVED_EVENT).events
    assert [e["event"] for e in event] == ["Ticket Solved"]
    assert event[0]["properties"]["priority"] == "normal"
    assert _ext(event[0]) == [("zendesk_user_id", "361234002", "users")]
    assert event[0]["messageId"] == "zendesk:cbe4028c-7239-495d-b020-f22348516046:Ticket Solved"


def test_zendesk_webhooks_are_stored_and_load_into_the_lake(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    auth = (keys[Role.INGEST], "")
    first = http.post("/v1/webhooks/zendesk", json={"ticket": _zendesk_ticket()}, auth=auth)
    assert first.json() == {"received": 1, "accepted": 1, "duplicates": 0, "ignored": 0}
    updated = {"ticket": _zendesk_ticket(priority="urgent", updated_at="2024-05-04T10:00:00Z")}
    headers = {"authorization": f"Bearer {keys[Role.INGEST]}"}
    assert http.post("/v1/webhooks/zendesk", json=updated, headers=headers).json()["accepted"] == 1
    # Zendesk retries a trigger's request: the same ticket at the same update is a duplicate
    assert http.post("/v1/webhooks/zendesk", json=updated, auth=auth).json()["duplicates"] == 1
    assert (
        http.post("/v1/webhooks/zendesk", json=ZENDESK_SOLVED_EVENT, auth=auth).status_code == 200
    )
    other = {**ZENDESK_SOLVED_EVENT, "type": "zen:event-type:user.created"}
    answer = http.post("/v1/webhooks/zendesk", json=other, auth=auth)
    assert answer.json() == {"received": 1, "accepted": 0, "duplicates": 0, "ignored": 1}
    assert [e["event"] for e in _inbox(api_project)] == [
        "Ticket Created",
        "Ticket Updated",
        "Ticket Solved",
    ]
    _loads_cleanly(api_project, 3)


def test_zendesk_webhooks_need_a_key_and_a_ticket(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    body = {"ticket": _zendesk_ticket()}
    assert http.post("/v1/webhooks/zendesk", json=body).status_code == 401
    assert (
        http.post("/v1/webhooks/zendesk", json=body, auth=(keys[Role.ANALYST], "")).status_code
        == 403
    )
    auth = (keys[Role.INGEST], "")
    cases = {
        "body.ticket": {"tickets": []},
        "body.ticket.id": {"ticket": {**_zendesk_ticket(), "id": None}},
        "body.ticket.requester": {"ticket": _zendesk_ticket(requester={"name": "Ada"})},
        "body.ticket.created_at": {"ticket": _zendesk_ticket(created_at="last tuesday")},
        "body.event": {"ticket": _zendesk_ticket(), "event": "reopened"},
        "body.detail": {**ZENDESK_SOLVED_EVENT, "detail": "1202"},
    }
    for field, payload in cases.items():
        answer = http.post("/v1/webhooks/zendesk", json=payload, auth=auth)
        assert (answer.status_code, answer.json()["field"]) == (400, field), answer.text
    assert http.post("/v1/webhooks/zendesk", content=b"{nope", auth=auth).json()["field"] == "body"
    assert _inbox_count(api_project) == 0


# --------------------------------------------------------------------------- HubSpot


def test_hubspot_notifications_map_as_the_hubspot_exports_do() -> None:
    mapped = hubspot_events(HUBSPOT_BATCH)
    assert (mapped.received, mapped.ignored) == (11, 2)
    names = [e.get("event") or e["type"] for e in mapped.events]
    assert names == [
        "identify",
        "identify",
        "identify",
        "Lead Created",
        "identify",
        "Lead Qualified",
        "group",
        "group",
        "Opportunity Created",
        "group",
        "Opportunity Stage Changed",
    ]
    events = mapped.events
    assert events[0]["traits"] == {"created_at": "2024-05-05T10:15:00+00:00"}
    assert _ext(events[0]) == [("hubspot_contact_id", "51", "users")]
    # the email a contact is given ties its record id to the email, as the export's rows do
    assert events[1]["traits"] == {"email": "ada@acme.example"}
    assert events[2]["traits"] == {"lifecycle_stage": "lead"}
    assert events[3]["properties"] == {"lead_id": "51"}
    assert events[5]["properties"] == {"lead_id": "51", "qualification": "sales_qualified_lead"}
    # companies: the record id is the group id and a hubspot_company_id, as in the export
    assert (events[7]["groupId"], events[7]["traits"]) == ("9001", {"employees": 250})
    assert _ext(events[6]) == [("hubspot_company_id", "9001", "accounts")]
    assert events[8]["properties"] == {"opportunity_id": "7001"}
    # the association ties the deal's id to its company's account
    assert events[9]["groupId"] == "9001"
    assert _ext(events[9]) == [
        ("hubspot_company_id", "9001", "accounts"),
        ("hubspot_deal_id", "7001", "accounts"),
    ]
    assert events[10]["properties"] == {"opportunity_id": "7001", "stage": "won"}
    assert (
        events[10]["messageId"]
        == "hubspot:33:109:deal.propertyChange:7001:Opportunity Stage Changed"
    )


def test_hubspot_webhooks_are_stored_and_load_into_the_lake(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    auth = (keys[Role.INGEST], "")
    first = http.post("/v1/webhooks/hubspot", json=HUBSPOT_BATCH, auth=auth)
    assert first.json() == {"received": 11, "accepted": 11, "duplicates": 0, "ignored": 2}
    # HubSpot retries the whole request when it does not get a 2xx in time
    again = http.post("/v1/webhooks/hubspot", json=HUBSPOT_BATCH, auth=auth)
    assert again.json() == {"received": 11, "accepted": 0, "duplicates": 11, "ignored": 2}
    _loads_cleanly(api_project, 11)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([HUBSPOT_BATCH[0], {**HUBSPOT_BATCH[1], "objectId": None}], "body[1].objectId"),
        ([{**HUBSPOT_BATCH[0], "occurredAt": "noon"}], "body[0].occurredAt"),
        ([{k: v for k, v in HUBSPOT_BATCH[0].items() if k != "eventId"}], "body[0].eventId"),
        ([HUBSPOT_BATCH[0], "x"], "body[1]"),
        ("x", "body"),
    ],
)
def test_a_malformed_hubspot_notification_is_400_naming_it(
    api_project: Project, keys: dict[Role, str], http: httpx.Client, body: Any, field: str
) -> None:
    answer = http.post("/v1/webhooks/hubspot", json=body, auth=(keys[Role.INGEST], ""))
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert _inbox_count(api_project) == 0


# ------------------------------------------------------------- HubSpot and Zendesk signatures

HUBSPOT_SECRET = "b9e3a1c4-7d2f-4e6a-9c1b-0f5d8e7a6b3c"
ZENDESK_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
SIGNED_MS = (int(FIXED_NOW.timestamp()) - 30) * 1000
ZENDESK_AT = "2024-06-01T11:59:30Z"


def _hubspot_sign(
    method: str, uri: str, body: bytes, ms: int = SIGNED_MS, secret: str = HUBSPOT_SECRET
) -> str:
    # HubSpot's signature v3, written out as its documentation and SDK compute it
    signed = f"{method}{uri}".encode() + body + str(ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def _zendesk_sign(body: bytes, at: str = ZENDESK_AT, secret: str = ZENDESK_SECRET) -> str:
    digest = hmac.new(secret.encode(), at.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_a_hubspot_v3_signature_verifies_as_hubspots_own_sdk_computes_it() -> None:
    # the v3 test vector of HubSpot's Python SDK (tests/spec/utils/test_signature.py)
    verify_hubspot_signature(
        "POST",
        ["https://www.example.com/webhook_uri"],
        b"{'example_field':'example_value'}",
        "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
        "15000000",
        b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        dt.datetime.fromtimestamp(15000 + 60, dt.UTC),
    )
    # the escapes HubSpot lists are decoded before signing, others are kept
    url = "https://h.example/v1/webhooks/hubspot?next=%2Fa%3Ab%40c&q=x%20y"
    assert hubspot_uri(url) == "https://h.example/v1/webhooks/hubspot?next=/a:b@c&q=x%20y"
    body = orjson.dumps(HUBSPOT_BATCH)
    signature = _hubspot_sign("POST", hubspot_uri(url), body)
    # the URL as the server saw it may be wrong (a proxy): any of the URLs may match
    urls = ["http://10.0.0.5:8000/v1/webhooks/hubspot?next=%2Fa%3Ab%40c&q=x%20y", url]
    stamp = str(SIGNED_MS)
    verify_hubspot_signature(
        "post", urls, body, signature, stamp, HUBSPOT_SECRET.encode(), FIXED_NOW
    )
    # rolling the client secret: either may be configured
    secrets = [b"old-secret", HUBSPOT_SECRET.encode()]
    verify_hubspot_signature("POST", [url], body, signature, stamp, secrets, FIXED_NOW)


def test_a_zendesk_signature_verifies_as_zendesk_documents_it() -> None:
    body = orjson.dumps({"ticket": _zendesk_ticket()})
    secret = ZENDESK_SECRET.encode()
    verify_zendesk_signature(body, _zendesk_sign(body), ZENDESK_AT, secret, FIXED_NOW)
    # a timestamp with an offset is the same instant
    at = "2024-06-01T13:59:30+02:00"
    verify_zendesk_signature(body, _zendesk_sign(body, at=at), at, [b"x", secret], FIXED_NOW)


HUBSPOT_URL = "https://hooks.example/v1/webhooks/hubspot"
SIGNED_BODY = b'[{"eventId": 1}]'
STALE_MS = (int(FIXED_NOW.timestamp()) - 301) * 1000


@pytest.mark.parametrize(
    ("signature", "stamp", "problem", "field", "words"),
    [
        (
            _hubspot_sign("POST", HUBSPOT_URL, b"[]"),
            str(SIGNED_MS),
            SignatureProblem.MISMATCH,
            "header.X-HubSpot-Signature-v3",
            "not from HubSpot",
        ),
        (
            _hubspot_sign("POST", HUBSPOT_URL, SIGNED_BODY, secret="another app"),
            str(SIGNED_MS),
            SignatureProblem.MISMATCH,
            "header.X-HubSpot-Signature-v3",
            f"another URL than {HUBSPOT_URL}",
        ),
        (
            _hubspot_sign("POST", HUBSPOT_URL.replace("https", "http"), SIGNED_BODY),
            str(SIGNED_MS),
            SignatureProblem.MISMATCH,
            "header.X-HubSpot-Signature-v3",
            "another URL",
        ),
        (
            _hubspot_sign("POST", HUBSPOT_URL, SIGNED_BODY, ms=STALE_MS),
            str(STALE_MS),
            SignatureProblem.STALE,
            "header.X-HubSpot-Request-Timestamp",
            "was signed at 2024-06-01T11:54:59Z, more than 0:05:00 from the server's time",
        ),
        (
            _hubspot_sign("POST", HUBSPOT_URL, SIGNED_BODY, ms=STALE_MS + 700_000),
            str(STALE_MS + 700_000),
            SignatureProblem.STALE,
            "header.X-HubSpot-Request-Timestamp",
            "2024-06-01T12:06:39Z",
        ),
        (
            _hubspot_sign("POST", HUBSPOT_URL, SIGNED_BODY),
            "",
            SignatureProblem.MALFORMED,
            "header.X-HubSpot-Request-Timestamp",
            "in Unix milliseconds (got '')",
        ),
        (
            "x",
            "2024-06-01T12:00:00Z",
            SignatureProblem.MALFORMED,
            "header.X-HubSpot-Request-Timestamp",
            "got '2024-06-01T12:00:00Z'",
        ),
        ("x", "9" * 30, SignatureProblem.MALFORMED, "header.X-HubSpot-Request-Timestamp", "got"),
        ("é", str(SIGNED_MS), SignatureProblem.MISMATCH, "header.X-HubSpot-Signature-v3", "not"),
    ],
)
def test_a_hubspot_signature_that_fails_says_why(
    signature: str, stamp: str, problem: SignatureProblem, field: str, words: str
) -> None:
    with pytest.raises(SignatureError) as raised:
        verify_hubspot_signature(
            "POST", [HUBSPOT_URL], SIGNED_BODY, signature, stamp, HUBSPOT_SECRET.encode(), FIXED_NOW
        )
    assert (raised.value.problem, raised.value.field) == (problem, field)
    assert words in raised.value.message


@pytest.mark.parametrize(
    ("signature", "stamp", "problem", "field", "words"),
    [
        (
            _zendesk_sign(b"{}"),
            ZENDESK_AT,
            SignatureProblem.MISMATCH,
            "header.X-Zendesk-Webhook-Signature",
            "not from Zendesk",
        ),
        (
            _zendesk_sign(SIGNED_BODY, secret="another webhook"),
            ZENDESK_AT,
            SignatureProblem.MISMATCH,
            "header.X-Zendesk-Webhook-Signature",
            "not this webhook's signing secret",
        ),
        (
            _zendesk_sign(SIGNED_BODY, at="2024-06-01T11:54:59Z"),
            "2024-06-01T11:54:59Z",
            SignatureProblem.STALE,
            "header.X-Zendesk-Webhook-Signature-Timestamp",
            "was signed at 2024-06-01T11:54:59Z, more than 0:05:00 from the server's time",
        ),
        (
            _zendesk_sign(SIGNED_BODY, at="2024-06-01T12:05:01Z"),
            "2024-06-01T12:05:01Z",
            SignatureProblem.STALE,
            "header.X-Zendesk-Webhook-Signature-Timestamp",
            "more than 0:05:00",
        ),
        (
            _zendesk_sign(SIGNED_BODY, at="1717243170"),
            "1717243170",
            SignatureProblem.MALFORMED,
            "header.X-Zendesk-Webhook-Signature-Timestamp",
            "in ISO 8601 such as 2021-03-25T05:09:27Z (got '1717243170')",
        ),
        ("", "", SignatureProblem.MALFORMED, "header.X-Zendesk-Webhook-Signature-Timestamp", ""),
    ],
)
def test_a_zendesk_signature_that_fails_says_why(
    signature: str, stamp: str, problem: SignatureProblem, field: str, words: str
) -> None:
    with pytest.raises(SignatureError) as raised:
        verify_zendesk_signature(SIGNED_BODY, signature, stamp, ZENDESK_SECRET.encode(), FIXED_NOW)
    assert (raised.value.problem, raised.value.field) == (problem, field)
    assert words in raised.value.message


@pytest.fixture
def hubspot_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TENURE_HUBSPOT_CLIENT_SECRET", HUBSPOT_SECRET)
    return HUBSPOT_SECRET


@pytest.fixture
def zendesk_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TENURE_ZENDESK_WEBHOOK_SECRET", ZENDESK_SECRET)
    return ZENDESK_SECRET


def _hubspot_headers(url: str, body: bytes, **sign: Any) -> dict[str, str]:
    ms = sign.get("ms", SIGNED_MS)
    return {
        "content-type": "application/json",
        "x-hubspot-signature-v3": _hubspot_sign("POST", url, body, **sign),
        "x-hubspot-request-timestamp": str(ms),
    }


def _zendesk_headers(body: bytes, **sign: Any) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-zendesk-webhook-signature": _zendesk_sign(body, **sign),
        "x-zendesk-webhook-signature-timestamp": sign.get("at", ZENDESK_AT),
    }


def test_a_hubspot_request_signed_v3_is_stored_without_a_key(
    api_project: Project, hubspot_secret: str, base_url: str, http: httpx.Client
) -> None:
    url = f"{base_url}/v1/webhooks/hubspot"
    body = orjson.dumps(HUBSPOT_BATCH)
    answer = http.post(url, content=body, headers=_hubspot_headers(url, body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 11, "accepted": 11, "duplicates": 0, "ignored": 2}
    # a query string is part of what HubSpot signs
    query = f"{url}?portal=33"
    again = http.post(query, content=body, headers=_hubspot_headers(query, body))
    assert again.json()["duplicates"] == 11
    _loads_cleanly(api_project, 11)


def test_behind_a_proxy_hubspot_signs_the_public_url(
    api_project: Project, hubspot_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HubSpot called https://hooks.example/…; the server sees http://127.0.0.1:<port>/…
    monkeypatch.setenv("TENURE_DELIVERY_PUBLIC_URL", "https://hooks.example/")
    proxied = Project(api_project.root, clock=api_project.clock)  # reads the settings anew
    body = orjson.dumps(HUBSPOT_BATCH[:1])
    try:
        with running(create_app(proxied, loader=False)) as url, httpx.Client() as http:
            public = http.post(
                f"{url}/v1/webhooks/hubspot",
                content=body,
                headers=_hubspot_headers(HUBSPOT_URL, body),
            )
            elsewhere = http.post(
                f"{url}/v1/webhooks/hubspot",
                content=body,
                headers=_hubspot_headers("https://elsewhere.example/v1/webhooks/hubspot", body),
            )
    finally:
        proxied.close()
    assert public.status_code == 200, public.text
    assert public.json()["accepted"] == 1
    assert elsewhere.status_code == 401
    assert elsewhere.json()["message"].endswith(
        f"another URL than {url}/v1/webhooks/hubspot or {HUBSPOT_URL}"
    )


def test_hubspot_requests_without_a_valid_key_or_signature_are_401(
    api_project: Project,
    hubspot_secret: str,
    keys: dict[Role, str],
    base_url: str,
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"{base_url}/v1/webhooks/hubspot"
    body = orjson.dumps(HUBSPOT_BATCH)
    cases = {
        "bad signature": (
            _hubspot_headers(url, body, secret="another app"),
            ("invalid_signature", "header.X-HubSpot-Signature-v3"),
        ),
        "tampered body": (
            _hubspot_headers(url, b"[]"),
            ("invalid_signature", "header.X-HubSpot-Signature-v3"),
        ),
        "stale timestamp": (
            _hubspot_headers(url, body, ms=STALE_MS),
            ("stale_signature", "header.X-HubSpot-Request-Timestamp"),
        ),
        "no timestamp": (
            {"x-hubspot-signature-v3": _hubspot_sign("POST", url, body)},
            ("malformed_signature", "header.X-HubSpot-Request-Timestamp"),
        ),
        "neither": ({}, ("unauthorized", None)),
    }
    for case, (headers, expected) in cases.items():
        answer = http.post(url, content=body, headers=headers)
        assert answer.status_code == 401, case
        assert (answer.json()["error"], answer.json()["field"]) == expected, case
        assert "www-authenticate" in answer.headers, case
    assert http.post(url, content=body).json()["message"] == (
        "an API key is required, or HubSpot's signature in X-HubSpot-Signature-v3 (checked "
        "with the HubSpot app's client secret, from the environment variable "
        "TENURE_HUBSPOT_CLIENT_SECRET)"
    )
    # a key still works, with or without a signature that fails
    auth = (keys[Role.INGEST], "")
    bad = _hubspot_headers(url, body, secret="another app")
    assert http.post(url, content=body, headers=bad, auth=auth).json()["accepted"] == 11
    # …and a key without the scope is refused as anywhere else
    refused = http.post(url, content=body, headers=bad, auth=(keys[Role.ANALYST], ""))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    # without the secret, a signature cannot be checked: the answer says what to set
    monkeypatch.delenv("TENURE_HUBSPOT_CLIENT_SECRET")
    unset = http.post(url, content=body, headers=_hubspot_headers(url, body))
    assert (unset.status_code, unset.json()["field"]) == (401, "header.X-HubSpot-Signature-v3")
    assert "set the environment variable TENURE_HUBSPOT_CLIENT_SECRET" in unset.json()["message"]
    assert _inbox_count(api_project) == 11


def test_a_zendesk_request_signed_is_stored_without_a_key(
    api_project: Project, zendesk_secret: str, http: httpx.Client
) -> None:
    body = orjson.dumps({"ticket": _zendesk_ticket()})
    answer = http.post("/v1/webhooks/zendesk", content=body, headers=_zendesk_headers(body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "accepted": 1, "duplicates": 0, "ignored": 0}
    _loads_cleanly(api_project, 1)


def test_zendesk_requests_without_a_valid_key_or_signature_are_401(
    api_project: Project, zendesk_secret: str, keys: dict[Role, str], http: httpx.Client
) -> None:
    body = orjson.dumps({"ticket": _zendesk_ticket()})
    cases = {
        "bad signature": (
            _zendesk_headers(body, secret="another webhook"),
            ("invalid_signature", "header.X-Zendesk-Webhook-Signature"),
        ),
        "tampered body": (
            _zendesk_headers(b"{}"),
            ("invalid_signature", "header.X-Zendesk-Webhook-Signature"),
        ),
        "stale timestamp": (
            _zendesk_headers(body, at="2024-06-01T11:50:00Z"),
            ("stale_signature", "header.X-Zendesk-Webhook-Signature-Timestamp"),
        ),
        "neither": ({}, ("unauthorized", None)),
    }
    for case, (headers, expected) in cases.items():
        answer = http.post("/v1/webhooks/zendesk", content=body, headers=headers)
        assert answer.status_code == 401, case
        assert (answer.json()["error"], answer.json()["field"]) == expected, case
    stale = http.post(
        "/v1/webhooks/zendesk",
        content=body,
        headers=_zendesk_headers(body, at="2024-06-01T11:50:00Z"),
    )
    assert stale.json()["message"] == (
        "was signed at 2024-06-01T11:50:00Z, more than 0:05:00 from the server's time "
        "2024-06-01T12:00:00Z (a replay, or a clock is wrong)"
    )
    assert _inbox_count(api_project) == 0
    # Zendesk signs every request, also those that carry a key: a key still works
    headers = {
        **_zendesk_headers(body, secret="rotated"),
        "authorization": f"Bearer {keys[Role.INGEST]}",
    }
    assert http.post("/v1/webhooks/zendesk", content=body, headers=headers).json()["accepted"] == 1


# --------------------------------------------------------------------------- robustness

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*path, i))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


_SAMPLES = [(stripe_events, e) for e in STRIPE_EVENTS] + [
    (zendesk_events, {"ticket": _zendesk_ticket(satisfaction_rating={"score": "bad"})}),
    (zendesk_events, ZENDESK_SOLVED_EVENT),
    (hubspot_events, HUBSPOT_BATCH),
]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_payload_is_mapped_or_refused_naming_a_field(data: st.DataObject) -> None:
    # a provider's payload with any one value replaced: never a crash, always JSON out
    mapper, sample = data.draw(st.sampled_from(_SAMPLES))
    path = data.draw(st.sampled_from(_paths(sample)))
    payload = _replaced(sample, path, data.draw(_JSON))
    try:
        mapped = mapper(payload)
    except RequestError as error:
        refused: RequestError | None = error
    else:
        refused = None
        assert mapped.ignored <= mapped.received
        for event in mapped.events:
            assert isinstance(event["messageId"], str)
            assert 0 < len(event["messageId"]) <= 200
            orjson.dumps(event)
    if refused is not None:
        assert refused.field.startswith("body"), refused.field
