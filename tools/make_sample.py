"""Regenerate the small sample company bundled for `tenure demo` (deterministic).

    python tools/make_sample.py

Writes src/tenure/samples/saas/: six months of Segment events for eight
accounts (events.jsonl), including the identity situations tenure must handle
(anonymous visits before sign-up, a second device, an email change, a user who
moves to another account, a shared role address), and the same company's
exports in the Stripe, HubSpot and Zendesk CSV formats. A few records are
deliberately broken, as in real exports, so the demo has a quarantine to show.
The HubSpot exports carry a custom "Product Account ID" property, which the
sample's own mappings (mappings/*.yaml) use to join CRM companies to product
accounts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "tenure" / "samples" / "saas"
START = dt.datetime(2024, 1, 8, tzinfo=dt.UTC)
DAYS = 170

ACCOUNTS = [
    ("acct_acme", "Acme Corp", "acme.example", 6),
    ("acct_globex", "Globex", "globex.example", 4),
    ("acct_initech", "Initech", "initech.example", 5),
    ("acct_umbrella", "Umbrella", "umbrella.example", 3),
    ("acct_hooli", "Hooli", "hooli.example", 7),
    ("acct_stark", "Stark Industries", "stark.example", 4),
    ("acct_wayne", "Wayne Enterprises", "wayne.example", 3),
    ("acct_wonka", "Wonka", "wonka.example", 2),
]
FIRST = [
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "ken",
    "dennis",
    "margaret",
    "linus",
    "guido",
    "anita",
    "frances",
    "john",
    "radia",
    "leslie",
    "donald",
    "katherine",
    "tim",
]
MOVER = "usr_0007"  # moves from Globex to Initech
MOVED_AT = START + dt.timedelta(days=130)
FEATURES = ["dashboards", "reports", "alerts", "api", "integrations", "exports"]


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main() -> None:
    rng = random.Random(20240108)
    events: list[dict[str, object]] = []
    n = 0

    def emit(kind: str, at: dt.datetime, **fields: object) -> None:
        nonlocal n
        n += 1
        events.append(
            {"messageId": f"sample-{n:06d}", "type": kind, "timestamp": iso(at), **fields}
        )

    people = 0
    users: list[tuple[str, str, str, str, dt.datetime]] = []
    for account_id, name, domain, size in ACCOUNTS:
        created = START + dt.timedelta(days=rng.randrange(0, 40), hours=rng.randrange(8, 18))
        engagement = rng.uniform(0.15, 0.9)
        for j in range(size):
            first = FIRST[people % len(FIRST)]
            people += 1
            user_id = f"usr_{people:04d}"
            email = f"{first}@{domain}"
            anon = f"anon-{rng.getrandbits(48):012x}"
            joined = created + dt.timedelta(days=j * rng.randrange(1, 6), hours=rng.randrange(0, 5))
            users.append((user_id, first, email, account_id, joined))
            # anonymous visits before signing up
            for k in range(rng.randrange(1, 4)):
                emit(
                    "page",
                    joined - dt.timedelta(days=k + 1, minutes=rng.randrange(600)),
                    anonymousId=anon,
                    name=rng.choice(["Home", "Pricing", "Docs"]),
                    context={"page": {"path": "/pricing"}},
                )
            context = {"groupId": account_id}
            emit(
                "identify",
                joined,
                userId=user_id,
                anonymousId=anon,
                traits={
                    "email": email,
                    "first_name": first.title(),
                    "role": "admin" if j == 0 else "member",
                    "created_at": iso(joined),
                },
            )
            emit(
                "group",
                joined + dt.timedelta(seconds=5),
                userId=user_id,
                groupId=account_id,
                traits={
                    "name": name,
                    "domain": domain,
                    "plan": "growth" if size > 4 else "starter",
                },
            )
            emit(
                "track",
                joined + dt.timedelta(seconds=9),
                userId=user_id,
                event="Signed Up",
                properties={"method": "email"},
                context=context,
            )
            if j == 0:
                emit(
                    "track",
                    joined + dt.timedelta(seconds=12),
                    userId=user_id,
                    event="Account Created",
                    properties={"account_name": name},
                    context=context,
                )
            second_device = f"anon-{rng.getrandbits(48):012x}" if j == 1 else None
            day = joined
            while day < START + dt.timedelta(days=DAYS):
                day += dt.timedelta(days=rng.expovariate(engagement * 0.9))
                at = day.replace(hour=rng.randrange(7, 19), minute=rng.randrange(60))
                if user_id == MOVER and at >= MOVED_AT:  # from then on they work at Initech
                    context = {"groupId": "acct_initech"}
                device = (
                    {"anonymousId": second_device} if second_device and rng.random() < 0.4 else {}
                )
                emit("track", at, userId=user_id, event="Signed In", context=context, **device)
                for _ in range(rng.randrange(0, 4)):
                    emit(
                        "track",
                        at + dt.timedelta(minutes=rng.randrange(1, 50)),
                        userId=user_id,
                        event="Feature Used",
                        properties={"feature": rng.choice(FEATURES)},
                        context=context,
                    )
                if rng.random() < 0.02:
                    emit(
                        "track",
                        at + dt.timedelta(minutes=55),
                        userId=user_id,
                        event="Invite Sent",
                        properties={"invitee_email": f"new{rng.randrange(999)}@{domain}"},
                        context=context,
                    )
            nps_at = joined + dt.timedelta(days=60 + rng.randrange(20))
            if nps_at < START + dt.timedelta(days=DAYS) and rng.random() < 0.6:
                score = max(0, min(10, round(rng.gauss(5 + 5 * engagement, 2))))
                emit(
                    "track",
                    nps_at,
                    userId=user_id,
                    event="NPS Submitted",
                    properties={"score": score, "comment": "" if score > 8 else "could be faster"},
                    context=context,
                )
    # an email change: the first Acme user moves to a new address
    emit(
        "identify",
        START + dt.timedelta(days=120),
        userId="usr_0001",
        traits={"email": "ada.lovelace@acme.example"},
    )
    # a user who moves from Globex to Initech
    emit(
        "group",
        MOVED_AT,
        userId=MOVER,
        groupId="acct_initech",
        traits={"name": "Initech"},
    )
    # a shared role address used by two different users: never merges them
    for user in ("usr_0019", "usr_0020"):
        emit(
            "identify",
            START + dt.timedelta(days=100),
            userId=user,
            traits={"email": "info@hooli.example"},
        )
    events.sort(key=lambda e: (str(e["timestamp"]), str(e["messageId"])))
    lines = [json.dumps(e, separators=(",", ":")) for e in events]
    # three broken records, as real exports have
    lines.insert(40, '{"messageId":"sample-bad-1","type":"track","event":"Signed In",')
    lines.insert(
        80,
        json.dumps(
            {
                "messageId": "sample-bad-2",
                "type": "track",
                "event": "Signed In",
                "timestamp": "2024-02-30T10:00:00Z",
                "userId": "usr_0002",
            }
        ),
    )
    lines.insert(
        120,
        json.dumps(
            {
                "messageId": "sample-bad-3",
                "type": "track",
                "event": "NPS Submitted",
                "userId": "usr_0003",
                "timestamp": "2024-03-01T10:00:00Z",
                "properties": {"score": "nine"},
            }
        ),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_exports(rng, users)
    print(f"wrote {len(lines)} events and the exports to {OUT}")


def write_csv(name: str, header: list[str], rows: list[list[object]]) -> None:
    with (OUT / name).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def write_exports(rng: random.Random, users: list[tuple[str, str, str, str, dt.datetime]]) -> None:
    """CRM, billing and support exports of the same company (users: id, first, email, account)."""
    admins = {}
    for user_id, first, email, account_id, joined in users:
        admins.setdefault(account_id, (user_id, first, email, joined))
    companies, contacts, deals = [], [], []
    customers, subscriptions, invoices, tickets = [], [], [], []
    for k, (account_id, name, domain, size) in enumerate(ACCOUNTS):
        company_id = 9001 + k
        user_id, first, email, joined = admins[account_id]
        created = joined - dt.timedelta(days=30 + rng.randrange(30))
        companies.append(
            [
                company_id,
                name,
                domain,
                rng.choice(["Computer Software", "Retail", "Financial Services", "Manufacturing"]),
                size * 40,
                size * 2_000_000,
                "United States",
                "Customer",
                stamp(created),
                account_id,
            ]
        )
        lead = created + dt.timedelta(days=2)
        contacts.append(
            [
                100 + k,
                first.title(),
                "Example",
                email,
                "Head of Operations",
                name,
                "Customer",
                stamp(lead),
                stamp(lead),
                stamp(lead + dt.timedelta(days=6)),
                stamp(lead + dt.timedelta(days=12)),
                company_id,
                account_id,
            ]
        )
        plan, price, interval = (
            ("Growth", 49.0, "month") if size > 4 else ("Starter", 240.0, "year")
        )
        deals.append(
            [
                700 + k,
                f"{name} - {plan}",
                "Closed Won",
                price * size * (12 if interval == "month" else 1),
                stamp(joined - dt.timedelta(days=1)),
                stamp(lead + dt.timedelta(days=13)),
                "Sales Pipeline",
                company_id,
                account_id,
            ]
        )
        customer = f"cus_{account_id.removeprefix('acct_')}"
        customers.append(
            [
                customer,
                name,
                email,
                f"{first.title()} Example",
                stamp(joined),
                "0.00",
                "usd",
                "false",
            ]
        )
        sub_id = f"sub_{account_id.removeprefix('acct_')}"
        canceled = joined + dt.timedelta(days=140) if account_id == "acct_wonka" else None
        subscriptions.append(
            [
                sub_id,
                customer,
                name,
                email,
                f"price_{plan.lower()}",
                plan,
                size,
                "usd",
                interval,
                f"{price:.2f}",
                "canceled" if canceled else "active",
                stamp(joined),
                stamp(joined),
                stamp(joined),
                stamp(joined + dt.timedelta(days=30)),
                stamp(canceled) if canceled else None,
                "false",
            ]
        )
        months = 6 if interval == "month" else 1
        for m in range(months):
            at = joined + dt.timedelta(days=30 * m)
            if canceled and at > canceled:
                break
            failed = account_id == "acct_umbrella" and m == 3
            amount = price * size
            invoices.append(
                [
                    f"in_{account_id.removeprefix('acct_')}_{m}",
                    f"{amount:.2f}",
                    "0.00" if failed else f"{amount:.2f}",
                    3 if failed else 1,
                    "true",
                    "usd",
                    customer,
                    email,
                    stamp(at),
                    "false" if failed else "true",
                    "open" if failed else "paid",
                    sub_id,
                    f"{amount:.2f}",
                ]
            )
    subjects = [
        ("Cannot export the usage report", "High"),
        ("How do I add a user?", "Low"),
        ("Dashboard is slow to load", "Normal"),
        ("Billing address change", "Low"),
        ("API returns 500 on bulk import", "Urgent"),
    ]
    for n, (user_id, first, email, account_id, joined) in enumerate(users):
        if rng.random() > 0.35:
            continue
        subject, priority = rng.choice(subjects)
        created = joined + dt.timedelta(days=rng.randrange(5, 150), hours=rng.randrange(9, 17))
        solved = created + dt.timedelta(hours=rng.randrange(2, 96)) if rng.random() < 0.8 else None
        rating = rng.choice(["Good", "Good", "Bad", "Offered"]) if solved else "Unoffered"
        tickets.append(
            [
                1200 + n,
                first.title(),
                user_id,
                email,
                subject,
                "Solved" if solved else "Open",
                priority,
                "Web Form",
                stamp(created),
                stamp(solved or created),
                stamp(solved) if solved else None,
                rating,
                account_id,
            ]
        )
    tickets.append(
        [
            1999,
            "Ghost",
            "usr_9999",
            "ghost@nowhere.example",
            "Broken row",
            "Open",
            "Low",
            "Email",
            "sometime last week",
            None,
            None,
            "Unoffered",
            "",
        ]
    )
    write_csv(
        "hubspot_companies.csv",
        [
            "Record ID",
            "Company name",
            "Company Domain Name",
            "Industry",
            "Number of Employees",
            "Annual Revenue",
            "Country/Region",
            "Lifecycle Stage",
            "Create Date",
            "Product Account ID",
        ],
        companies,
    )
    write_csv(
        "hubspot_contacts.csv",
        [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Job Title",
            "Company Name",
            "Lifecycle Stage",
            "Create Date",
            "Became a Lead Date",
            "Became a Marketing Qualified Lead Date",
            "Became a Sales Qualified Lead Date",
            "Associated Company IDs (Primary)",
            "Product Account ID",
        ],
        contacts,
    )
    write_csv(
        "hubspot_deals.csv",
        [
            "Record ID",
            "Deal Name",
            "Deal Stage",
            "Amount",
            "Close Date",
            "Create Date",
            "Pipeline",
            "Associated Company IDs (Primary)",
            "Product Account ID",
        ],
        deals,
    )
    write_csv(
        "stripe_customers.csv",
        [
            "id",
            "Description",
            "Email",
            "Name",
            "Created (UTC)",
            "Account Balance",
            "Currency",
            "Delinquent",
        ],
        customers,
    )
    write_csv(
        "stripe_subscriptions.csv",
        [
            "id",
            "Customer ID",
            "Customer Description",
            "Customer Email",
            "Plan",
            "Product",
            "Quantity",
            "Currency",
            "Interval",
            "Amount",
            "Status",
            "Created (UTC)",
            "Start (UTC)",
            "Current Period Start (UTC)",
            "Current Period End (UTC)",
            "Canceled At (UTC)",
            "Cancel At Period End",
        ],
        subscriptions,
    )
    write_csv(
        "stripe_invoices.csv",
        [
            "id",
            "Amount Due",
            "Amount Paid",
            "Attempt Count",
            "Attempted",
            "Currency",
            "Customer",
            "Customer Email",
            "Date (UTC)",
            "Paid",
            "Status",
            "Subscription",
            "Total",
        ],
        invoices,
    )
    write_csv(
        "zendesk_tickets.csv",
        [
            "Id",
            "Requester",
            "Requester external id",
            "Requester email",
            "Subject",
            "Status",
            "Priority",
            "Via",
            "Created at",
            "Updated at",
            "Solved at",
            "Satisfaction Score",
            "Organization",
        ],
        tickets,
    )


if __name__ == "__main__":
    main()
