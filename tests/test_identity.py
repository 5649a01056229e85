"""Identity stitching, profiles, accounts and the customer graph."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tenure.identity as identity
from tenure.config import IdentitySettings
from tenure.errors import IdentityError, NotFoundError
from tenure.identity import (
    LinkRule,
    LinkStatus,
    ProfileView,
    find_profile,
    split_link,
    stitch,
)
from tenure.identity._model import Entity, link_id_for, owner_id_for
from tenure.identity._partition import LinkCandidate, NodeState, components, decide_batch
from tenure.project import Project, init_project
from tenure.store import read_audit, verify_audit_chain
from tests._lake import load_events

T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + dt.timedelta(days=30))


@pytest.fixture
def project(tmp_path: Path, clock: Clock) -> Iterator[Project]:
    """A SQLite-store project on a clock the test moves (overrides conftest's ``project``)."""
    opened = init_project(tmp_path / "proj", clock=clock)
    yield opened
    opened.close()


def ev(
    kind: str,
    minute: int,
    *,
    user: str | None = None,
    anon: str | None = None,
    email: str | None = None,
    group: str | None = None,
    previous: str | None = None,
    event: str | None = None,
    traits: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    external: list[tuple[str, str, str]] | None = None,
    source: str = "segment",
) -> dict[str, Any]:
    """One lake event *minute* minutes after T0; external = (type, id, collection)."""
    context = None
    if external:
        context = {
            "externalIds": [
                {"type": t, "id": i, "collection": c, "encoding": "none"} for t, i, c in external
            ]
        }
    return {
        "type": kind,
        "event": event,
        "user_id": user,
        "anonymous_id": anon,
        "group_id": group,
        "previous_id": previous,
        "email": email,
        "timestamp": T0 + dt.timedelta(minutes=minute),
        "traits": None if traits is None else json.dumps(traits),
        "properties": None if properties is None else json.dumps(properties),
        "context": None if context is None else json.dumps(context),
        "source": source,
    }


def load(project: Project, run: str, events: list[dict[str, Any]]) -> None:
    """Write *events* into the lake as ingest run *run*, as the ingest pipeline would."""
    load_events(project, run, events)


def table(project: Project, name: str) -> list[dict[str, Any]]:
    backend = project.warehouse.backend
    found: list[dict[str, Any]] = backend.to_pyarrow(backend.table(name)).to_pylist()
    return found


def links(project: Project, **where: str) -> list[dict[str, Any]]:
    return [r for r in table(project, "identity_links") if all(r[k] == v for k, v in where.items())]


def profile_of(project: Project, identifier: str) -> str:
    for row in table(project, "identity_nodes"):
        if row["identifier"] == identifier:
            return str(row["profile_id"])
    raise AssertionError(f"{identifier} is not a node")


def snapshot(project: Project) -> dict[str, list[tuple[Any, ...]]]:
    """Every identity table's rows, sorted, for comparing two states."""
    return {
        name: sorted(
            (tuple(map(repr, row.values())) for row in table(project, name)),
        )
        for name in identity.table_schemas()
    }


# --------------------------------------------------------------------- stitching
def test_anonymous_page_views_end_up_on_the_identified_user(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("page", 0, anon="anon-1", event="Pricing"),
            ev("page", 1, anon="anon-1", event="Signup"),
            ev(
                "identify",
                2,
                anon="anon-1",
                user="u1",
                email="ann@acme.com",
                traits={"name": "Ann", "email": "ann@acme.com"},
            ),
            ev("track", 3, user="u1", event="Signed In"),
        ],
    )
    report = stitch(project)

    assert report.events_read == 4
    assert report.runs == ("r1",)
    assert report.merges == 2  # anon ← user and email
    assert report.profiles == 1
    view = find_profile(project.warehouse, "u1")
    assert view.identifiers["anonymous_id"] == ("anon-1",)
    assert view.identifiers["email"] == ("ann@acme.com",)
    assert view.event_count == 4
    assert view.first_seen == T0
    assert [e.event for e in view.recent_events] == ["Signed In", None, "Signup", "Pricing"]
    # the profile id is that of the earliest identifier: the anonymous device
    assert view.profile_id == owner_id_for("p_", "anonymous_id:anon-1")
    assert view.traits == {"email": "ann@acme.com", "name": "Ann"}


def test_two_devices_become_one_user(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("page", 0, anon="laptop"),
            ev("screen", 5, anon="phone"),
            ev("identify", 10, anon="laptop", user="u1"),
            ev("identify", 20, anon="phone", user="u1"),
        ],
    )
    stitch(project)
    view = find_profile(project.warehouse, "phone")
    assert view.identifiers["anonymous_id"] == ("laptop", "phone")
    assert view.identifiers["user_id"] == ("u1",)
    assert len(table(project, "profiles")) == 1


def test_email_change_keeps_both_emails_and_the_latest_trait(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("identify", 0, user="u1", email="ann@old.com", traits={"email": "ann@old.com"}),
            ev("identify", 60, user="u1", email="ann@new.com", traits={"email": "ann@new.com"}),
        ],
    )
    stitch(project)
    view = find_profile(project.warehouse, "ann@old.com")
    assert view.identifiers["email"] == ("ann@new.com", "ann@old.com")
    assert view.traits["email"] == "ann@new.com"
    assert find_profile(project.warehouse, "ANN@new.com ").profile_id == view.profile_id


def test_user_moving_between_accounts(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("group", 0, user="u1", group="acct-a", traits={"name": "Alpha Inc"}),
            ev("track", 10, user="u1", group="acct-a", event="Report Viewed"),
            ev("group", 100, user="u1", group="acct-b", traits={"name": "Beta LLC", "plan": "pro"}),
            ev("track", 110, user="u1", group="acct-b", event="Report Viewed"),
        ],
    )
    report = stitch(project)
    assert report.accounts == 2

    view = find_profile(project.warehouse, "u1")
    assert view.account is not None
    assert view.account.name == "Beta LLC"
    assert view.account.traits == {"name": "Beta LLC", "plan": "pro"}
    assert view.account.group_ids == ("acct-b",)
    history = [(m.name, m.is_current, m.first_seen, m.last_seen) for m in view.account_history]
    assert history == [
        ("Alpha Inc", False, T0, T0 + dt.timedelta(minutes=10)),
        ("Beta LLC", True, T0 + dt.timedelta(minutes=100), T0 + dt.timedelta(minutes=110)),
    ]
    accounts = {r["name"]: r for r in table(project, "accounts")}
    assert accounts["Alpha Inc"]["member_count"] == 1
    assert accounts["Beta LLC"]["account_id"] == owner_id_for("a_", "group_id:acct-b")
    assert [r["account_id"] for r in table(project, "profiles")] == [view.account.account_id]


def test_account_external_ids_join_the_group(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev(
                "group",
                0,
                user="u1",
                group="acme",
                traits={"name": "Acme"},
                external=[("hubspot_company_id", "42", "accounts")],
            ),
            # a CRM record naming only the company: it lands on the same account
            ev(
                "group",
                5,
                group=None,
                traits={"industry": "retail"},
                source="hubspot",
                external=[("hubspot_company_id", "42", "accounts")],
            ),
        ],
    )
    report = stitch(project)
    assert (report.accounts, report.account_merges) == (1, 1)
    [account] = table(project, "accounts")
    assert account["group_ids"] == ["acme"]
    assert account["external_ids"] == ["hubspot_company_id:42"]
    assert json.loads(account["traits"]) == {"industry": "retail", "name": "Acme"}
    assert account["event_count"] == 2

    # account links split like person links
    [link] = table(project, "account_links")
    result = split_link(project, link["link_id"], actor="ops", reason="wrong company")
    acme = owner_id_for("a_", "group_id:acme")
    crm = owner_id_for("a_", "external_id:hubspot_company_id:42")
    assert (result.entity, result.profile_before, result.profiles_after) == (
        "account",
        acme,
        (acme, crm),
    )
    traits = {r["account_id"]: json.loads(r["traits"]) for r in table(project, "accounts")}
    assert traits == {acme: {"name": "Acme"}, crm: {"industry": "retail"}}


# ------------------------------------------------------------ over-merge rules
def test_generic_email_never_merges_two_users(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("identify", 0, user="u1", email="info@acme.com"),
            ev("identify", 5, user="u2", email="info@acme.com"),
        ],
    )
    report = stitch(project)

    assert report.refused == {"generic_email": 2}
    assert report.merges == 0
    assert profile_of(project, "user_id:u1") != profile_of(project, "user_id:u2")
    refused = links(project, rule="user_email")
    assert {(r["left_id"], r["status"], r["reason"]) for r in refused} == {
        ("user_id:u1", "refused", "generic_email"),
        ("user_id:u2", "refused", "generic_email"),
    }
    # the role mailbox is an identifier of its own profile only
    assert find_profile(project.warehouse, "info@acme.com").identifiers["user_id"] == ()


def test_shared_device_never_merges_two_users(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("identify", 0, anon="kiosk", user="u1"),
            ev("identify", 5, anon="kiosk", user="u2"),
            ev("identify", 6, user="u2", email="bob@acme.com"),
            ev("identify", 7, user="u1", email="bob@acme.com"),  # shared personal email
        ],
    )
    report = stitch(project)

    assert report.refused == {"limit_user_id": 2}
    u1, u2 = profile_of(project, "user_id:u1"), profile_of(project, "user_id:u2")
    assert u1 != u2
    assert profile_of(project, "anonymous_id:kiosk") == u1  # the first user keeps the device
    assert profile_of(project, "email:bob@acme.com") == u2
    [device] = links(project, rule="anonymous_user", right_id="user_id:u2")
    assert (device["status"], device["reason"]) == ("refused", "limit_user_id")
    # the engine computes link ids with the same digits as Python
    assert device["link_id"] == link_id_for(
        Entity.PERSON, LinkRule.ANONYMOUS_USER, "anonymous_id:kiosk", "user_id:u2"
    )
    assert device["message_id"] == "r1-0001"
    for row in table(project, "profiles"):
        assert len(row["user_ids"]) <= 1


def test_alias_from_anonymous_and_from_an_old_user_id(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("page", 0, anon="a1"),
            ev("alias", 1, previous="a1", user="u-old"),
            ev("identify", 2, user="u-old", email="cy@acme.com"),
            ev("alias", 3, previous="u-old", user="u-new"),  # the user id was renamed
            ev("track", 4, user="u-new", event="Signed In"),
        ],
    )
    stitch(project)

    alias = {(r["left_id"], r["right_id"]): r["status"] for r in links(project, rule="alias")}
    assert alias == {
        ("anonymous_id:a1", "user_id:u-old"): "active",
        ("user_id:u-old", "user_id:u-new"): "active",
    }
    view = find_profile(project.warehouse, "u-new")
    assert view.identifiers["user_id"] == ("u-new", "u-old")
    assert view.identifiers["anonymous_id"] == ("a1",)
    assert view.event_count == 5


# ------------------------------------------------------------- incremental runs
def test_incremental_run_merges_into_the_existing_profile(project: Project, clock: Clock) -> None:
    load(project, "r1", [ev("identify", 0, anon="a1", user="u1", email="dee@acme.com")])
    first = stitch(project)
    before = find_profile(project.warehouse, "u1").profile_id

    clock.now += dt.timedelta(days=1)
    load(
        project,
        "r2",
        [ev("page", 60, anon="a2", event="Docs"), ev("identify", 61, anon="a2", user="u1")],
    )
    second = stitch(project)

    assert (first.runs, first.events_read) == (("r1",), 1)
    assert (second.runs, second.events_read) == (("r2",), 2)  # r1 is not read again
    assert second.links_new == 1
    assert second.merges == 1
    view = find_profile(project.warehouse, "a2")
    assert view.profile_id == before
    assert view.identifiers["anonymous_id"] == ("a1", "a2")
    assert view.event_count == 3
    # decisions of the first run stay as they were made
    [old] = links(project, rule="anonymous_user", left_id="anonymous_id:a1")
    assert old["decided_at"] == T0 + dt.timedelta(days=30)
    runs = sorted((r["ingest_run"], r["events"]) for r in table(project, "identity_runs"))
    assert runs == [("r1", 1), ("r2", 2)]

    # nothing new: nothing read, every table identical
    state = snapshot(project)
    clock.now += dt.timedelta(days=1)
    third = stitch(project)
    assert (third.runs, third.events_read, third.links_new, third.merges) == ((), 0, 0, 0)
    assert snapshot(project) == state


def test_a_failed_run_leaves_profiles_as_they_were_and_resumes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(project, "r1", [ev("identify", 0, anon="a1", user="u1")])
    stitch(project)
    views = {name: table(project, name) for name in ("profiles", "accounts", "identity_runs")}
    load(project, "r2", [ev("identify", 5, anon="a2", user="u1")])

    def fail(*_args: object) -> None:
        raise RuntimeError("disk full")

    # the last step fails: the profiles readers see and the run list stay as they were
    monkeypatch.setattr("tenure.identity._stitch.build_views", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        stitch(project)
    assert {name: table(project, name) for name in views} == views

    monkeypatch.undo()
    report = stitch(project)
    assert report.runs == ("r2",)
    assert profile_of(project, "anonymous_id:a2") == profile_of(project, "user_id:u1")
    assert find_profile(project.warehouse, "a2").identifiers["anonymous_id"] == ("a1", "a2")
    assert table(project, "identity_days") == []


def test_batch_order_does_not_change_the_partition(tmp_path: Path) -> None:
    a = [
        ev("page", 0, anon="d1"),
        ev("identify", 1, anon="d1", email="eve@acme.com"),
        ev("identify", 2, anon="d3", user="u9"),
    ]
    b = [
        ev("identify", 3, anon="d2", email="eve@acme.com"),
        ev("identify", 4, anon="d2", user="u1"),
        ev("page", 5, anon="d4"),
    ]
    partitions = []
    for name, batches in (("ab", (a, b)), ("ba", (b, a))):
        with init_project(tmp_path / name, clock=Clock(T0)) as project:
            for n, batch in enumerate(batches):
                load(project, f"{name}{n}", batch)
                stitch(project)
            by_profile: dict[str, set[str]] = {}
            for row in table(project, "identity_nodes"):
                by_profile.setdefault(row["profile_id"], set()).add(row["identifier"])
            partitions.append({frozenset(v) for v in by_profile.values()})
    assert partitions[0] == partitions[1]
    assert (
        frozenset({"anonymous_id:d1", "anonymous_id:d2", "email:eve@acme.com", "user_id:u1"})
        in partitions[0]
    )


def _backfill() -> list[dict[str, Any]]:
    """Three weeks of events whose decisions depend on their order (a limit refusal)."""
    day = 24 * 60
    return [
        ev("page", 0, anon="d1"),
        ev("identify", 1, anon="d1", email="eve@acme.com", traits={"plan": "free"}),
        ev("identify", day + 2, anon="d1", user="u1"),
        ev("identify", 3 * day, anon="d2", user="u2", group="g1"),
        # u2's device d2 then shows eve's email: refused later, user_id limit 1
        ev("identify", 8 * day, anon="d2", email="eve@acme.com"),
        ev("group", 9 * day, user="u1", group="g1", traits={"name": "Acme"}),
        ev("identify", 15 * day, anon="d3", user="u1", traits={"plan": "pro"}),
        ev("track", 20 * day, user="u2", event="Ticket Created", properties={"ticket_id": "t1"}),
    ]


def test_a_backfill_stitched_in_day_chunks_equals_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = []
    for name, most in (("one", "1000000"), ("chunks", "2")):
        monkeypatch.setenv("TENURE_IDENTITY_BATCH_EVENTS", most)
        with init_project(tmp_path / name, clock=Clock(T0)) as project:
            load(project, "r1", _backfill())
            report = stitch(project)
            assert report.events_read == 8
            states.append(snapshot(project))
    assert states[0] == states[1]
    assert any("limit_user_id" in row for row in map(str, states[0]["identity_links"]))


def test_a_crash_between_chunks_resumes_after_the_last_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with init_project(tmp_path / "whole", clock=Clock(T0)) as project:
        load(project, "r1", _backfill())
        stitch(project)
        expected = snapshot(project)

    monkeypatch.setenv("TENURE_IDENTITY_BATCH_EVENTS", "2")
    import tenure.identity._stitch as stitch_module

    real = stitch_module._stitch_batch
    calls = []

    def crash_on_third(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    with init_project(tmp_path / "crashed", clock=Clock(T0)) as project:
        load(project, "r1", _backfill())
        monkeypatch.setattr(stitch_module, "_stitch_batch", crash_on_third)
        with pytest.raises(RuntimeError, match="killed"):
            stitch(project)
        # two chunks (days 0; 1 and 3) committed, the run is not done yet
        assert len(table(project, "identity_days")) == 3
        assert table(project, "identity_runs") == []
        monkeypatch.setattr(stitch_module, "_stitch_batch", real)
        stitch(project)
        assert snapshot(project) == expected


# ------------------------------------------------------------------------ split
def _wrong_merge(project: Project) -> str:
    """Bob fills a form on a kiosk u1 later signs in on: the kiosk link is wrong."""
    load(
        project,
        "r1",
        [
            ev("identify", 0, anon="d1", user="u1", email="ann@acme.com"),
            ev("track", 5, anon="kiosk", email="bob@acme.com", event="Form Submitted"),
            ev("identify", 10, anon="kiosk", user="u1"),
        ],
    )
    stitch(project)
    [wrong] = links(project, left_id="anonymous_id:kiosk", rule="anonymous_user")
    return str(wrong["link_id"])


def test_split_link_separates_the_profiles_and_is_audited(project: Project, clock: Clock) -> None:
    wrong = _wrong_merge(project)
    # on equal first_seen a user id anchors a profile before an email, an email before a device
    ann = owner_id_for("p_", "user_id:u1")
    bob = owner_id_for("p_", "email:bob@acme.com")
    assert profile_of(project, "email:bob@acme.com") == ann
    [merge] = [r for r in table(project, "identity_merges") if r["link_id"] == wrong]
    assert (merge["kept_profile_id"], merge["absorbed_profile_id"]) == (ann, bob)
    assert merge["message_id"] == "r1-0002"

    clock.now += dt.timedelta(hours=1)
    result = split_link(project, wrong, actor="ops@tenure", reason="shared kiosk")

    assert (result.profile_before, result.profiles_after) == (ann, (ann, bob))
    assert profile_of(project, "email:bob@acme.com") == bob
    assert profile_of(project, "anonymous_id:kiosk") == bob
    assert profile_of(project, "user_id:u1") == ann
    # the kiosk sign-in carries u1's user id, so it stays on Ann's profile
    assert find_profile(project.warehouse, "bob@acme.com").event_count == 1
    ann_view = find_profile(project.warehouse, "u1")
    assert ann_view.identifiers["anonymous_id"] == ("d1",)
    assert ann_view.event_count == 2
    [link] = links(project, link_id=wrong)
    assert (link["status"], link["reason"], link["decided_at"]) == (
        "split",
        "shared kiosk",
        clock.now,
    )
    actions = sorted(
        (r["action"], r["kept_profile_id"], r["absorbed_profile_id"])
        for r in table(project, "identity_merges")
        if r["link_id"] == wrong
    )
    assert actions == [("merge", ann, bob), ("split", ann, bob)]
    with project.store.connect() as connection:
        [entry] = read_audit(connection, action="identity.split")
        assert verify_audit_chain(connection) is None
    assert (entry.actor, entry.target, entry.at) == ("ops@tenure", wrong, clock.now)
    assert entry.detail["profile_before"] == ann
    assert entry.detail["profiles_after"] == [ann, bob]
    assert entry.detail["reason"] == "shared kiosk"
    # the split-off id is live again, not resolved through the old merge
    assert find_profile(project.warehouse, bob).identifiers["email"] == ("bob@acme.com",)


def test_split_link_stays_split_until_a_different_link(project: Project, clock: Clock) -> None:
    wrong = _wrong_merge(project)
    split_link(project, wrong, actor="ops", reason="shared kiosk")
    untouched = snapshot(project)["identity_merges"]

    load(project, "r2", [ev("identify", 100, anon="kiosk", user="u1")])  # the same link again
    report = stitch(project)
    assert (report.links_new, report.merges) == (0, 0)
    assert profile_of(project, "anonymous_id:kiosk") != profile_of(project, "user_id:u1")
    [link] = links(project, link_id=wrong)
    assert (link["status"], link["events"]) == ("split", 2)
    assert snapshot(project)["identity_merges"] == untouched

    load(project, "r3", [ev("alias", 200, previous="kiosk", user="u1")])  # a different link
    report = stitch(project)
    assert report.merges == 1
    assert profile_of(project, "anonymous_id:kiosk") == profile_of(project, "user_id:u1")


def test_split_link_refuses_what_it_cannot_split(project: Project) -> None:
    load(
        project,
        "r1",
        [ev("identify", 0, anon="d", user="u1"), ev("identify", 1, anon="d", user="u2")],
    )
    stitch(project)
    [refused] = links(project, status="refused")
    with pytest.raises(IdentityError, match="it was refused, so it never merged anything"):
        split_link(project, refused["link_id"], actor="ops", reason="oops")
    with pytest.raises(NotFoundError, match="no identity link 'l_nope'") as caught:
        split_link(project, "l_nope", actor="ops", reason="oops")
    assert caught.value.hint is not None


# ----------------------------------------------------------------------- traits
def test_trait_precedence_source_beats_time(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev(
                "identify",
                0,
                user="u1",
                traits={"plan": "enterprise", "title": "CTO"},
                source="hubspot",
            ),
            ev("identify", 30, user="u1", traits={"title": "VP Eng"}, source="hubspot"),
            ev("identify", 60, user="u1", traits={"plan": "free", "title": "Dev", "seats": 3}),
            ev("identify", 90, user="u1", traits={"seats": 4, "nick": None}),
        ],
    )
    stitch(project)
    view = find_profile(project.warehouse, "u1")
    # hubspot beats segment even when older; within a source the latest wins; nulls ignored
    assert view.traits == {"plan": "enterprise", "seats": 4, "title": "VP Eng"}


# ---------------------------------------------------------------------- lookups
def test_find_profile_by_every_kind_of_identifier(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev("page", 0, anon="anon-7"),
            ev(
                "identify",
                1,
                anon="anon-7",
                user="u7",
                email="gil@acme.com",
                external=[("stripe_customer_id", "cus_7", "users")],
            ),
            ev("track", 2, user="u7", event="Invoice Paid", properties={"amount": 12.5}),
        ],
    )
    stitch(project)
    wanted = owner_id_for("p_", "anonymous_id:anon-7")
    absorbed = owner_id_for("p_", "user_id:u7")
    for key in (
        "u7",
        "user_id:u7",
        "GIL@acme.com",
        "email:gil@acme.com",
        "anon-7",
        "stripe_customer_id:cus_7",
        "external_id:stripe_customer_id:cus_7",
        wanted,
        absorbed,
    ):
        assert find_profile(project.warehouse, key).profile_id == wanted, key

    view = find_profile(project.warehouse, absorbed, recent=2)
    assert absorbed in view.absorbed_ids
    assert view.identifiers["external_id"] == ("stripe_customer_id:cus_7",)
    assert [(e.type, e.event, e.summary) for e in view.recent_events] == [
        ("track", "Invoice Paid", "amount=12.5"),
        ("identify", None, ""),
    ]
    with pytest.raises(NotFoundError, match="no profile has the identifier 'nobody'") as caught:
        find_profile(project.warehouse, "nobody")
    assert "type:value" in (caught.value.hint or "")


def test_graph_edges_for_tickets_opportunities_and_subscriptions(project: Project) -> None:
    load(
        project,
        "r1",
        [
            ev(
                "group",
                0,
                user="u1",
                group="acme",
                traits={"name": "Acme"},
                external=[("stripe_customer_id", "cus_9", "accounts")],
            ),
            ev(
                "track",
                10,
                user="u1",
                group="acme",
                event="Ticket Created",
                properties={"ticket_id": "T-1", "subject": "Login fails"},
                source="zendesk",
            ),
            ev(
                "track",
                20,
                user="u1",
                group="acme",
                event="Ticket Solved",
                properties={"ticket_id": "T-1"},
                source="zendesk",
            ),
            ev(
                "track",
                30,
                email="u1@acme.com",
                event="Opportunity Created",
                properties={"opportunity_id": 7001, "amount": 5000},
                source="hubspot",
            ),
            ev("identify", 31, user="u1", email="u1@acme.com"),
            ev(
                "track",
                40,
                event="Subscription Started",
                source="stripe",
                properties={"plan": "pro"},
                external=[("stripe_customer_id", "cus_9", "accounts")],
            ),
        ],
    )
    stitch(project)
    person = profile_of(project, "user_id:u1")
    account = owner_id_for("a_", "group_id:acme")
    edges = {
        (r["src_type"], r["src_id"], r["dst_type"], r["dst_id"]): (
            r["first_seen"],
            r["last_seen"],
            r["event_count"],
        )
        for r in table(project, "graph_edges")
    }
    minutes = [T0 + dt.timedelta(minutes=m) for m in (0, 10, 20, 30, 40)]
    assert edges == {
        ("account", account, "person", person): (minutes[0], minutes[2], 3),
        ("person", person, "ticket", "T-1"): (minutes[1], minutes[2], 2),
        ("account", account, "ticket", "T-1"): (minutes[1], minutes[2], 2),
        ("person", person, "opportunity", "7001"): (minutes[3], minutes[3], 1),
        ("account", account, "subscription", "pro"): (minutes[4], minutes[4], 1),
    }
    view = find_profile(project.warehouse, "u1")
    assert [(n.kind, n.id) for n in view.neighbours] == [("opportunity", "7001"), ("ticket", "T-1")]
    assert [n.id for n in view.neighbours_of("ticket")] == ["T-1"]


# ------------------------------------------------------------------- invariants
_POOL = [f"user_id:u{i}" for i in range(4)] + [f"anonymous_id:d{i}" for i in range(6)]
_POOL += [f"email:p{i}@acme.com" for i in range(4)]


def _run_batches(
    batches: list[list[tuple[str, str]]], limits: dict[str, int]
) -> list[dict[str, frozenset[str]]]:
    """Feed *batches* through decide_batch one after another, carrying the state over."""
    first_seen = {identifier: T0 + dt.timedelta(minutes=n) for n, identifier in enumerate(_POOL)}
    owners = {identifier: owner_id_for("p_", identifier) for identifier in _POOL}
    seen: set[tuple[str, str]] = set()
    states = []
    for number, batch in enumerate(batches):
        candidates = []
        for left, right in batch:
            if (left, right) in seen or left == right:
                continue
            seen.add((left, right))
            candidates.append(
                LinkCandidate(
                    f"l{number}-{left}-{right}",
                    LinkRule.ANONYMOUS_USER,
                    left,
                    right,
                    T0 + dt.timedelta(days=number),
                )
            )
        nodes = [NodeState(i, owners[i], first_seen[i]) for i in _POOL]
        outcome = decide_batch(nodes, candidates, limits=limits, generic_local_parts=("info",))
        owners = outcome.owners
        groups: dict[str, set[str]] = {}
        for identifier, owner in owners.items():
            groups.setdefault(owner, set()).add(identifier)
        states.append({owner: frozenset(members) for owner, members in groups.items()})
    return states


_links = st.lists(st.tuples(st.sampled_from(_POOL), st.sampled_from(_POOL)), max_size=25)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(batches=st.lists(_links, min_size=1, max_size=4), data=st.data())
def test_partition_does_not_depend_on_batch_order_below_the_limits(
    batches: list[list[tuple[str, str]]], data: st.DataObject
) -> None:
    unlimited = {"user_id": 100, "email": 100, "anonymous_id": 100}
    order = data.draw(st.permutations(range(len(batches))))
    forward = _run_batches(batches, unlimited)[-1]
    shuffled = _run_batches([batches[i] for i in order], unlimited)[-1]
    expected = components(_POOL, [pair for batch in batches for pair in batch])
    assert set(forward.values()) == set(shuffled.values()) == set(expected)
    # the id of a profile is always that of its earliest identifier
    for owner, members in forward.items():
        assert owner == owner_id_for("p_", min(members, key=_POOL.index))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(batches=st.lists(_links, min_size=1, max_size=4))
def test_no_profile_ever_exceeds_the_limits(batches: list[list[tuple[str, str]]]) -> None:
    limits = {k.value: v for k, v in IdentitySettings().limits.items()}
    for state in _run_batches(batches, limits):
        for members in state.values():
            kinds = [m.partition(":")[0] for m in members]
            assert kinds.count("user_id") <= limits["user_id"]
            assert kinds.count("email") <= limits["email"]


# ---------------------------------------------------------------- public surface
def test_exported_names() -> None:
    assert sorted(identity.__all__) == sorted(
        [
            "SPLIT_ACTION",
            "AccountMembership",
            "AccountSummary",
            "Entity",
            "GraphNeighbour",
            "IdentityLink",
            "LinkRule",
            "LinkStatus",
            "ProfileView",
            "RecentEvent",
            "SplitResult",
            "StitchReport",
            "find_profile",
            "resolve_profile_id",
            "split_link",
            "split_link_in",
            "stitch",
            "stitch_warehouse",
            "table_schemas",
        ]
    )
    for name in identity.__all__:
        assert name.isupper() or getattr(identity, name).__module__.startswith("tenure.identity")
    assert ProfileView.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert LinkStatus("split") is LinkStatus.SPLIT


def test_stitch_on_an_empty_lake_creates_empty_tables(project: Project) -> None:
    report = stitch(project)
    assert report == identity.StitchReport(
        runs=(),
        events_read=0,
        links_new=0,
        merges=0,
        account_merges=0,
        refused={},
        profiles=0,
        accounts=0,
    )
    for name, schema in identity.table_schemas().items():
        assert project.warehouse.backend.to_pyarrow(project.warehouse.table(name)).num_rows == 0
        assert project.warehouse.table(name).columns == tuple(schema.names), name
    with pytest.raises(NotFoundError, match="no profile has the identifier 'u1'"):
        find_profile(project.warehouse, "u1")
