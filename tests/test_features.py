"""Point-in-time features: exact values on a hand-made account, leakage, configuration."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import tenure.features as features
from tenure.config import FeatureSettings, load_config
from tenure.errors import ConfigError
from tenure.features import (
    BUILTIN_FEATURES,
    FeatureDefinition,
    FeatureEntity,
    build_features,
    definition_hash,
    feature_frame,
    feature_set,
)
from tenure.identity import stitch
from tenure.project import Project, init_project
from tests._lake import load_events

CUTOFF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
#: The onboarding milestones these tests configure (``lifecycle.onboarding_milestones``).
MILESTONES = ["Integration Connected", "Dashboard Created", "Report Scheduled"]


def at(days_before: float, cutoff: dt.datetime = CUTOFF) -> dt.datetime:
    return cutoff - dt.timedelta(days=days_before)


def track(
    event: str,
    when: dt.datetime,
    *,
    user: str | None = None,
    group: str | None = None,
    email: str | None = None,
    source: str = "segment",
    **properties: Any,
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "user_id": user,
        "anonymous_id": None,
        "group_id": group,
        "previous_id": None,
        "email": email,
        "timestamp": when,
        "traits": None,
        "properties": json.dumps(properties),
        "context": None,
        "source": source,
    }


def identify(user: str, email: str, group: str, when: dt.datetime) -> dict[str, Any]:
    return {
        "type": "identify",
        "event": None,
        "user_id": user,
        "anonymous_id": None,
        "group_id": group,
        "previous_id": None,
        "email": email,
        "timestamp": when,
        "traits": json.dumps({"email": email}),
        "properties": None,
        "context": None,
        "source": "segment",
    }


def account_history() -> list[dict[str, Any]]:
    """Account acct_1 (users u1, u2) whose every built-in feature is known by hand."""
    g = "acct_1"
    events = [
        identify("u1", "ann@acme.example", g, at(400)),
        identify("u2", "bob@acme.example", g, at(399)),
        # u1 created the account, and did two of the three milestones (one twice)
        track("Account Created", at(400), user="u1", group=g),
        track("Integration Connected", at(390), user="u1", group=g),
        track("Dashboard Created", at(380), user="u2", group=g),
        track("Dashboard Created", at(300), user="u1", group=g),
        # a yearly subscription started 400 days before the cutoff
        track(
            "Subscription Started", at(400), user="u1", group=g, mrr=100, seats=5, interval="year"
        ),
        # MRR 100 → 150 (120 days ago) → 180 (20 days ago): change over 90 days is +30
        track("Subscription Changed", at(120), user="u1", group=g, mrr=150, seats=6),
        track("Subscription Changed", at(20), user="u1", group=g, mrr=180, seats=8),
        # sign-ins: 4 in the last 30 days (two people), 8 in the 30 before
        *[track("Signed In", at(d), user="u1", group=g) for d in (1.5, 3, 10)],
        track("Signed In", at(25), user="u2", group=g),
        *[track("Signed In", at(31 + 3 * k), user="u2", group=g) for k in range(8)],
        # three distinct features in 90 days, one of them older than 90 days
        track("Feature Used", at(5), user="u1", group=g, feature="reports"),
        track("Feature Used", at(6), user="u1", group=g, feature="reports"),
        track("Feature Used", at(40), user="u2", group=g, feature="api"),
        track("Feature Used", at(80), user="u2", group=g, feature="alerts"),
        track("Feature Used", at(95), user="u2", group=g, feature="exports"),
        # tickets by email only (a support tool): t1 open urgent, t2 solved, t3 open low
        track(
            "Ticket Created",
            at(12),
            email="bob@acme.example",
            source="zendesk",
            ticket_id="t1",
            priority="urgent",
        ),
        track(
            "Ticket Created",
            at(14),
            email="bob@acme.example",
            source="zendesk",
            ticket_id="t2",
            priority="urgent",
        ),
        track("Ticket Solved", at(13), email="bob@acme.example", source="zendesk", ticket_id="t2"),
        track(
            "Ticket Created",
            at(50),
            email="ann@acme.example",
            source="zendesk",
            ticket_id="t3",
            priority="low",
        ),
        # NPS: the latest is 4
        track("NPS Submitted", at(200), user="u1", group=g, score=9),
        track("NPS Submitted", at(60), user="u2", group=g, score=4),
        # a failed payment reported by billing with the contact's email only
        track("Payment Failed", at(45), email="ann@acme.example", source="stripe", amount=150.0),
        track("Payment Failed", at(100), email="ann@acme.example", source="stripe", amount=150.0),
        track("Invite Sent", at(2), user="u1", group=g, invitee_email="c@acme.example"),
    ]
    return events


@pytest.fixture
def acme(sqlite_project: Project) -> Project:
    load_events(sqlite_project, "run-1", account_history())
    stitch(sqlite_project)
    return sqlite_project


def account_id(project: Project) -> str:
    backend = project.warehouse.backend
    rows = backend.to_pyarrow(backend.table("accounts")).to_pylist()
    (row,) = [r for r in rows if "group_id:acct_1" in [f"group_id:{g}" for g in r["group_ids"]]]
    return str(row["account_id"])


def frame_at(project: Project, cutoffs: list[dt.datetime]) -> pd.DataFrame:
    account = account_id(project)
    pairs = pd.DataFrame({"entity_id": [account] * len(cutoffs), "cutoff": cutoffs})
    return feature_frame(project.warehouse, pairs, feature_set(milestones=MILESTONES))


def test_every_builtin_feature_has_its_hand_computed_value(acme: Project) -> None:
    row = frame_at(acme, [CUTOFF]).iloc[0].to_dict()
    expected = {
        "logins_30d": 4,
        "logins_change_30d": (4 - 8) * 100 / 8,
        "active_users_30d": 2,  # u1 signs in, u2 signs in 25 days ago
        "users_180d": 2,
        "active_users_ratio": 1.0,
        "feature_breadth_90d": 3,
        "days_since_last_login": 1.5,
        "invites_30d": 1,
        "users_removed_90d": 0,
        "champion_left": 0,
        "milestones_done": 2,
        "tickets_30d": 2,
        "tickets_open": 2,  # t1 and t3
        "urgent_tickets_open": 1,  # t1
        "nps_last": 4,
        "payment_failures_90d": 1,
        "mrr": 180,
        "mrr_change_90d": 30,
        "seats": 8,
        "tenure_days": 400,
        "days_to_renewal": 365.25 - (400 - 365.25),
    }
    for name, value in expected.items():
        assert row[name] == pytest.approx(value), name
    # no ticket text was scored, no CSAT given: missing, not zero
    assert pd.isna(row["ticket_sentiment_30d"])
    assert pd.isna(row["csat_mean_90d"])
    # weekly activity over 8 weeks falls (more usage 5–8 weeks ago than lately)
    assert row["usage_trend"] < 0


def test_features_are_zero_or_missing_for_an_account_without_events(acme: Project) -> None:
    row = frame_at(acme, [at(500)]).iloc[0].to_dict()
    assert row["logins_30d"] == 0
    assert row["days_since_last_login"] == 365  # the window's length: never
    assert pd.isna(row["mrr"])
    assert pd.isna(row["logins_change_30d"])


def _later_events(start: dt.datetime, seed: int) -> list[dict[str, Any]]:
    """Events of every kind the features read, at *start* exactly or after it."""
    rng = random.Random(seed)
    kinds = sorted(
        {e for d in BUILTIN_FEATURES for e in [*d.events, *d.close_events]} | set(MILESTONES)
    )
    later = []
    for n in range(150):
        when = start + dt.timedelta(days=rng.choice([0.0, rng.uniform(0, 200)]))
        later.append(
            track(
                rng.choice(kinds),
                when,
                user=rng.choice(["u1", "u2", "u3"]),
                group="acct_1",
                email=rng.choice([None, "ann@acme.example"]),
                ticket_id=rng.choice(["t1", "t3", f"t{n}"]),
                priority="urgent",
                feature=f"f{n % 7}",
                mrr=rng.uniform(0, 1000),
                seats=rng.randint(1, 50),
                score=rng.randint(0, 10),
                interval="month",
            )
        )
    return later


def test_an_event_at_or_after_the_cutoff_changes_no_feature(acme: Project) -> None:
    cutoffs = [at(60), at(10), CUTOFF]
    before = frame_at(acme, cutoffs).to_dict("records")
    later_cutoff = CUTOFF + dt.timedelta(days=100)
    untouched = frame_at(acme, [later_cutoff]).iloc[0]
    # latest cutoff first: each round adds events at or after one cutoff and checks
    # that cutoff and every earlier one
    for round_, start in enumerate(reversed(cutoffs)):
        load_events(acme, f"later-{round_}", _later_events(start, seed=round_))
        stitch(acme)
        after = frame_at(acme, cutoffs).to_dict("records")
        for cutoff, old, new in zip(cutoffs, before, after, strict=True):
            if cutoff <= start:
                assert new == pytest.approx(old, nan_ok=True), f"{cutoff} changed by {start}"
    # the same events do change a later cutoff's features: the test can fail
    touched = frame_at(acme, [later_cutoff]).iloc[0]
    assert untouched["logins_30d"] == 0
    assert touched["logins_30d"] > 0


def test_champion_left_is_the_accounts_creator_removed_within_90_days(
    sqlite_project: Project,
) -> None:
    """acct_2: created by u5; u6 (not the creator) removed 10 days before the cutoff, u5
    40 days before. acct_3: its creator removed before creating it (a re-created account)."""
    load_events(
        sqlite_project,
        "r",
        [
            identify("u5", "eve@two.example", "acct_2", at(300)),
            identify("u6", "fay@two.example", "acct_2", at(299)),
            track("Account Created", at(300), user="u5", group="acct_2"),
            track("Account Removed User", at(40), user="u5", group="acct_2"),
            track("Account Removed User", at(10), user="u6", group="acct_2"),
            identify("u7", "gus@three.example", "acct_3", at(300)),
            track("Account Removed User", at(200), user="u7", group="acct_3"),
            track("Account Created", at(100), user="u7", group="acct_3"),
        ],
    )
    stitch(sqlite_project)
    backend = sqlite_project.warehouse.backend
    rows = backend.to_pyarrow(backend.table("accounts")).to_pylist()
    two = next(r["account_id"] for r in rows if "acct_2" in r["group_ids"])
    three = next(r["account_id"] for r in rows if "acct_3" in r["group_ids"])
    cutoffs = [at(41), at(39), CUTOFF, CUTOFF + dt.timedelta(days=49), at(-51)]
    pairs = pd.DataFrame(
        {"entity_id": [two] * len(cutoffs) + [three], "cutoff": [*cutoffs, CUTOFF]}
    )
    frame = feature_frame(sqlite_project.warehouse, pairs, feature_set())
    by_pair = frame.set_index(["entity_id", "cutoff"])
    left = [by_pair.loc[(two, c), "champion_left"] for c in cutoffs]
    # before the creator left, just after, at the cutoff, 89 and 91 days after it left
    assert left == [0, 1, 1, 1, 0]
    assert by_pair.loc[(three, CUTOFF), "champion_left"] == 0  # removed before creating
    removed = [by_pair.loc[(two, c), "users_removed_90d"] for c in cutoffs[:3]]
    assert removed == [0, 1, 2]
    reason = feature_set().get("champion_left").render_reason(1)
    assert reason == "the account's creator, its first champion, left in the last 90 days"


def test_milestones_done_is_a_builtin_only_while_milestones_are_configured() -> None:
    assert "milestones_done" not in [d.name for d in feature_set().definitions]
    chosen = feature_set(milestones=MILESTONES)
    found = chosen.get("milestones_done")
    assert found.events == MILESTONES
    assert found.render_reason(2) == "2 of 3 onboarding milestones done"
    settings = FeatureSettings(disable=["milestones_done"])
    assert "milestones_done" not in [
        d.name for d in feature_set(settings, milestones=MILESTONES).definitions
    ]


def test_a_project_defines_its_own_feature_in_its_file(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p")
    config_path = project.config_path
    data = yaml.safe_load(config_path.read_text())
    data["features"]["disable"] = ["invites_30d"]
    data["features"]["define"] = [
        {
            "name": "urgent_tickets_90d",
            "aggregation": "count",
            "events": ["Ticket Created"],
            "where": {"priority": "urgent"},
            "window": "90d",
            "description": "urgent tickets in 90 days",
        },
        {
            "name": "logins_per_user",
            "aggregation": "ratio",
            "numerator": "logins_30d",
            "denominator": "active_users_30d",
        },
    ]
    config_path.write_text(yaml.safe_dump(data))
    project.close()
    with Project.open(tmp_path / "p") as reopened:
        load_events(reopened, "run-1", account_history())
        stitch(reopened)
        chosen = feature_set(reopened.config.features)
        assert "invites_30d" not in chosen.names(FeatureEntity.ACCOUNT)
        pairs = pd.DataFrame({"entity_id": [account_id(reopened)], "cutoff": [CUTOFF]})
        row = feature_frame(reopened.warehouse, pairs, chosen).iloc[0]
    assert row["urgent_tickets_90d"] == 2
    assert row["logins_per_user"] == pytest.approx(4 / 2)


def test_a_bad_feature_in_the_project_file_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "tenure.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "features": {
                    "define": [{"name": "x_30d", "aggregation": "sum", "events": ["Paid"]}]
                },
            }
        )
    )
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path)
    text = str(raised.value)
    assert "features.define.0" in text
    assert "aggregation sum needs field" in text


def test_feature_set_reports_every_problem_at_once() -> None:
    settings = FeatureSettings(
        disable=["no_such_feature"],
        define=[
            FeatureDefinition(name="logins_30d", aggregation="count", events=["Signed In"]),
            FeatureDefinition(
                name="r", aggregation="ratio", numerator="a", denominator="logins_30d"
            ),
        ],
    )
    with pytest.raises(ConfigError) as raised:
        feature_set(settings)
    messages = [str(p) for p in raised.value.problems]
    assert messages == [
        "features.disable[0]: a built-in feature name (got 'no_such_feature')",
        "features.define[0].name: a name no other feature has (disable the built-in to "
        "replace it) (got 'logins_30d')",
        "feature r.numerator: the name of a non-ratio feature of the same entity (got 'a')",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window", "30", "a window is a whole number of days like '30d'"),
        ("name", "Logins", "lower_snake_case"),
        ("reason", "down {value.__class__}", "reason placeholders are"),
        ("reason", "down {pct:q}", "does not format a number"),
    ],
)
def test_definition_checks(field: str, value: str, message: str) -> None:
    fields: dict[str, Any] = {"name": "n", "aggregation": "count", "events": ["E"], field: value}
    with pytest.raises(ValueError, match=message):
        FeatureDefinition(**fields)


def test_hash_follows_what_is_computed_not_its_wording() -> None:
    base = FeatureDefinition(name="n", aggregation="count", events=["E"], window="30d")
    reworded = base.model_copy(update={"description": "other words", "reason": "{value}"})
    widened = base.model_copy(update={"window": "60d"})
    assert definition_hash(base) == definition_hash(reworded)
    assert definition_hash(base) != definition_hash(widened)


def test_reason_text_renders_the_value() -> None:
    logins = feature_set().get("logins_change_30d")
    assert logins.render_reason(-62.4) == "logins down 62 % over 30 days"
    assert logins.render_reason(40) == "logins up 40 % over 30 days"
    tickets = feature_set().get("urgent_tickets_open")
    assert tickets.render_reason(2) == "2 unresolved urgent tickets"
    assert tickets.render_reason(1) == "1 unresolved urgent ticket"
    failures = feature_set().get("payment_failures_90d")
    assert failures.render_reason(1.0) == "1 failed payment in 90 days"
    assert failures.render_reason(0) == "0 failed payments in 90 days"


def test_build_materializes_a_snapshot_with_hashes_and_is_idempotent(acme: Project) -> None:
    chosen = feature_set()
    first = build_features(acme.warehouse, chosen, as_of=CUTOFF)
    data_one = (first.snapshot / "features.parquet").read_bytes()
    meta = json.loads((first.snapshot / "definitions.json").read_text())
    assert first.snapshot.name == "as_of=2024-06-01"
    assert {f["name"]: f["hash"] for f in meta["features"]} == chosen.hashes(FeatureEntity.ACCOUNT)
    assert first.rows == 1
    table = acme.warehouse.table(first.table).to_pyarrow().to_pylist()
    assert table[0]["logins_30d"] == 4
    assert table[0]["as_of"] == CUTOFF
    again = build_features(acme.warehouse, chosen, as_of=CUTOFF)
    assert (again.snapshot / "features.parquet").read_bytes() == data_one


def test_public_names() -> None:
    assert features.__all__ == [
        "BUILTIN_FEATURES",
        "SENTIMENT_TABLE",
        "Aggregation",
        "FeatureBuild",
        "FeatureDefinition",
        "FeatureEntity",
        "FeatureSet",
        "attributed_events",
        "build_features",
        "compile_features",
        "definition_hash",
        "facts",
        "feature_frame",
        "feature_set",
        "features_table",
        "milestones_feature",
        "parse_window",
        "project_features",
    ]
