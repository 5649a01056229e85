"""Reading customers and acting for them: profiles, PII rules, timelines, in-app feed, consent,
erasure and unsubscribe links, against the app on a real server, on each store."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from tenure.api import load_once
from tenure.decide import Contact, CustomerState, load_states, save_states, unsubscribe_secret
from tenure.deliver import InAppChannel, enqueue, get_delivery
from tenure.govern.consent import ConsentReason, may_contact, record_consent, unsubscribe_token
from tenure.govern.keys import Role
from tenure.govern.pii import Pseudonymizer
from tenure.govern.secrets import project_secret
from tenure.project import Project
from tenure.store import read_audit, verify_audit_chain
from tenure.store._tables import in_app_messages, inbox, outbox
from tests.conftest import FIXED_NOW

DEE = "dee@acme.com"
ALL_ON = {"email": True, "in_app": True, "webhook": True, "csm_task": True}


def _contact(profile: str, email: str, user: str, name: str) -> Contact:
    return Contact(
        profile_id=profile,
        email=email,
        user_id=user,
        name=name,
        first_name=name.split()[0],
        timezone="Europe/Berlin",
        identifiers=(f"email:{email}", f"user_id:{user}", f"profile:{profile}"),
    )


def _states() -> list[CustomerState]:
    return [
        CustomerState(
            account_id="acme",
            as_of=FIXED_NOW,
            name="Acme Inc",
            stage="established",
            scores={
                "churn_probability": 0.62,
                "clv": 2400.0,
                "mrr": 100.0,
                "expansion_probability": 0.12,
                "renewal_probability": 0.55,
            },
            reasons=[{"feature": "logins_30d", "contribution": 0.3, "text": "only 3 logins"}],
            health={"score": 42.0, "band": "yellow", "change": -8.5, "movers": "usage -6"},
            features={"logins_30d": 3.0},
            traits={"plan": "pro", "billing_email": "billing@acme.com"},
            contacts=(
                _contact("p_dee", DEE, "u1", "Dee Dee"),
                _contact("p_kim", "kim@acme.com", "u3", "Kim Lee"),
            ),
            models={"churn": "churn v3"},
            days_in_stage=41.0,
        ),
        CustomerState(
            account_id="globex",
            as_of=FIXED_NOW,
            name="Globex",
            stage="onboarding",
            scores={"churn_probability": 0.1},
            contacts=(_contact("p_sam", "sam@globex.com", "u2", "Sam Roe"),),
        ),
    ]


def _publish(project: Project) -> None:
    with project.store.begin() as connection:
        save_states(connection, _states(), published_at=FIXED_NOW, replace=True)


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _key_id(key: str) -> str:
    return key.split("_")[1]


def _masker(project: Project) -> Pseudonymizer:
    env = project.config.serve.pseudonym_secret_env
    return Pseudonymizer(project_secret(project.root, "pseudonym", env))


def _audit(project: Project, action: str) -> list[Any]:
    with project.store.connect() as connection:
        assert verify_audit_chain(connection) is None
        return read_audit(connection, action=action)


# ---------------------------------------------------------------- profiles
@pytest.mark.parametrize("role", [Role.ANALYST, Role.READ_ONLY])
def test_roles_without_pii_get_pseudonyms_and_nothing_is_audited(
    api_project: Project, keys: dict[Role, str], http: httpx.Client, role: Role
) -> None:
    _publish(api_project)
    answer = http.get("/v1/customers/acme", headers=_auth(keys[role]))
    assert answer.status_code == 200, answer.text
    assert "@" not in answer.text  # no email anywhere, in whatever field
    assert "Dee" not in answer.text
    body = answer.json()
    masker = _masker(api_project)
    dee = body["identities"][0]
    assert dee["email"] == masker.pseudonym(DEE)
    assert dee["name"] == masker.pseudonym("Dee Dee")
    assert dee["identifiers"] == [f"email:{masker.pseudonym(DEE)}", "user_id:u1", "profile:p_dee"]
    assert body["traits"] == {"plan": "pro", "billing_email": masker.pseudonym("billing@acme.com")}
    assert body["pseudonymized"] is True
    assert body["name"] == "Acme Inc"  # the account is a company, not a person
    assert _audit(api_project, "pii.read") == []


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
def test_roles_with_pii_see_it_and_each_read_is_audited(
    api_project: Project, keys: dict[Role, str], http: httpx.Client, role: Role
) -> None:
    _publish(api_project)
    for _ in range(2):
        answer = http.get("/v1/customers/acme", headers=_auth(keys[role]))
        assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["identities"][0]["email"] == DEE
    assert body["traits"]["billing_email"] == "billing@acme.com"
    assert body["pseudonymized"] is False
    assert body["stage"] == "established"
    assert body["days_in_stage"] == 41.0
    assert body["as_of"] == "2024-06-01T12:00:00Z"
    assert body["health"] == {
        "score": 42.0,
        "band": "yellow",
        "change_30d": -8.5,
        "movers": "usage -6",
        "components": {},
    }
    assert body["churn"]["probability"] == 0.62
    assert body["churn"]["reasons"][0]["text"] == "only 3 logins"
    assert body["value"]["clv"] == 2400.0
    assert body["propensities"] == {"expansion_probability": 0.12, "renewal_probability": 0.55}
    assert body["models"] == {"churn": "churn v3"}
    entries = _audit(api_project, "pii.read")
    assert [(e.actor, e.target) for e in entries] == [
        (f"key:{_key_id(keys[role])}", "account:acme")
    ] * 2
    assert entries[0].detail == {"route": "GET /v1/customers/{account_id}", "role": role.value}


def test_profile_errors_are_4xx_naming_the_problem(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    _publish(api_project)
    missing = http.get("/v1/customers/nobody", headers=_auth(keys[Role.ANALYST]))
    assert missing.status_code == 404
    assert "nobody" in missing.json()["message"]
    assert http.get("/v1/customers/acme").status_code == 401
    assert http.get("/v1/customers/acme", headers=_auth(keys[Role.INGEST])).status_code == 403


def test_a_typed_identifier_finds_its_contacts(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    _publish(api_project)
    found = http.get(
        "/v1/profiles", params={"identifier": "email:Dee@Acme.com"}, headers=_auth(keys[Role.ADMIN])
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["identifier"] == "email:dee@acme.com"
    assert [(m["account_id"], m["contact"]["profile_id"]) for m in body["matches"]] == [
        ("acme", "p_dee")
    ]
    assert [e.target for e in _audit(api_project, "pii.read")] == ["account:acme"]
    by_user = http.get(
        "/v1/profiles", params={"identifier": "user_id:u2"}, headers=_auth(keys[Role.ANALYST])
    ).json()
    assert [m["account_id"] for m in by_user["matches"]] == ["globex"]
    assert "@" not in orjson.dumps(by_user).decode()
    # a prefix of an identifier is not the identifier
    near = http.get(
        "/v1/profiles", params={"identifier": "user_id:u"}, headers=_auth(keys[Role.ANALYST])
    )
    assert near.json()["matches"] == []
    untyped = http.get(
        "/v1/profiles", params={"identifier": "dee@acme.com"}, headers=_auth(keys[Role.ANALYST])
    )
    assert untyped.status_code == 422
    assert untyped.json()["field"] == "query.identifier"


# ---------------------------------------------------------------- timeline
def _event(n: int, day: int, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": f"Event {n}",
        "messageId": f"m-{n:02d}",
        "timestamp": f"2024-05-{day:02d}T{hour:02d}:00:00Z",
        **fields,
    }


def _load_timeline_events(project: Project, keys: dict[Role, str], http: httpx.Client) -> list[str]:
    """Events of several accounts; returns acme's message ids, newest first."""
    acme = {"context": {"groupId": "acme"}}
    batch = [
        _event(1, 20, 9, userId="u1", **acme),
        _event(2, 21, 9, userId="u9", **acme),  # not a published contact, but in the group
        _event(3, 22, 9, userId="u1"),  # no group: found through the contact's user id
        _event(4, 22, 9, userId="u3", **acme),  # same time as 3: ties break by message id
        _event(5, 23, 9, userId="u2", context={"groupId": "globex"}),
        _event(6, 24, 9, userId="u9", context={"groupId": "globex"}),
        {
            "type": "identify",
            "userId": "u1",
            "messageId": "m-07",
            "timestamp": "2024-05-25T09:00:00Z",
            "traits": {"email": DEE, "name": "Dee Dee", "plan": "pro"},
            "context": {"groupId": "acme", "ip": "203.0.113.9"},
        },
        _event(8, 25, 10, userId="u1", properties={"invitee_email": "new@acme.com"}, **acme),
    ]
    sent = http.post("/v1/batch", json={"batch": batch}, headers=_auth(keys[Role.INGEST]))
    assert sent.json()["accepted"] == len(batch)
    assert load_once(project) == len(batch)
    return ["m-08", "m-07", "m-04", "m-03", "m-02", "m-01"]


def test_the_timeline_is_the_accounts_events_newest_first_in_pages(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    _publish(api_project)
    expected = _load_timeline_events(api_project, keys, http)
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"before": before} if before else {})}
        page = http.get(
            "/v1/customers/acme/timeline", params=params, headers=_auth(keys[Role.ADMIN])
        )
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(e["message_id"] for e in body["events"])
        pages += 1
        before = body["next_before"]
        if before is None:
            break
    assert seen == expected
    assert pages == 3
    whole = http.get("/v1/customers/acme/timeline", headers=_auth(keys[Role.ADMIN])).json()
    assert [e["message_id"] for e in whole["events"]] == expected
    assert whole["next_before"] is None
    identify = whole["events"][1]
    assert identify["traits"]["email"] == DEE
    assert identify["timestamp"] == "2024-05-25T09:00:00Z"
    globex = http.get("/v1/customers/globex/timeline", headers=_auth(keys[Role.ADMIN])).json()
    assert [e["message_id"] for e in globex["events"]] == ["m-06", "m-05"]
    older = http.get(
        "/v1/customers/acme/timeline",
        params={"before": "2024-05-22T09:00:00Z"},
        headers=_auth(keys[Role.ANALYST]),
    ).json()
    assert [e["message_id"] for e in older["events"]] == ["m-02", "m-01"]
    assert [e.target for e in _audit(api_project, "pii.read")] == ["account:acme"] * 2


def test_the_timeline_masks_pii_for_analysts(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    _publish(api_project)
    _load_timeline_events(api_project, keys, http)
    answer = http.get("/v1/customers/acme/timeline", headers=_auth(keys[Role.ANALYST]))
    assert answer.status_code == 200
    assert "@" not in answer.text
    assert "203.0.113.9" not in answer.text
    masker = _masker(api_project)
    identify = answer.json()["events"][1]
    assert identify["traits"] == {
        "email": masker.pseudonym(DEE),
        "name": masker.pseudonym("Dee Dee"),
        "plan": "pro",
    }
    assert identify["email"] == masker.pseudonym(DEE)
    assert _audit(api_project, "pii.read") == []


def test_timeline_errors(api_project: Project, keys: dict[Role, str], http: httpx.Client) -> None:
    _publish(api_project)
    empty = http.get("/v1/customers/acme/timeline", headers=_auth(keys[Role.ANALYST]))
    assert empty.json()["events"] == []  # nothing loaded yet: an empty lake is no error
    bad = http.get(
        "/v1/customers/acme/timeline", params={"before": "yesterday"},
        headers=_auth(keys[Role.ANALYST]),
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["field"] == "query.before"
    big = http.get(
        "/v1/customers/acme/timeline", params={"limit": 501}, headers=_auth(keys[Role.ANALYST])
    )
    assert big.status_code == 422
    assert big.json()["field"] == "query.limit"
    assert (
        http.get("/v1/customers/nobody/timeline", headers=_auth(keys[Role.ANALYST])).status_code
        == 404
    )


# ---------------------------------------------------------------- in-app feed
def _in_app(project: Project, n: int, user: str, account: str) -> int:
    """An in-app message delivered the way the worker's channel does; its id."""
    with project.store.begin() as connection:
        outbox_id = enqueue(
            connection,
            idempotency_key=f"k-{n}",
            account_id=account,
            channel="in_app",
            recipient=user,
            payload={"user_id": user, "title": f"Tip {n}", "body": "Try reports"},
            now=FIXED_NOW,
            decision_id=f"d_{n}",
            campaign="nurture",
        )
        InAppChannel(clock=lambda: FIXED_NOW).send(
            get_delivery(connection, outbox_id),
            {"user_id": user, "title": f"Tip {n}", "body": "Try reports"},
            connection,
        )
        connection.execute(  # as the worker marks it, in the same transaction
            update(outbox).where(outbox.c.id == outbox_id).values(status="sent", sent_at=FIXED_NOW)
        )
        return int(
            connection.execute(
                select(in_app_messages.c.id).where(in_app_messages.c.outbox_id == outbox_id)
            ).scalar_one()
        )


def _inbox_events(project: Project) -> list[dict[str, Any]]:
    with project.store.connect() as connection:
        rows = connection.execute(select(inbox.c.source, inbox.c.payload).order_by(inbox.c.id))
        return [{"source": r.source, **orjson.loads(r.payload)} for r in rows]


def test_seen_and_dismissed_change_the_message_and_emit_events_once(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    first = _in_app(api_project, 1, "u1", "acme")
    second = _in_app(api_project, 2, "u1", "acme")
    other = _in_app(api_project, 3, "u2", "globex")
    auth = _auth(keys[Role.OPERATOR])
    feed = http.get("/v1/users/u1/messages", params={"status": "new"}, headers=auth).json()
    assert sorted(m["id"] for m in feed["messages"]) == [first, second]
    assert feed["messages"][0]["decision_id"] in ("d_1", "d_2")

    seen = http.post(f"/v1/users/u1/messages/{first}/seen", headers=auth)
    assert seen.status_code == 200, seen.text
    assert seen.json()["message"]["status"] == "seen"
    assert seen.json()["message"]["seen_at"] == "2024-06-01T12:00:00Z"
    assert seen.json()["events"] == ["Message Opened"]
    again = http.post(f"/v1/users/u1/messages/{first}/seen", headers=auth).json()
    assert again["events"] == []
    dismissed = http.post(f"/v1/users/u1/messages/{second}/dismissed", headers=auth).json()
    assert dismissed["message"]["status"] == "dismissed"
    assert dismissed["events"] == ["Message Opened", "Message Dismissed"]

    events = _inbox_events(api_project)
    assert [(e["event"], e["properties"]["decision_id"]) for e in events] == [
        ("Message Opened", "d_1"),
        ("Message Opened", "d_2"),
        ("Message Dismissed", "d_2"),
    ]
    assert events[0]["userId"] == "u1"
    # never tenure's account id as a group id: stitching would make it a new account
    # and move the user there (the user places the event in their account)
    assert "context" not in events[0]
    assert events[0]["properties"]["channel"] == "in_app"
    assert {e["source"] for e in events} == {"tenure"}
    new = http.get("/v1/users/u1/messages", params={"status": "new"}, headers=auth).json()
    assert new["messages"] == []

    stolen = http.post(f"/v1/users/u1/messages/{other}/seen", headers=auth)
    assert stolen.status_code == 404
    with api_project.store.connect() as connection:
        status = connection.execute(
            select(in_app_messages.c.status).where(in_app_messages.c.id == other)
        ).scalar_one()
    assert status == "new"
    analyst = http.post(f"/v1/users/u1/messages/{first}/seen", headers=_auth(keys[Role.ANALYST]))
    assert analyst.status_code == 403
    assert load_once(api_project) == 3  # the emitted events are valid canonical events


# ---------------------------------------------------------------- consent
def test_a_consent_change_is_recorded_audited_and_enforced(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    change = {"identifier": "email:Dee@Acme.com", "channel": "email", "granted": False}
    answer = http.post("/v1/consent", json=change, headers=_auth(keys[Role.OPERATOR]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["identifier"] == "email:dee@acme.com"
    channels = {c["channel"]: c["may_contact"] for c in body["channels"]}
    assert channels == {"email": False, "in_app": True, "webhook": True, "csm_task": True}
    assert body["history"][0]["source"] == f"key:{_key_id(keys[Role.OPERATOR])}"
    with api_project.store.connect() as connection:
        allowed, why = may_contact(connection, [f"email:{DEE}"], "email", defaults=ALL_ON)
    assert (allowed, why) == (False, "email:dee@acme.com withdrew email")
    [entry] = _audit(api_project, "consent.update")
    assert entry.actor == f"key:{_key_id(keys[Role.OPERATOR])}"
    assert entry.target == f"identifier:email:{_masker(api_project).pseudonym(DEE)}"
    assert entry.detail == {"channel": "email", "granted": False, "reason": "preference"}

    read = http.get(f"/v1/consent/email:{DEE}", headers=_auth(keys[Role.ADMIN])).json()
    assert [s["granted"] for s in read["history"]] == [False]
    analyst = http.get(f"/v1/consent/email:{DEE}", headers=_auth(keys[Role.ANALYST]))
    assert analyst.status_code == 403
    wrong = http.post(
        "/v1/consent", json={**change, "channel": "carrier-pigeon"},
        headers=_auth(keys[Role.OPERATOR]),
    )  # fmt: skip
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "body.channel"


# ---------------------------------------------------------------- erasure
def test_erasure_removes_the_person_from_the_operational_store(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    _publish(api_project)
    message = _in_app(api_project, 1, "u1", "acme")
    with api_project.store.begin() as connection:
        for key, recipient, profile, account in (
            ("e-dee", DEE, "p_dee", "acme"),
            ("e-sam", "sam@globex.com", "p_sam", "globex"),
        ):
            enqueue(
                connection, idempotency_key=key, account_id=account, channel="email",
                recipient=recipient, profile_id=profile, now=FIXED_NOW,
                payload={"to": recipient, "subject": "Hi", "text": "Hello",
                         "consent_identifiers": [f"email:{recipient}"]},
            )  # fmt: skip
    pending = [
        {"type": "identify", "userId": "u1", "messageId": "i-1",
         "traits": {"email": "DEE@acme.com", "name": "Dee Dee"}},
        {"type": "track", "userId": "u3", "event": "Invite Sent", "messageId": "t-1",
         "properties": {"invitee_email": DEE}, "context": {"groupId": "acme"}},
        {"type": "track", "userId": "u2", "event": "Report Exported", "messageId": "t-2",
         "properties": {"note": "u1"}},
    ]  # fmt: skip
    http.post("/v1/batch", json={"batch": pending}, headers=_auth(keys[Role.INGEST]))

    body = {"identifier": f"email:{DEE}"}
    assert (
        http.post("/v1/erasure", json=body, headers=_auth(keys[Role.OPERATOR])).status_code == 403
    )
    answer = http.post(
        "/v1/erasure", json={"identifier": "email:Dee@acme.com"}, headers=_auth(keys[Role.ADMIN])
    )
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["identifiers"] == [f"email:{DEE}", "profile:p_dee", "user_id:u1"]
    assert (done["accounts"], done["contacts_removed"]) == (["acme"], 1)
    assert (done["outbox_cancelled"], done["in_app_removed"], done["inbox_redacted"]) == (1, 1, 2)
    assert (done["lake"], done["request_id"][:3]) == ("pending", "er_")
    status = http.get(f"/v1/erasure/{done['request_id']}", headers=_auth(keys[Role.ADMIN]))
    assert status.status_code == 200, status.text
    assert status.json()["lake"] == "pending"
    assert status.json()["lake_done_at"] is None

    with api_project.store.connect() as connection:
        [acme] = load_states(connection, ["acme"])
        assert [c.profile_id for c in acme.contacts] == ["p_kim"]
        rows = {r.idempotency_key: r for r in connection.execute(select(outbox))}
        assert (rows["e-dee"].status, rows["e-sam"].status) == ("cancelled", "queued")
        assert DEE not in rows["e-dee"].payload + rows["e-dee"].recipient
        left = select(in_app_messages.c.id).where(in_app_messages.c.id == message)
        assert connection.execute(left).all() == []
        for identifier in (f"email:{DEE}", "user_id:u1", "profile:p_dee"):
            for channel in ALL_ON:
                assert may_contact(connection, [identifier], channel, defaults=ALL_ON)[0] is False
    payloads = {e["messageId"]: e for e in _inbox_events(api_project)}
    text = orjson.dumps(payloads).decode().lower()
    assert "dee@acme.com" not in text
    assert "Dee Dee" not in orjson.dumps(payloads).decode()
    assert payloads["t-2"]["userId"] == "u2"  # other people's events are untouched
    assert payloads["t-2"]["properties"] == {"note": "u1"}
    assert payloads["i-1"]["userId"] == _masker(api_project).pseudonym("u1")
    [entry] = _audit(api_project, "erasure")
    assert entry.actor == f"key:{_key_id(keys[Role.ADMIN])}"
    assert DEE not in orjson.dumps(entry.detail).decode() + entry.target
    gone = http.get(
        "/v1/profiles", params={"identifier": f"email:{DEE}"}, headers=_auth(keys[Role.ADMIN])
    )
    assert gone.json()["matches"] == []


# ---------------------------------------------------------------- unsubscribe
def test_a_forged_unsubscribe_token_is_a_400_naming_it(
    api_project: Project, http: httpx.Client
) -> None:
    forged = unsubscribe_token(f"email:{DEE}", "email", b"not the project's secret")
    for method in ("GET", "POST"):
        answer = http.request(method, f"/unsubscribe/{forged}")
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "path.token"
    malformed = http.post("/unsubscribe/garbage!")
    assert malformed.status_code == 422
    assert malformed.json()["field"] == "path.token"
    not_ascii = http.post(f"/unsubscribe/é{forged[1:]}")  # what the schema cannot tell
    assert not_ascii.status_code == 422
    with api_project.store.connect() as connection:
        assert may_contact(connection, [f"email:{DEE}"], "email", defaults=ALL_ON)[0] is True


def test_the_email_link_unsubscribes_with_one_click(
    api_project: Project, http: httpx.Client
) -> None:
    _publish(api_project)
    token = unsubscribe_token(f"email:{DEE}", "email", unsubscribe_secret(api_project))
    # the URL the email channel puts in List-Unsubscribe (decide's render_action)
    link = f"{api_project.config.delivery.public_url.rstrip('/')}/unsubscribe/{token}"
    path = urlsplit(link).path

    page = http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "email messages" in page.text
    assert 'method="post"' in page.text
    with api_project.store.connect() as connection:  # looking is not unsubscribing
        assert may_contact(connection, [f"email:{DEE}"], "email", defaults=ALL_ON)[0] is True

    one_click = http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200, one_click.text
    assert one_click.json() == {
        "unsubscribed": True,
        "channel": "email",
        "events": ["Message Unsubscribed"],
    }
    with api_project.store.connect() as connection:
        allowed, why = may_contact(connection, [f"email:{DEE}"], "email", defaults=ALL_ON)
    assert (allowed, why) == (False, "email:dee@acme.com withdrew email")
    [event] = _inbox_events(api_project)
    assert event["event"] == "Message Unsubscribed"
    assert event["userId"] == "u1"
    assert "groupId" not in event["context"]  # tenure's account id is no group id
    assert event["properties"] == {"channel": "email"}
    browser = http.post(path, headers={"accept": "text/html,application/xhtml+xml"})
    assert browser.headers["content-type"].startswith("text/html")
    assert "You are unsubscribed" in browser.text
    assert len(_inbox_events(api_project)) == 1  # the second click is the same event
    [entry, _again] = _audit(api_project, "consent.update")
    assert entry.actor == "unsubscribe link"


def test_consent_recorded_elsewhere_shows_in_the_api(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    with api_project.store.begin() as connection:
        record_consent(
            connection, "user_id:u1", "all", granted=False, reason=ConsentReason.IMPORT,
            source="crm", at=FIXED_NOW - dt.timedelta(days=1),
        )  # fmt: skip
    body = http.get("/v1/consent/user_id:u1", headers=_auth(keys[Role.OPERATOR])).json()
    assert all(not c["may_contact"] for c in body["channels"])
    assert body["history"][0]["reason"] == "import"


def test_an_unknown_person_can_unsubscribe_and_be_erased(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    token = unsubscribe_token("email:stranger@x.com", "email", unsubscribe_secret(api_project))
    assert http.post(f"/unsubscribe/{token}").status_code == 200
    [event] = _inbox_events(api_project)
    assert event["anonymousId"] == f"email:{_masker(api_project).pseudonym('stranger@x.com')}"
    assert event["context"] == {"traits": {"email": "stranger@x.com"}}
    done = http.post(
        "/v1/erasure", json={"identifier": "email:stranger@x.com"}, headers=_auth(keys[Role.ADMIN])
    ).json()
    assert done["identifiers"] == ["email:stranger@x.com"]
    assert (done["contacts_removed"], done["outbox_cancelled"], done["inbox_redacted"]) == (0, 0, 1)
    assert "stranger" not in orjson.dumps(_inbox_events(api_project)).decode()


def test_an_erasure_reads_pending_until_the_batch_step_is_done(
    api_project: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    from tenure.govern.lake_erasure import apply_erasures

    _publish(api_project)
    done = http.post(
        "/v1/erasure", json={"identifier": f"email:{DEE}"}, headers=_auth(keys[Role.ADMIN])
    ).json()
    path = f"/v1/erasure/{done['request_id']}"
    assert http.get(path).status_code == 401
    for role in (Role.OPERATOR, Role.ANALYST, Role.INGEST):
        assert http.get(path, headers=_auth(keys[role])).status_code == 403
    unknown = http.get("/v1/erasure/er_0123456789abcdef", headers=_auth(keys[Role.ADMIN]))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert http.get("/v1/erasure/nope", headers=_auth(keys[Role.ADMIN])).status_code == 422

    report = apply_erasures(api_project, actor="nightly")  # the batch side, as cron runs it
    assert report.requests == (done["request_id"],)
    status = http.get(path, headers=_auth(keys[Role.ADMIN])).json()
    assert (status["lake"], status["lake_done_at"]) == ("done", "2024-06-01T12:00:00Z")
    assert status["requested_by"] == f"key:{_key_id(keys[Role.ADMIN])}"
    assert status["result"]["events_removed"] == 0  # nothing was loaded for her yet
    assert status["lake_detail"].startswith("the batch erasure step removed")
