"""The canonical event model (Segment's spec) and the semantic event catalog."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import tenure.events
from tenure.events import (
    CATALOG,
    AliasEvent,
    BatchRequest,
    EventGroup,
    GroupEvent,
    IdentifyEvent,
    PageEvent,
    PropertyType,
    ScreenEvent,
    TrackEvent,
    catalog_event,
    parse_batch,
    parse_event,
    render_catalog_markdown,
)
from tenure.events.__main__ import main as events_main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"

# --- payloads shaped like the complete examples in Segment's spec pages ----------------

_COMMON: dict[str, Any] = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {
        "ip": "8.8.8.8",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36",
    },
    "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "userId": "97980cfea0067",
    "version": "1.1",
}

IDENTIFY = {
    **_COMMON,
    "type": "identify",
    "traits": {
        "name": "Peter Gibbons",
        "email": "peter@example.com",
        "plan": "premium",
        "logins": 5,
        "address": {"street": "6th St", "city": "San Francisco", "state": "CA"},
    },
}
TRACK = {
    **_COMMON,
    "type": "track",
    "event": "Registered",
    "properties": {"plan": "Pro Annual", "accountType": "Facebook"},
}
GROUP = {
    **_COMMON,
    "type": "group",
    "groupId": "0e8c78ea9d97a7b8185e8632",
    "traits": {"name": "Initech", "industry": "Technology", "employees": 329, "plan": "enterprise"},
}
PAGE = {
    **_COMMON,
    "type": "page",
    "name": "Home",
    "properties": {
        "title": "Welcome | Initech",
        "url": "http://www.example.com",
        "path": "/",
        "referrer": "https://google.com/",
    },
}
SCREEN = {
    **_COMMON,
    "channel": "mobile",
    "type": "screen",
    "name": "Home",
    "properties": {"Feed Type": "private"},
}
ALIAS = {**_COMMON, "type": "alias", "previousId": "39239-239239-239239-23923"}

SENT_AT = datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)


def _minimal_track(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": "m-1",
        "userId": "u-1",
        "event": "Signed In",
        "timestamp": "2024-03-01T12:00:00Z",
        **overrides,
    }


def _errors(payload: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        parse_event(payload)
    return [dict(error) for error in info.value.errors()]


# --- the six calls ---------------------------------------------------------------------


def test_identify_parses_from_segment_example() -> None:
    event = parse_event(IDENTIFY)
    assert isinstance(event, IdentifyEvent)
    assert event.user_id == "97980cfea0067"
    assert event.anonymous_id == "507f191e810c19729de860ea"
    assert event.traits["address"] == {"street": "6th St", "city": "San Francisco", "state": "CA"}
    assert event.context["ip"] == "8.8.8.8"
    assert event.integrations == {"All": False, "Mixpanel": True, "Salesforce": True}
    assert event.timestamp == SENT_AT
    assert event.sent_at == SENT_AT
    assert event.received_at == datetime(2015, 2, 23, 22, 28, 55, 387000, tzinfo=UTC)
    assert event.original_timestamp is None


def test_track_parses_from_segment_example() -> None:
    event = parse_event(TRACK)
    assert isinstance(event, TrackEvent)
    assert event.event == "Registered"
    assert event.properties == {"plan": "Pro Annual", "accountType": "Facebook"}
    assert event.message_id == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"


def test_group_parses_from_segment_example() -> None:
    event = parse_event(GROUP)
    assert isinstance(event, GroupEvent)
    assert event.group_id == "0e8c78ea9d97a7b8185e8632"
    assert event.traits["employees"] == 329


def test_page_parses_from_segment_example() -> None:
    event = parse_event({**PAGE, "category": "Docs"})
    assert isinstance(event, PageEvent)
    assert (event.name, event.category) == ("Home", "Docs")
    assert event.properties["path"] == "/"


def test_screen_parses_from_segment_example() -> None:
    event = parse_event(SCREEN)
    assert isinstance(event, ScreenEvent)
    assert event.name == "Home"
    assert event.properties == {"Feed Type": "private"}


def test_alias_parses_from_segment_example() -> None:
    event = parse_event(ALIAS)
    assert isinstance(event, AliasEvent)
    assert (event.previous_id, event.user_id) == ("39239-239239-239239-23923", "97980cfea0067")


def test_json_bytes_and_text_parse_like_the_mapping() -> None:
    text = json.dumps(TRACK)
    assert parse_event(text) == parse_event(TRACK)
    assert parse_event(text.encode()) == parse_event(TRACK)


def test_snake_case_names_are_accepted_too() -> None:
    event = parse_event(
        {
            "type": "group",
            "message_id": "m-1",
            "user_id": "u-1",
            "group_id": "acct_123",
            "timestamp": "2024-03-01T12:00:00Z",
        }
    )
    assert isinstance(event, GroupEvent)
    assert event.group_id == "acct_123"


def test_dump_by_alias_uses_segment_names() -> None:
    dumped = parse_event(TRACK).model_dump(by_alias=True)
    assert {"messageId", "userId", "anonymousId", "sentAt", "receivedAt"} <= dumped.keys()
    assert "message_id" not in dumped


# --- rules -----------------------------------------------------------------------------


def test_missing_user_id_and_anonymous_id_fails_naming_both() -> None:
    payload = {k: v for k, v in TRACK.items() if k not in ("userId", "anonymousId")}
    [error] = _errors(payload)
    assert error["type"] == "value_error"
    assert error["loc"] == ("track",)
    assert "userId" in error["msg"]
    assert "anonymousId" in error["msg"]


def test_blank_ids_count_as_missing() -> None:
    [error] = _errors(_minimal_track(userId="", anonymousId="  "))
    assert "a call needs a userId or an anonymousId" in error["msg"]


def test_anonymous_id_alone_is_enough() -> None:
    event = parse_event(_minimal_track(userId=None, anonymousId="anon-7"))
    assert (event.user_id, event.anonymous_id) == (None, "anon-7")


def test_track_without_event_fails_naming_the_field() -> None:
    payload = {k: v for k, v in TRACK.items() if k != "event"}
    [error] = _errors(payload)
    assert (error["loc"], error["type"]) == (("track", "event"), "missing")


def test_track_with_blank_event_fails() -> None:
    [error] = _errors(_minimal_track(event="   "))
    assert error["loc"] == ("track", "event")
    assert "must not be blank" in error["msg"]


def test_group_needs_group_id_and_alias_needs_previous_id() -> None:
    group = {k: v for k, v in GROUP.items() if k != "groupId"}
    assert [e["loc"] for e in _errors(group)] == [("group", "groupId")]
    alias = {k: v for k, v in ALIAS.items() if k != "previousId"}
    assert [e["loc"] for e in _errors(alias)] == [("alias", "previousId")]


def test_alias_needs_user_id_even_with_anonymous_id() -> None:
    alias = {k: v for k, v in ALIAS.items() if k != "userId"}
    assert [e["loc"] for e in _errors(alias)] == [("alias", "userId")]


def test_message_id_and_timestamp_are_required_without_received_at() -> None:
    payload = {k: v for k, v in TRACK.items() if k not in ("messageId", "timestamp")}
    locs = {e["loc"] for e in _errors(payload)}
    assert locs == {("track", "messageId"), ("track", "timestamp")}


def test_unknown_type_is_rejected() -> None:
    [error] = _errors({**TRACK, "type": "purchase"})
    assert error["type"] == "union_tag_invalid"
    assert "'purchase'" in error["msg"]


def test_missing_type_is_rejected() -> None:
    payload = {k: v for k, v in TRACK.items() if k != "type"}
    [error] = _errors(payload)
    assert error["type"] == "union_tag_not_found"


def test_non_object_json_is_a_validation_error() -> None:
    [error] = _errors(b"[1, 2]")
    assert error["type"] == "dict_type"
    [error] = _errors(b'{"type": ')
    assert error["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2015-02-23T23:28:55.111+01:00", datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)),
        ("2015-02-23T14:28:55-08:00", datetime(2015, 2, 23, 22, 28, 55, tzinfo=UTC)),
        ("2015-02-24T04:28:55+05:30", datetime(2015, 2, 23, 22, 58, 55, tzinfo=UTC)),
        ("2015-02-23T22:28:55Z", datetime(2015, 2, 23, 22, 28, 55, tzinfo=UTC)),
        ("2015-02-23T22:28:55", datetime(2015, 2, 23, 22, 28, 55, tzinfo=UTC)),  # naive is UTC
    ],
)
def test_timestamps_normalize_to_utc(raw: str, expected: datetime) -> None:
    event = parse_event(_minimal_track(timestamp=raw, sentAt=raw, originalTimestamp=raw))
    for value in (event.timestamp, event.sent_at, event.original_timestamp):
        assert value == expected
        assert value is not None
        assert value.tzinfo is UTC


@pytest.mark.parametrize("bad", [1424730535, "yesterday", "2015-2-23T22:28:55Z"])
def test_non_iso_timestamps_are_rejected(bad: object) -> None:
    [error] = _errors(_minimal_track(timestamp=bad))
    assert error["loc"] == ("track", "timestamp")
    assert "ISO 8601" in error["msg"]


def test_integer_user_id_is_coerced_to_string() -> None:
    assert parse_event(_minimal_track(userId=42)).user_id == "42"
    group = parse_event({**GROUP, "groupId": 1001})
    assert isinstance(group, GroupEvent)
    assert group.group_id == "1001"


def test_boolean_user_id_is_rejected() -> None:
    [error] = _errors(_minimal_track(userId=True))
    assert error["loc"] == ("track", "userId")


def test_unknown_top_level_fields_are_kept_but_write_key_is_dropped() -> None:
    event = parse_event({**TRACK, "writeKey": "secret-key", "projectId": "p1"})
    assert event.model_extra == {"channel": "browser", "version": "1.1", "projectId": "p1"}
    assert "writeKey" not in event.model_dump(by_alias=True)


def test_null_context_and_properties_become_empty_objects() -> None:
    event = parse_event(_minimal_track(context=None, properties=None))
    assert isinstance(event, TrackEvent)
    assert (event.context, event.properties) == ({}, {})


def test_events_are_immutable() -> None:
    event = parse_event(TRACK)
    with pytest.raises(ValidationError):
        event.user_id = "someone-else"


# --- stamping on receipt ---------------------------------------------------------------


def test_received_at_stamps_the_call_like_segment_servers() -> None:
    received = datetime(2024, 3, 1, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    payload = {"type": "track", "userId": "u-1", "event": "Signed In"}
    event = parse_event(payload, received_at=received)
    assert event.received_at == datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert event.timestamp == event.received_at
    # derived from the content: the same call gets the same id, another call another
    assert event.message_id == parse_event(payload, received_at=received).message_id
    other = parse_event({**payload, "event": "Signed Out"}, received_at=received)
    assert other.message_id != event.message_id


def test_received_at_keeps_the_callers_timestamp_and_message_id() -> None:
    event = parse_event(TRACK, received_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert event.timestamp == SENT_AT
    assert event.message_id == TRACK["messageId"]
    assert event.received_at == datetime(2030, 1, 1, tzinfo=UTC)


# --- batch -----------------------------------------------------------------------------

BATCH: dict[str, Any] = {
    "batch": [
        {
            "type": "identify",
            "messageId": "b-1",
            "userId": "019mr8mf4r",
            "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
            "timestamp": "2012-12-02T00:30:08.276Z",
        },
        {
            "type": "track",
            "messageId": "b-2",
            "userId": "019mr8mf4r",
            "event": "Song Played",
            "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"},
            "context": {"device": {"type": "tablet"}, "ip": "24.5.68.47"},
            "integrations": {"Mixpanel": False},
            "sentAt": "2012-12-02T00:30:20Z",
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
    ],
    "writeKey": "YOUR_WRITE_KEY",
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}, "locale": "en-US"},
    "integrations": {"All": True, "Salesforce": False},
    "sentAt": "2012-12-02T00:30:30Z",
}


def test_batch_merges_top_level_context_into_each_call() -> None:
    body = BatchRequest.model_validate(BATCH)
    identify, track = body.batch
    assert identify.context == {
        "device": {"type": "phone", "name": "Apple iPhone 6"},
        "locale": "en-US",
    }
    # a call's own context keys win over the batch's
    assert track.context == {"device": {"type": "tablet"}, "ip": "24.5.68.47", "locale": "en-US"}
    assert identify.integrations == {"All": True, "Salesforce": False}
    assert track.integrations == {"All": True, "Salesforce": False, "Mixpanel": False}
    assert identify.sent_at == datetime(2012, 12, 2, 0, 30, 30, tzinfo=UTC)
    assert track.sent_at == datetime(2012, 12, 2, 0, 30, 20, tzinfo=UTC)
    assert "writeKey" not in (body.model_extra or {})


def test_parse_batch_reads_json_and_stamps_every_call() -> None:
    items = [{k: v for k, v in item.items() if k != "messageId"} for item in BATCH["batch"]]
    body = parse_batch(
        json.dumps({**BATCH, "batch": items}), received_at=datetime(2024, 1, 1, tzinfo=UTC)
    )
    ids = [event.message_id for event in body.batch]
    assert len(set(ids)) == 2
    assert all(event.received_at == datetime(2024, 1, 1, tzinfo=UTC) for event in body.batch)
    assert body.batch[0].context["locale"] == "en-US"


def test_an_invalid_call_fails_the_batch_naming_its_index() -> None:
    bad = {**BATCH, "batch": [BATCH["batch"][0], {**BATCH["batch"][1], "event": ""}]}
    with pytest.raises(ValidationError) as info:
        BatchRequest.model_validate(bad)
    assert [e["loc"] for e in info.value.errors()] == [("batch", 1, "track", "event")]


# --- the catalog -----------------------------------------------------------------------

EXPECTED_EVENTS = {
    # Segment B2B SaaS
    "Account Created",
    "Account Deleted",
    "Signed Up",
    "Signed In",
    "Signed Out",
    "Invite Sent",
    "Account Added User",
    "Account Removed User",
    "Trial Started",
    "Trial Ended",
    # billing
    "Subscription Started",
    "Subscription Changed",
    "Subscription Canceled",
    "Invoice Paid",
    "Payment Failed",
    # support
    "Ticket Created",
    "Ticket Updated",
    "Ticket Solved",
    "CSAT Submitted",
    # CRM
    "Lead Created",
    "Lead Qualified",
    "Opportunity Created",
    "Opportunity Stage Changed",
    "Opportunity Won",
    "Opportunity Lost",
    # surveys
    "NPS Submitted",
    # messaging
    "Message Sent",
    "Message Delivered",
    "Message Opened",
    "Message Clicked",
    "Message Bounced",
    "Message Dismissed",
    "Message Unsubscribed",
    # Segment e-commerce
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    # product usage
    "Feature Used",
}

#: The contract the ingest validator enforces: which properties an event cannot lack.
EXPECTED_REQUIRED = {
    "Subscription Started": {"plan", "mrr"},
    "Subscription Changed": {"plan", "mrr"},
    "Subscription Canceled": {"plan", "mrr"},
    "Invoice Paid": {"amount"},
    "Payment Failed": {"amount"},
    "Ticket Created": {"ticket_id"},
    "Ticket Updated": {"ticket_id"},
    "Ticket Solved": {"ticket_id"},
    "CSAT Submitted": {"score"},
    "Opportunity Created": {"opportunity_id"},
    "Opportunity Stage Changed": {"opportunity_id", "stage"},
    "Opportunity Won": {"opportunity_id", "amount"},
    "Opportunity Lost": {"opportunity_id", "amount"},
    "NPS Submitted": {"score"},
    "Message Sent": {"channel"},
    "Message Delivered": {"channel"},
    "Message Opened": {"channel"},
    "Message Clicked": {"channel"},
    "Message Bounced": {"channel"},
    "Message Dismissed": {"channel"},
    "Message Unsubscribed": {"channel"},
    "Order Completed": {"order_id", "revenue"},
    "Order Refunded": {"order_id"},
    "Feature Used": {"feature"},
}


def test_catalog_covers_exactly_the_semantic_events() -> None:
    assert set(CATALOG) == EXPECTED_EVENTS
    assert all(name == spec.name for name, spec in CATALOG.items())


def test_required_properties_are_exactly_the_contract() -> None:
    required = {
        name: {p.name for p in spec.properties if p.required}
        for name, spec in CATALOG.items()
        if any(p.required for p in spec.properties)
    }
    assert required == EXPECTED_REQUIRED


def test_segment_b2b_saas_properties_are_all_optional() -> None:
    b2b = [spec for spec in CATALOG.values() if spec.group is EventGroup.B2B_SAAS]
    assert len(b2b) == 10
    assert not any(p.required for spec in b2b for p in spec.properties)
    trial = catalog_event("Trial Started")
    assert trial is not None
    assert [(p.name, p.type) for p in trial.properties] == [
        ("trial_start_date", PropertyType.TIMESTAMP),
        ("trial_end_date", PropertyType.TIMESTAMP),
        ("trial_plan_name", PropertyType.STRING),
    ]
    invite = catalog_event("Invite Sent")
    assert invite is not None
    assert [p.name for p in invite.properties] == [
        "invitee_email",
        "invitee_first_name",
        "invitee_last_name",
        "invitee_role",
    ]


def test_property_names_are_unique_within_each_event() -> None:
    for spec in CATALOG.values():
        names = [p.name for p in spec.properties]
        assert len(names) == len(set(names)), spec.name


def test_catalog_is_immutable() -> None:
    with pytest.raises(TypeError):
        CATALOG["Made Up"] = CATALOG["Feature Used"]  # type: ignore[index]


def test_catalog_event_looks_up_by_exact_name() -> None:
    spec = catalog_event("Order Completed")
    assert spec is not None
    assert spec.group is EventGroup.ECOMMERCE
    revenue = spec.property("revenue")
    assert revenue is not None
    assert (revenue.type, revenue.required, revenue.minimum) == (PropertyType.NUMBER, True, 0)
    assert catalog_event("order completed") is None
    assert catalog_event("Song Played") is None


def test_nps_score_expectation() -> None:
    nps = catalog_event("NPS Submitted")
    assert nps is not None
    score = nps.property("score")
    assert score is not None
    assert score.expectation() == "an integer 0–10"


def test_csat_is_a_required_integer_from_1_to_5() -> None:
    csat = catalog_event("CSAT Submitted")
    assert csat is not None
    score = csat.property("score")
    assert score is not None
    assert score.expectation() == "an integer 1–5"


def test_message_channel_choices() -> None:
    sent = catalog_event("Message Sent")
    assert sent is not None
    channel = sent.property("channel")
    assert channel is not None
    assert channel.expectation() == "a string (one of email, in_app, webhook, csm_task, sms)"


# --- docs ------------------------------------------------------------------------------


def test_docs_events_md_matches_the_catalog() -> None:
    rendered = render_catalog_markdown()
    on_disk = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert on_disk == rendered, (
        "docs/events.md is out of date with the event catalog: "
        "regenerate it with `python -m tenure.events` from the repository root"
    )


def test_rendered_catalog_has_a_table_per_event() -> None:
    rendered = render_catalog_markdown()
    for name in CATALOG:
        assert f"\n### {name}\n" in rendered
    assert "| `score` | integer | yes | 0–10 | The answer, 0 to 10. |" in rendered
    assert "one of `low`, `normal`, `high`, `urgent`" in rendered
    assert "quarantined with the reason" in rendered


def test_main_writes_the_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "events.md"
    assert events_main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_catalog_markdown()
    assert events_main(["-"]) == 0
    assert capsys.readouterr().out.endswith(render_catalog_markdown())


def test_public_names_are_pinned() -> None:
    assert set(tenure.events.__all__) == {
        "AliasEvent",
        "BatchRequest",
        "CATALOG",
        "Event",
        "EventGroup",
        "EventSpec",
        "GroupEvent",
        "IdentifyEvent",
        "PageEvent",
        "PropertySpec",
        "PropertyType",
        "ScreenEvent",
        "TrackEvent",
        "catalog_event",
        "parse_batch",
        "parse_event",
        "render_catalog_markdown",
    }
    assert all(hasattr(tenure.events, name) for name in tenure.events.__all__)


# --- invariants ------------------------------------------------------------------------

_ids = st.text(min_size=1, max_size=24).filter(str.strip)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_json_objects = st.dictionaries(st.text(max_size=8), _json_values, max_size=4)
_aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@st.composite
def _track_payloads(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    when = draw(_aware_datetimes)
    user_id, anonymous_id = draw(
        st.sampled_from(["user", "anonymous", "both"]).flatmap(
            lambda which: st.tuples(
                _ids if which != "anonymous" else st.none(),
                _ids if which != "user" else st.none(),
            )
        )
    )
    payload: dict[str, Any] = {
        "type": "track",
        "messageId": draw(_ids),
        "userId": user_id,
        "anonymousId": anonymous_id,
        "event": draw(_ids),
        "timestamp": when.isoformat(),
        "properties": draw(_json_objects),
        "context": draw(_json_objects),
    }
    if draw(st.booleans()):
        payload["sentAt"] = draw(_aware_datetimes).isoformat()
    if draw(st.booleans()):
        payload["integrations"] = {"All": draw(st.booleans())}
    if draw(st.booleans()):
        payload["version"] = draw(st.integers(min_value=1, max_value=2))
    return payload, when


@settings(derandomize=True, max_examples=200, deadline=None)
@given(_track_payloads())
def test_valid_track_events_round_trip_unchanged(case: tuple[dict[str, Any], datetime]) -> None:
    payload, when = case
    event = parse_event(payload)
    assert event.timestamp == when
    assert event.timestamp.tzinfo is UTC
    assert parse_event(event.model_dump(by_alias=True)) == event
    assert parse_event(event.model_dump_json(by_alias=True)) == event
