"""Acting through the API: next-best action, decision log, review, policies, models, audit.

Each test runs on SQLite and PostgreSQL against a real uvicorn server, on the
decide tests' world (policy and template files, published customer states and
the fixed clock of noon UTC on 1 June 2024).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tenure.api._manage import RECHECK_SECONDS
from tenure.decide import decide
from tenure.govern.consent import ConsentReason, record_consent
from tenure.govern.keys import Role
from tenure.govern.pii import Pseudonymizer
from tenure.govern.secrets import project_secret
from tenure.models.registry import registry_for
from tenure.project import Project
from tenure.store._tables import decisions, outbox, policy_versions, review_queue
from tests.decide._world import (
    NOON,
    POLICY,
    TEMPLATES,
    customer,
    publish,
    queued,
    write,
    write_policy_files,
)

NBA = "/v1/customers/{}/next-best-action"


@pytest.fixture
def world(api_project: Project) -> Project:
    write_policy_files(api_project)
    return api_project


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _actor(key: str) -> str:
    return "key:" + key.split("_")[1]


def _count(project: Project, table: object) -> int:
    with project.store.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _withdraw_email(project: Project, n: int) -> None:
    with project.store.begin() as connection:
        record_consent(
            connection, f"email:owner{n}@acct{n}.example", "email", granted=False,
            reason=ConsentReason.UNSUBSCRIBE, source="test", at=NOON,
        )  # fmt: skip


def _masker(project: Project) -> Pseudonymizer:
    secret = project_secret(project.root, "pseudonym", project.config.serve.pseudonym_secret_env)
    return Pseudonymizer(secret)


# -------------------------------------------------------------- next-best action
def test_the_next_best_action_is_what_a_batch_cycle_would_decide(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(
        world,
        [
            customer(1, churn=0.6, stage="renewal"),  # renewal call beats tips
            customer(2, logins=2),  # tips email
            customer(3),  # nothing matches
            customer(4, logins=2),  # email withdrawn: the in-app tip instead
            customer(5, logins=2, urgent_days=2),  # an urgent ticket blocks both
        ],
    )
    _withdraw_email(world, 4)
    batch = {d.account_id: d for d in decide(world, dry_run=True).decisions}
    operator = _auth(keys[Role.OPERATOR])
    for n in (1, 2, 4, 5):
        answer = http.post(NBA.format(f"a_{n:04d}"), params={"dry_run": True}, headers=operator)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = batch[f"a_{n:04d}"]
        assert body["status"] == expected.status
        # identifiers are pseudonyms in every role's answer (a product's hot path, no PII)
        masker = _masker(world)
        assert body["explanation"] == masker.text(expected.explanation)
        assert body["guardrails"] == masker.document([c.as_dict() for c in expected.checks])
        assert "@" not in orjson.dumps(body).decode()
        chosen = expected.chosen
        if chosen is None:
            assert body["action"] is None
        else:
            rule = chosen.rule
            assert (body["action"]["policy"], body["action"]["rule"]) == (rule.policy, rule.rule.id)
            assert body["action"]["channel"] == rule.rule.action.channel.value
            assert body["action"]["template"] == rule.rule.action.template
    nothing = http.post(NBA.format("a_0003"), params={"dry_run": True}, headers=operator).json()
    assert nothing["status"] == "none"
    assert nothing["decision_id"] is None
    assert nothing["why"] == "no rule's condition holds for this account"

    in_app = http.post(NBA.format("a_0004"), headers=operator).json()
    assert in_app["action"]["message"] == {
        "title": "Tips for Account 4",
        "body": "You logged in 2 times this month.",
    }
    blocked_email = next(c for c in in_app["candidates"] if c["rule"] == "retention/tips-email")
    assert blocked_email["outcome"] == "blocked"
    assert blocked_email["guardrails"][0] == {
        "guardrail": "consent",
        "verdict": "block",
        "detail": _masker(world).text("email:owner4@acct4.example withdrew email"),
    }
    assert blocked_email["guardrails"][0]["detail"].endswith(" withdrew email")
    blocked = http.post(NBA.format("a_0005"), headers=operator).json()
    assert blocked["status"] == "blocked"
    assert blocked["action"] is None
    assert blocked["why"].endswith("nothing sent: every candidate was blocked.")
    assert {"guardrail": "urgent_ticket", "verdict": "block",
            "detail": "urgent ticket 2 days ago (< 7d)"} in blocked["guardrails"]  # fmt: skip


def test_an_answer_is_logged_queued_and_readable_and_a_replay_adds_nothing(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(2, logins=2)])
    operator = _auth(keys[Role.OPERATOR])
    first = http.post(NBA.format("a_0002"), headers=operator).json()
    assert (first["status"], first["logged"], first["policy_version"]) == ("queued", True, 1)
    assert first["action"]["template_version"] == 1
    sends = queued(world)
    assert [(s["decision_id"], s["channel"], s["status"]) for s in sends] == [
        (first["decision_id"], "email", "queued")
    ]
    # the same account at the same instant: the decision already made, nothing new
    again = http.post(NBA.format("a_0002"), headers=operator).json()
    assert again == first
    assert len(queued(world)) == 1

    listed = http.get("/v1/decisions", params={"account_id": "a_0002"}, headers=operator).json()
    assert [(d["id"], d["path"], d["rule_id"]) for d in listed["decisions"]] == [
        (first["decision_id"], "api", "tips-email")
    ]
    assert listed["next_before"] is None
    detail = http.get(f"/v1/decisions/{first['decision_id']}", headers=operator).json()
    assert _masker(world).text(detail["explanation"]) == first["explanation"]
    assert detail["explained"].startswith(f"Decision {first['decision_id']} at 2024-06-01 12:00")
    assert detail["deliveries"][0]["recipient"] == "owner2@acct2.example"
    # an analyst reads the same decision with the address pseudonymized
    analyst = http.get(
        f"/v1/decisions/{first['decision_id']}", headers=_auth(keys[Role.ANALYST])
    ).json()
    assert "owner2@acct2.example" not in orjson.dumps(analyst).decode()
    assert analyst["deliveries"][0]["recipient"].startswith("pii_")
    # the reads in clear (the list, the decision) are audited; the pseudonymized one is not
    reads = http.get(
        "/v1/audit", params={"action": "pii.read"}, headers=_auth(keys[Role.ADMIN])
    ).json()["entries"]
    assert [(e["actor"], e["target"]) for e in reads] == [
        (_actor(keys[Role.OPERATOR]), "account:a_0002")
    ] * 2
    missing = http.get("/v1/decisions/d_nothing", headers=operator)
    assert missing.status_code == 404
    assert http.post(NBA.format("a_9999"), headers=operator).status_code == 404
    assert http.post(NBA.format("a_0002"), headers=_auth(keys[Role.ANALYST])).status_code == 403


def test_concurrent_answers_are_logged_once_and_a_missing_account_fails_alone(
    world: Project, keys: dict[Role, str], base_url: str
) -> None:
    """Logged answers are committed in groups: sixteen requests at once for three accounts
    (four each, at one instant) and one unknown account log one decision per account,
    give every caller of an account the same answer, and the unknown one a 404 alone."""
    publish(world, [customer(2, logins=2), customer(3, logins=1), customer(5, logins=3)])
    operator = _auth(keys[Role.OPERATOR])
    accounts = ["a_0002", "a_0003", "a_0005", "a_9999"] * 4

    def ask(account: str) -> tuple[str, httpx.Response]:
        return account, httpx.post(base_url + NBA.format(account), headers=operator, timeout=30)

    with ThreadPoolExecutor(len(accounts)) as pool:
        answers = list(pool.map(ask, accounts))
    by_account: dict[str, list[httpx.Response]] = {}
    for account, response in answers:
        by_account.setdefault(account, []).append(response)
    assert {r.status_code for r in by_account.pop("a_9999")} == {404}
    logged = set()
    for account, responses in by_account.items():
        assert {r.status_code for r in responses} == {200}, account
        bodies = [r.json() for r in responses]
        assert all(body == bodies[0] for body in bodies), account
        assert (bodies[0]["status"], bodies[0]["logged"]) == ("queued", True)
        logged.add(bodies[0]["decision_id"])
    assert len(logged) == 3
    with world.store.connect() as connection:
        stored = set(connection.execute(select(decisions.c.id)).scalars())
    assert stored == logged
    assert sorted(s["account_id"] for s in queued(world)) == ["a_0002", "a_0003", "a_0005"]


def test_a_dry_run_writes_nothing(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(1, churn=0.6, stage="renewal"), customer(6, churn=0.85, nps=3)])
    tables = (decisions, outbox, review_queue, policy_versions)
    for n in (1, 6):
        answer = http.post(
            NBA.format(f"a_{n:04d}"), params={"dry_run": "true"},
            headers=_auth(keys[Role.OPERATOR]),
        ).json()  # fmt: skip
        assert (answer["dry_run"], answer["logged"]) == (True, False)
        assert answer["status"] in ("queued", "review")
    assert [_count(world, t) for t in tables] == [0, 0, 0, 0]


def test_decisions_page_newest_first(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(n, logins=2) for n in range(1, 6)])
    decide(world)  # five decisions of one batch cycle, all at noon
    operator = _auth(keys[Role.OPERATOR])
    seen: list[str] = []
    before = None
    while True:
        params = {"limit": 2, **({"before": before} if before else {})}
        page = http.get("/v1/decisions", params=params, headers=operator).json()
        seen += [d["id"] for d in page["decisions"]]
        before = page["next_before"]
        if before is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)  # same instant: by id, descending
    bad = http.get("/v1/decisions", params={"before": "yesterday"}, headers=operator)
    assert (bad.status_code, bad.json()["field"]) == (422, "query.before")
    assert http.get("/v1/decisions", params={"limit": 0}, headers=operator).status_code == 422


# -------------------------------------------------------------------- review
def test_review_approve_and_reject_record_who_and_a_second_decision_is_a_conflict(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(6, churn=0.85, nps=3), customer(7, churn=0.85, nps=3)])
    operator = _auth(keys[Role.OPERATOR])
    offers = [http.post(NBA.format(f"a_000{n}"), headers=operator).json() for n in (6, 7)]
    assert [o["status"] for o in offers] == ["review", "review"]
    assert offers[0]["action"]["rule"] == "winback-offer"
    assert offers[0]["guardrails"][-1] == {
        "guardrail": "review",
        "verdict": "review",
        "detail": "discount 25% is above 15%",
    }
    # nothing new for an account while its earlier action waits for a person
    waiting = http.post(NBA.format("a_0006"), params={"dry_run": True}, headers=operator).json()
    assert waiting["status"] == "none"
    assert f"(item {offers[0]['review_id']})" in waiting["why"]

    pending = http.get("/v1/review", headers=_auth(keys[Role.ANALYST])).json()["items"]
    assert [(i["id"], i["status"]) for i in pending] == [
        (offers[0]["review_id"], "pending"),
        (offers[1]["review_id"], "pending"),
    ]
    assert "owner6@acct6.example" not in orjson.dumps(pending).decode()

    approve = f"/v1/review/{offers[0]['review_id']}/approve"
    assert http.post(approve, headers=_auth(keys[Role.ANALYST])).status_code == 403
    approved = http.post(approve, json={"note": "fine"}, headers=operator)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["action_status"] == "queued"
    assert body["review"]["status"] == "approved"
    assert body["review"]["decided_by"] == _actor(keys[Role.OPERATOR])
    assert body["review"]["note"] == "fine"
    assert [s["decision_id"] for s in queued(world)] == [offers[0]["decision_id"]]
    twice = http.post(approve, headers=operator)
    assert twice.status_code == 409
    assert twice.json()["message"] == f"review item {offers[0]['review_id']} is already approved"

    reject = f"/v1/review/{offers[1]['review_id']}/reject"
    rejected = http.post(reject, headers=operator).json()  # no body: no note
    assert (rejected["action_status"], rejected["review"]["status"]) == ("rejected", "rejected")
    assert http.post(reject, headers=operator).status_code == 409
    assert len(queued(world)) == 1
    assert http.post("/v1/review/999/approve", headers=operator).status_code == 404
    assert http.get("/v1/review", params={"status": "all"}, headers=operator).json()["items"]


# ------------------------------------------------------ policies and templates
def test_an_edited_policy_changes_the_answer_and_version_without_a_restart(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(1, logins=2), customer(2, logins=2)])
    operator = _auth(keys[Role.OPERATOR])
    before = http.post(NBA.format("a_0001"), headers=operator).json()
    assert (before["action"]["rule"], before["policy_version"]) == ("tips-email", 1)

    email_rule = "when: features.logins_30d < {}\n    action: {{channel: email"
    edited = POLICY.replace(email_rule.format(5), email_rule.format(1))
    assert edited != POLICY
    (world.root / "policies" / "retention.yaml").write_text(edited)
    time.sleep(RECHECK_SECONDS + 0.1)  # the server looks at its files at most this often
    listed = http.get("/v1/policies", headers=_auth(keys[Role.ANALYST])).json()["policies"]
    assert listed[0]["version"] is None  # the edited text is not used by a decision yet
    assert [v["version"] for v in listed[0]["history"]] == [1]

    after = http.post(NBA.format("a_0002"), headers=operator).json()
    assert (after["action"]["rule"], after["policy_version"]) == ("tips-in-app", 2)
    listed = http.get("/v1/policies", headers=operator).json()["policies"]
    assert listed[0]["version"] == 2
    assert [(v["version"], v["created_by"]) for v in listed[0]["history"]] == [
        (1, _actor(keys[Role.OPERATOR])),
        (2, _actor(keys[Role.OPERATOR])),
    ]
    tips = next(r for r in listed[0]["rules"] if r["id"] == "tips-email")
    assert tips["when"] == "features.logins_30d < 1"

    # a file that no longer loads is the project's error, named, never a 500
    (world.root / "policies" / "retention.yaml").write_text(edited.replace("< 1", "<"))
    time.sleep(RECHECK_SECONDS + 0.1)
    broken = http.post(NBA.format("a_0002"), headers=operator)
    assert broken.status_code == 409
    assert "not valid CEL" in broken.json()["message"]


def test_templates_are_listed_and_previewed_for_a_real_customer(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    publish(world, [customer(2, logins=2)])
    reader = _auth(keys[Role.READ_ONLY])
    templates = http.get("/v1/templates", headers=reader).json()["templates"]
    assert sorted((t["name"], t["channel"]) for t in templates) == [
        ("csm_call", "csm_task"), ("offer", "email"), ("tips", "email"),
        ("tips_in_app", "in_app"),
    ]  # fmt: skip
    preview = http.get(
        "/v1/templates/tips/preview", params={"account_id": "a_0002"},
        headers=_auth(keys[Role.OPERATOR]),
    ).json()  # fmt: skip
    assert preview["recipient"] == "owner2@acct2.example"
    assert preview["message"]["subject"] == "Three things Account 2 has not tried yet"
    assert preview["message"]["text"].startswith("Hi Dee,\n")
    masked = http.get(
        "/v1/templates/tips/preview", params={"account_id": "a_0002"}, headers=reader
    ).json()
    assert masked["recipient"].startswith("pii_")
    assert masked["message"]["text"].startswith("Hi pii_")
    assert "owner2@acct2.example" not in orjson.dumps(masked).decode()

    write(world.root / "templates" / "nps.yaml", TEMPLATES["tips_in_app"].replace(
        "features.logins_30d", "features.nps_last"))  # fmt: skip
    time.sleep(RECHECK_SECONDS + 0.1)
    unrendered = http.get(
        "/v1/templates/nps/preview", params={"account_id": "a_0002"}, headers=reader
    )
    assert unrendered.status_code == 409
    assert unrendered.json()["message"].startswith(
        "template 'nps' uses a variable that is not there"
    )
    params = {"account_id": "a_0002"}
    assert http.get("/v1/templates/nope/preview", params=params, headers=reader).status_code == 404
    params = {"account_id": "a_9999"}
    assert http.get("/v1/templates/tips/preview", params=params, headers=reader).status_code == 404
    assert http.get("/v1/templates/tips/preview", headers=reader).status_code == 422


def test_journeys_are_listed_with_their_steps(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    write(
        world.root / "journeys" / "onboarding.yaml",
        "name: onboarding\nenter: features.logins_30d < 5\nsteps:\n"
        "  - {id: hello, send: {channel: email, template: tips}}\n"
        "  - {id: pause, wait: 7d}\n"
        "  - id: check\n    branch: [{when: 'features.logins_30d >= 5.0', goto: end}]\n",
    )
    journeys = http.get("/v1/journeys", headers=_auth(keys[Role.ANALYST])).json()["journeys"]
    assert [(j["name"], j["version"]) for j in journeys] == [("onboarding", None)]
    assert [(s["id"], s["kind"]) for s in journeys[0]["steps"]] == [
        ("hello", "send"), ("pause", "wait"), ("check", "branch"),
    ]  # fmt: skip
    assert journeys[0]["steps"][2]["branch"] == [
        {"when": "features.logins_30d >= 5.0", "goto": "end"}
    ]


# ------------------------------------------------------------- models, audit
def test_only_admins_promote_and_roll_back_models_and_it_is_audited(
    world: Project, keys: dict[Role, str], http: httpx.Client
) -> None:
    registry = registry_for(world)
    for auc in (0.8, 0.83):
        registry.register("churn", {"weights": [auc]}, metrics={"auc": auc}, actor="test")
    listed = http.get("/v1/models", headers=_auth(keys[Role.ANALYST])).json()["models"]
    assert [(m["version"], m["status"]) for m in listed] == [(1, "candidate"), (2, "candidate")]

    body = {"version": 1}
    assert http.post("/v1/models/churn/promote", json=body,
                     headers=_auth(keys[Role.OPERATOR])).status_code == 403  # fmt: skip
    admin = _auth(keys[Role.ADMIN])
    first = http.post("/v1/models/churn/promote", json=body, headers=admin)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "production"
    nothing_before = http.post("/v1/models/churn/rollback", headers=admin)
    assert nothing_before.status_code == 409
    assert "replaced no earlier production version" in nothing_before.json()["message"]
    assert (
        http.post("/v1/models/churn/promote", json={"version": 2}, headers=admin).json()["status"]
        == "production"
    )
    restored = http.post("/v1/models/churn/rollback", headers=admin).json()
    assert (restored["version"], restored["status"]) == (1, "production")
    again = http.post("/v1/models/churn/promote", json={"version": 2}, headers=admin)
    assert again.status_code == 409  # retired: only a rollback brings it back
    assert again.json()["field"] == "body.version"
    assert http.post("/v1/models/churn/promote", json={"version": 9},
                     headers=admin).status_code == 404  # fmt: skip

    audit = http.get("/v1/audit", params={"action": "model.promote"}, headers=admin).json()
    assert audit["chain_intact"] is True
    assert [(e["actor"], e["target"]) for e in audit["entries"]] == [
        (_actor(keys[Role.ADMIN]), "churn v2"),
        (_actor(keys[Role.ADMIN]), "churn v1"),
    ]
    everything = http.get("/v1/audit", params={"limit": 3}, headers=admin).json()["entries"]
    assert [e["action"] for e in everything] == [
        "model.rollback",
        "model.rollback",
        "model.promote",
    ]
    assert http.get("/v1/audit", headers=_auth(keys[Role.OPERATOR])).status_code == 403
