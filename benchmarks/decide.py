"""Decisions per second: one batch cycle over N customers with 20 rules and every guardrail on.

    python -m benchmarks.decide [--customers 100000] [--store URL]

Customers are written straight into ``customer_state`` (as ``publish_state``
would), with a spread of stages, scores and features so rules match at
realistic rates; consent withdrawals, earlier sends (for the caps) and budgets
are in place so every guardrail does real work. The figure is the whole cycle
— load state, evaluate, arbitrate, check, render, log, queue, commit — divided
into the number of customers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path

from benchmarks._company import peak_rss_mb
from sqlalchemy import insert

from tenure.decide import Contact, CustomerState, decide, save_states
from tenure.govern.consent import ConsentReason, record_consent
from tenure.project import init_project
from tenure.store._tables import outbox

NOW = dt.datetime(2025, 3, 4, 15, 0, tzinfo=dt.UTC)
STAGES = ["onboarding", "established", "mature", "renewal"]
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", None]


def _rules(selective: bool) -> str:
    """20 rules; *selective* raises the risk thresholds so a few % of customers match
    (a daily cycle under caps and cool-downs), else about half of them act."""
    rules = []
    channels = [("email", "mail"), ("in_app", "note"), ("csm_task", "task")]
    for n in range(20):
        channel, template = channels[n % 3]
        threshold = (0.62 + 0.015 * n) if selective else (0.3 + 0.03 * n)
        feature = ["logins_30d", "tickets_open", "nps_last", "seats"][n % 4]
        when = f"scores.churn_probability > {threshold:.2f} && features.{feature} >= {n % 5}.0"
        if n % 4 == 2:
            nps = 1 if selective else 3 + n % 5
            when = f"has(features.nps_last) && features.nps_last < {nps}.0"
        stages = "" if n % 2 else f"\n    stages: [{STAGES[n % 4]}, {STAGES[(n + 1) % 4]}]"
        rules.append(
            f"""  - id: rule-{n:02d}
    when: '{when}'{stages}
    action: {{channel: {channel}, template: {template}, campaign: c{n % 4}, cost: {1 + n % 7}}}
    priority: {n * 5}
    cooldown: 14d"""
        )
    return "name: bench\nrules:\n" + "\n".join(rules) + "\n"


TEMPLATES = {
    "mail": "channel: email\nsubject: 'Hi {{ contact.first_name }}'\n"
    "text: '{{ account.name }}: churn risk {{ (scores.churn_probability*100)|round }} %'\n",
    "note": "channel: in_app\ntitle: 'For {{ account.name }}'\nbody: 'Tips'\n",
    "task": "channel: csm_task\nbody: {title: 'Call {{ account.name }}'}\n",
}


def _states(count: int, rng: random.Random) -> list[CustomerState]:
    states = []
    for n in range(count):
        churn = rng.betavariate(2, 5)
        features = {
            "logins_30d": float(rng.randint(0, 60)),
            "tickets_open": float(rng.randint(0, 4)),
            "seats": float(rng.randint(1, 50)),
            "days_since_urgent_ticket": float(rng.randint(0, 90)),
            **{f"f{k}": rng.random() for k in range(15)},
        }
        if rng.random() < 0.6:
            features["nps_last"] = float(rng.randint(0, 10))
        email = f"user{n}@c{n}.example"
        states.append(
            CustomerState(
                account_id=f"a{n:07d}",
                as_of=NOW,
                name=f"Company {n}",
                stage=rng.choice(STAGES),
                scores={"churn_probability": churn, "clv": rng.lognormvariate(8, 1), "mrr": 99.0},
                health={"score": 100 * (1 - churn), "band": "yellow"},
                features=features,
                traits={"plan": "pro"},
                contacts=(
                    Contact(
                        profile_id=f"p{n}",
                        email=email,
                        user_id=f"u{n}",
                        name="Dee",
                        first_name="Dee",
                        timezone=rng.choice(ZONES),
                        identifiers=(f"email:{email}", f"user_id:u{n}"),
                    ),
                ),
                models={"churn": "churn v1"},
                features_hash="0" * 64,
            )
        )
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--store", default=None, help="store URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--selective", action="store_true", help="rules that match a few %% of customers"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        if args.store:
            (root / "tenure.yaml").write_text(f"version: 1\nstore:\n  url: {args.store}\n")
        config_budgets = "decide:\n  budgets: {c0: {budget: 20000, period: 30d}}\n"
        text = (root / "tenure.yaml").read_text() if args.store else "version: 1\n"
        (root / "tenure.yaml").write_text(text + config_budgets)
        project = init_project(root, clock=lambda: NOW)
        (root / "policies").mkdir()
        (root / "policies" / "bench.yaml").write_text(_rules(args.selective))
        (root / "templates").mkdir()
        for name, body in TEMPLATES.items():
            (root / "templates" / f"{name}.yaml").write_text(body)
        states = _states(args.customers, rng)
        with project.store.begin() as connection:
            save_states(connection, states, published_at=NOW)
            for n in range(0, args.customers, 50):  # 2 % opted out of email
                record_consent(
                    connection, f"email:user{n}@c{n}.example", "email", granted=False,
                    reason=ConsentReason.UNSUBSCRIBE, source="bench", at=NOW,
                )  # fmt: skip
            earlier = [
                {
                    "idempotency_key": f"old{n}", "account_id": f"a{n:07d}", "channel": "email",
                    "recipient": "x", "cost": 1.0, "payload": "{}", "status": "sent",
                    "attempts": 1, "resends": 0, "not_before": NOW - dt.timedelta(days=2),
                    "created_at": NOW - dt.timedelta(days=2), "campaign": "c1",
                }
                for n in range(0, args.customers, 3)
            ]  # fmt: skip
            for start in range(0, len(earlier), 5000):
                connection.execute(insert(outbox), earlier[start : start + 5000])
        started = time.perf_counter()
        report = decide(project, now=NOW)
        seconds = time.perf_counter() - started
        project.close()
    print(
        json.dumps(
            {
                "customers": args.customers,
                "rules": 20,
                "selective": args.selective,
                "store": args.store or "sqlite",
                "seconds": round(seconds, 2),
                "customers_per_second": round(args.customers / seconds),
                "logged_decisions_per_second": round(len(report.decisions) / seconds),
                "by_status": report.by_status,
                "actions": sum(report.by_rule.values()),
                "peak_rss_mb": peak_rss_mb(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
