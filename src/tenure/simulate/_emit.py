"""Facts to records: Segment events and export rows, built column by column in Arrow.

No Python loop runs per event: ids, names and JSON bodies are string columns
joined element-wise (``binary_join_element_wise``), so a month of millions of
events is a handful of Arrow kernels. Names and emails are a pure function of
the account or user number, so they need no random draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tenure.simulate._config import AcquisitionParams, SimulationConfig
from tenure.simulate._world import MonthFacts, World

__all__ = [
    "CHANNELS",
    "EVENT_SCHEMA",
    "MessageBatch",
    "account_domain",
    "account_id",
    "account_name",
    "anonymous_id",
    "event_blocks",
    "fmt_time",
    "lead_channels",
    "trial_accounts",
    "trial_span",
    "user_email",
    "user_id",
    "user_name",
]

EVENT_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("group_id", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("properties", pa.string()),
        ("traits", pa.string()),
        ("context", pa.string()),
    ]
)

_FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nils",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
)
_LAST = (
    "Adams",
    "Baker",
    "Costa",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Khan",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
)
_TITLES = (
    "Head of Operations",
    "Analyst",
    "Engineer",
    "Product Manager",
    "VP Sales",
    "Marketing Manager",
    "Finance Lead",
    "Customer Success Manager",
)
_ADJ = (
    "Blue",
    "Bright",
    "Cedar",
    "Delta",
    "Ember",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Kite",
    "Lumen",
    "Maple",
    "North",
    "Orbit",
    "Pine",
    "Quartz",
    "River",
    "Summit",
)
_NOUN = (
    "Analytics",
    "Labs",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Robotics",
    "Media",
    "Retail",
    "Energy",
    "Systems",
    "Studios",
    "Partners",
    "Works",
)
INDUSTRIES = (
    "Computer Software",
    "Financial Services",
    "Retail",
    "Hospital & Health Care",
    "Logistics and Supply Chain",
    "Marketing and Advertising",
    "Manufacturing",
)
#: Where accounts are (country and IANA time zone, reported in group traits): quiet
#: hours and send times depend on it. Two thirds in the Americas and Europe.
LOCATIONS = (
    ("US", "America/New_York"),
    ("US", "America/Chicago"),
    ("US", "America/Los_Angeles"),
    ("GB", "Europe/London"),
    ("DE", "Europe/Berlin"),
    ("FR", "Europe/Paris"),
    ("CA", "America/Toronto"),
    ("BR", "America/Sao_Paulo"),
    ("AU", "Australia/Sydney"),
    ("JP", "Asia/Tokyo"),
    ("IN", "Asia/Kolkata"),
    ("SG", "Asia/Singapore"),
)
_COUNTRIES = tuple(country for country, _ in LOCATIONS)
_ZONES = tuple(zone for _, zone in LOCATIONS)
PLANS = ("starter", "growth", "enterprise")
PRIORITIES = ("low", "normal", "high", "urgent")

Ints = npt.NDArray[np.int64]


def _s(values: npt.NDArray[np.generic] | list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _num(values: npt.NDArray[np.generic]) -> pa.Array:
    """Numbers as JSON text: integers as they are, money rounded to cents."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return pc.cast(pa.array(arr, pa.int64()), pa.string())
    return pc.cast(pa.array(np.round(arr.astype(np.float64), 2), pa.float64()), pa.string())


def _pick(options: tuple[str, ...], index: npt.NDArray[np.generic]) -> pa.Array:
    return pc.take(_s(list(options)), pa.array(np.asarray(index, np.int64) % len(options)))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _ids(prefix: str, numbers: npt.NDArray[np.generic], width: int) -> pa.Array:
    text = pc.cast(pa.array(np.asarray(numbers, np.int64) + 1, pa.int64()), pa.string())
    return _join(prefix, pc.utf8_lpad(text, width=width, padding="0"))


def account_id(accounts: Ints) -> pa.Array:
    return _ids("acct_", accounts, 6)


def prospect_id(prospects: Ints) -> pa.Array:
    return _ids("prospect_", prospects, 7)


def user_id(users: Ints) -> pa.Array:
    return _ids("usr_", users, 7)


def account_name(accounts: Ints) -> pa.Array:
    return _join(_pick(_ADJ, accounts), " ", _pick(_NOUN, accounts * 7 + accounts // 18))


def account_domain(accounts: Ints) -> pa.Array:
    slug = pc.utf8_lower(_join(_pick(_ADJ, accounts), _pick(_NOUN, accounts * 7 + accounts // 18)))
    return _join(slug, pc.cast(pa.array(accounts + 1, pa.int64()), pa.string()), ".example")


def _first(users: Ints) -> pa.Array:
    return _pick(_FIRST, users * 13)


def _last(users: Ints) -> pa.Array:
    return _pick(_LAST, users * 7 + users // 20)


def user_name(users: Ints) -> pa.Array:
    return _join(_first(users), " ", _last(users))


def user_email(world: World, users: Ints) -> pa.Array:
    local = pc.utf8_lower(
        _join(_first(users), ".", _last(users), pc.cast(pa.array(users + 1), pa.string()))
    )
    return _join(local, "@", account_domain(world.users.account[users]))


def _prospect_email(prospects: Ints) -> pa.Array:
    local = pc.utf8_lower(_join(_first(prospects * 3), ".", _last(prospects * 5)))
    return _join(
        local, "@", _join("prospect", pc.cast(pa.array(prospects + 1), pa.string()), ".example")
    )


def fmt_time(seconds: npt.NDArray[np.generic], fmt: str = "%Y-%m-%d %H:%M:%S") -> pa.Array:
    stamps = pa.array(np.asarray(seconds, np.int64), pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    return pc.strftime(stamps, format=fmt)


_PRODUCT_CONTEXT = '","library":{"name":"analytics-node","version":"2.1.0"}}'
_CRM_CONTEXT = '","library":{"name":"hubspot-workflows","version":"1.0.0"}}'
_TENURE_CONTEXT = '","library":{"name":"tenure","version":"simulated"}}'


CHANNELS = ("organic", "paid", "referral", "events")
_SITE = "https://www.tenure-saas.example"
_PAGES = ("Home", "Pricing", "Docs", "Customers", "Signup")
_PATHS = ("/", "/pricing", "/docs", "/customers", "/signup")
_SIGNUP_PAGE = 4
# where a channel's first visit comes from: referrer, then the campaign context (UTM tags)
_CHANNEL_REFERRER = (
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.g2.com/categories/customer-success",
    "",
)
_CHANNEL_CAMPAIGN = (
    ',"campaign":{"source":"google","medium":"organic"}',
    ',"campaign":{"source":"google","medium":"cpc","name":"brand-search","term":"churn software"}',
    ',"campaign":{"source":"g2","medium":"referral","name":"category-listing"}',
    ',"campaign":{"source":"saas-summit","medium":"event","name":"booth-qr"}',
)
# the page a channel lands on (paid search lands on pricing, referrals on customer stories)
_CHANNEL_LANDING = (0, 1, 3, 0)
_WEB_CONTEXT_TAIL = (
    ',"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 '
    '(KHTML, like Gecko) Version/17.1 Safari/605.1.15"'
    ',"library":{"name":"analytics.js","version":"4.1.0"}}'
)


def anonymous_id(prefix: str, numbers: Ints) -> pa.Array:
    """A browser's anonymous id: a pure function of the prospect or user number."""
    return _ids(f"anon-{prefix}-", numbers, 8)


def _unit_hash(numbers: Ints, salt: int) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) that is a pure function of each number (no random draws)."""
    mixed = (np.asarray(numbers, np.uint64) + np.uint64(salt)) * np.uint64(2654435761)
    return np.asarray((mixed % np.uint64(2**32)).astype(np.float64) / 2**32, np.float64)


def trial_accounts(world: World, accounts: Ints) -> npt.NDArray[np.bool_]:
    """Which accounts began with a trial: a share of the starter plans won in the window."""
    s = world.state
    window_start = int(np.datetime64(world.config.start, "s").astype(np.int64))
    return np.asarray(
        (s.plan[accounts] == 0)
        & (s.start_ts[accounts] >= window_start)
        & (_unit_hash(accounts, 17) < world.config.acquisition.trial_share),
        np.bool_,
    )


def trial_span(world: World, accounts: Ints) -> tuple[Ints, Ints]:
    """Start and end of each (converted) trial: it ends an hour before the subscription."""
    end = world.state.start_ts[accounts] - 3600
    return end - world.config.acquisition.trial_days * 86_400, end


def _lost_trials(world: World, prospects: Ints) -> npt.NDArray[np.bool_]:
    """Which lost deals were trials that did not convert (as many as among starter wins)."""
    acq = world.config.acquisition
    return np.asarray(_unit_hash(prospects, 29) < acq.trial_share * acq.plan_mix[0], np.bool_)


class WebVisits(NamedTuple):
    """Anonymous page calls: their times, visitors, pages and first-visit flags."""

    ts: npt.NDArray[np.int64]
    visitor: npt.NDArray[np.int64]  # index into the visitors they were drawn for
    page: npt.NDArray[np.int64]
    first: npt.NDArray[np.bool_]


def web_visits(
    rng: np.random.Generator,
    before: npt.NDArray[np.int64],
    channel: npt.NDArray[np.int64],
    pages_mean: float,
    days: int,
) -> WebVisits:
    """A few page views per visitor on the days before *before*, in office hours, the first
    on the channel's landing page and the rest wandering the site."""
    n = len(before)
    counts = 1 + rng.poisson(pages_mean - 1.0, n)
    visitor = np.repeat(np.arange(n, dtype=np.int64), counts)
    k = np.arange(len(visitor), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    day0 = (before - rng.integers(1, days + 1, n) * 86_400) // 86_400 * 86_400
    first_ts = day0 + rng.integers(8 * 3600, 19 * 3600, n)
    first_ts = np.minimum(first_ts, before - 3600)
    gap = np.maximum(before - 60 - first_ts, 1)
    frac = (k + 0.8 * rng.random(len(visitor))) / counts[visitor]
    frac[k == 0] = 0.0
    ts = first_ts[visitor] + (frac * gap[visitor]).astype(np.int64)
    page = np.where(
        k == 0,
        np.asarray(_CHANNEL_LANDING, np.int64)[channel[visitor]],
        rng.integers(0, _SIGNUP_PAGE, len(visitor)),
    ).astype(np.int64)
    return WebVisits(ts.astype(np.int64), visitor, page, k == 0)


def _add_pages(
    b: _Batch,
    ts: npt.NDArray[np.int64],
    anon: pa.Array,
    page: npt.NDArray[np.int64],
    channel: npt.NDArray[np.int64] | None,
) -> None:
    """Page calls under *anon* only; with *channel*, the page is a first visit from it."""
    if len(ts) == 0:
        return
    path = _pick(_PATHS, page)
    url = _join(_SITE, path)
    title = _join(_pick(_PAGES, page), " | Tenure SaaS")
    if channel is None:
        referrer = _join(_SITE, "/")
        campaign = _s([""] * len(ts))
    else:
        referrer = _pick(_CHANNEL_REFERRER, channel)
        campaign = _pick(_CHANNEL_CAMPAIGN, channel)
    page_json = _join(
        '{"path":"', path, '","referrer":"', referrer, '","title":"', title, '","url":"', url, '"}'
    )
    context = _join('{"page":', page_json, campaign, _WEB_CONTEXT_TAIL)
    b.add(
        ts,
        "page",
        _pick(_PAGES, page),
        None,
        None,
        page_json,
        anonymous=anon,
        context=context,
    )


def _add_trials(
    b: _Batch,
    start: Ints,
    end: Ints,
    user: pa.Array | None,
    anon: pa.Array | None,
    group: pa.Array,
    plan: pa.Array,
) -> None:
    """Trial Started (a few seconds after signup) and Trial Ended, as the product reports them."""
    props = _join(
        '{"trial_start_date":"',
        fmt_time(start, "%Y-%m-%dT%H:%M:%SZ"),
        '","trial_end_date":"',
        fmt_time(end, "%Y-%m-%dT%H:%M:%SZ"),
        '","trial_plan_name":"',
        plan,
        '"}',
    )
    b.add(start + 5, "track", "Trial Started", user, group, props, anonymous=anon)
    b.add(end, "track", "Trial Ended", user, group, props, anonymous=anon)


class MessageBatch(NamedTuple):
    """Messaging events of one name (``Message Delivered``, …) for delivered actions."""

    event: str
    ts: npt.NDArray[np.int64]
    users: npt.NDArray[np.int64]
    accounts: npt.NDArray[np.int64]
    properties: pa.Array


class _Batch:
    """Columns of one month's events, appended kind by kind."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []

    def add(
        self,
        ts: npt.NDArray[np.generic],
        type_: str,
        event: str | pa.Array | None,
        user: pa.Array | None,
        group: pa.Array | None,
        properties: pa.Array | None,
        traits: pa.Array | None = None,
        context_tail: str = _PRODUCT_CONTEXT,
        anonymous: pa.Array | None = None,
        context: pa.Array | None = None,
    ) -> None:
        n = len(ts)
        if n == 0:
            return
        nulls = pa.nulls(n, pa.string())
        if context is None:
            assert group is not None, "an event without a group gives its own context"
            context = _join('{"groupId":"', group, context_tail)
        self.parts.append(
            pa.table(
                {
                    "ts": pa.array(np.asarray(ts, np.int64) * 1000, pa.int64()),
                    "type": pa.array([type_] * n, pa.string()),
                    "event": event
                    if isinstance(event, pa.Array)
                    else pa.array([event] * n, pa.string()),
                    "user_id": user if user is not None else nulls,
                    "anonymous_id": anonymous if anonymous is not None else nulls,
                    "group_id": group if group is not None else nulls,
                    "properties": properties if properties is not None else nulls,
                    "traits": traits if traits is not None else nulls,
                    "context": context,
                }
            )
        )

    def table(self, prefix: str, month: int, first_id: int = 0) -> pa.Table:
        if not self.parts:
            return EVENT_SCHEMA.empty_table()
        data = pa.concat_tables(self.parts)
        data = data.take(
            pc.sort_indices(data, [("ts", "ascending")])
        )  # stable: ties keep kind order
        n = data.num_rows
        ids = _ids(f"{prefix}-m{month:03d}-", np.arange(first_id, first_id + n, dtype=np.int64), 8)
        return pa.table(
            {
                "message_id": ids,
                "type": data["type"],
                "event": data["event"],
                "user_id": data["user_id"],
                "anonymous_id": data["anonymous_id"],
                "group_id": data["group_id"],
                "timestamp": data["ts"].cast(pa.timestamp("ms", tz="UTC")),
                "properties": data["properties"],
                "traits": data["traits"],
                "context": data["context"],
            },
            schema=EVENT_SCHEMA,
        )


def event_blocks(
    world: World,
    facts: MonthFacts,
    prefix: str,
    messages: Sequence[MessageBatch] = (),
    *,
    block_accounts: int,
) -> Iterator[pa.Table]:
    """The month's events in blocks of *block_accounts* consecutive account numbers.

    Each block is sorted by time and numbered on from the one before, so message ids stay
    unique; the CRM funnel's deals and leads (prospects, not yet accounts) are split evenly
    over the blocks, as month 0 carries the deals of every account won before it. Random
    draws are made for the whole month before the first block, so the events do not depend
    on the block size, only their order in the file does. Memory holds one block of events.
    """
    draws, signup_gap = _funnel_draws(world, facts)
    blocks = -(-max(world.state.n, 1) // block_accounts)
    first_id = 0
    for k in range(blocks):
        b = _Batch()
        lo = k * block_accounts
        opps = slice(len(facts.opp_won) * k // blocks, len(facts.opp_won) * (k + 1) // blocks)
        n_extra = len(facts.extra_lead_ts)
        extras = slice(n_extra * k // blocks, n_extra * (k + 1) // blocks)
        _add_funnel(b, world, facts, draws, opps, extras)
        _add_accounts(b, world, facts, messages, signup_gap, lo, lo + block_accounts)
        table = b.table(prefix, facts.month, first_id)
        first_id += table.num_rows
        yield table


class _FunnelDraws(NamedTuple):
    opp_channel: Ints
    extra_channel: Ints
    tracked: npt.NDArray[np.bool_]  # deals whose buyer's web visits are tracked
    extra_tracked: npt.NDArray[np.bool_]
    visits: WebVisits  # visitors index the tracked deals, then the tracked extra leads


def _web_rng(facts: MonthFacts) -> np.random.Generator:
    """The month's generator of web draws: its own, so the world's draws stay as they were."""
    return np.random.default_rng(
        [facts.month, int(facts.opp_close_ts.sum() + facts.extra_lead_ts.sum()) % 2**62]
    )


def _draw_channels(
    web_rng: np.random.Generator, acq: AcquisitionParams, facts: MonthFacts
) -> tuple[Ints, Ints]:
    mix = np.asarray(acq.channel_mix)
    opp_channel = web_rng.choice(len(CHANNELS), len(facts.opp_won), p=mix).astype(np.int64)
    extra_channel = web_rng.choice(len(CHANNELS), len(facts.extra_lead_prospect), p=mix).astype(
        np.int64
    )
    return opp_channel, extra_channel


def lead_channels(config: SimulationConfig, facts: MonthFacts) -> tuple[Ints, Ints]:
    """The channel (index into :data:`CHANNELS`) of each lead of the month's deals and of
    each of its other leads: the first web draws, the same as the events carry."""
    return _draw_channels(_web_rng(facts), config.acquisition, facts)


def _funnel_draws(world: World, facts: MonthFacts) -> tuple[_FunnelDraws, Ints]:
    """The month's web draws, and each new user's seconds from their signup page view to their
    signup: all drawn before any block, so the events do not depend on the block size."""
    acq = world.config.acquisition
    won = facts.opp_won
    web_rng = _web_rng(facts)
    opp_channel, extra_channel = _draw_channels(web_rng, acq, facts)
    # anonymous visits before the lead: every buyer's, and a share of the others'
    tracked = won | (web_rng.random(len(won)) < acq.anonymous_lead_share)
    extra_tracked = web_rng.random(len(extra_channel)) < acq.anonymous_lead_share
    visits = web_visits(
        web_rng,
        np.concatenate([facts.opp_lead_ts[tracked], facts.extra_lead_ts[extra_tracked]]),
        np.concatenate([opp_channel[tracked], extra_channel[extra_tracked]]),
        acq.web_pages_per_prospect,
        acq.web_visit_days,
    )
    signup_gap = np.asarray(web_rng.integers(60, 540, len(facts.new_users)), np.int64)
    return _FunnelDraws(opp_channel, extra_channel, tracked, extra_tracked, visits), signup_gap


def _funnel_slice(
    facts: MonthFacts, draws: _FunnelDraws, opps: slice, extras: slice
) -> tuple[MonthFacts, _FunnelDraws]:
    """The deals *opps* and extra leads *extras* alone, with the web visits of their visitors."""
    opp_fields = [f.name for f in dataclasses.fields(facts) if f.name.startswith("opp_")]
    part = dataclasses.replace(
        facts,
        **{name: getattr(facts, name)[opps] for name in opp_fields},
        extra_lead_ts=facts.extra_lead_ts[extras],
        extra_lead_prospect=facts.extra_lead_prospect[extras],
    )
    n_tracked = int(draws.tracked.sum())
    ta, tb = int(draws.tracked[: opps.start].sum()), int(draws.tracked[: opps.stop].sum())
    ea = n_tracked + int(draws.extra_tracked[: extras.start].sum())
    eb = n_tracked + int(draws.extra_tracked[: extras.stop].sum())
    v = draws.visits.visitor
    keep = ((v >= ta) & (v < tb)) | ((v >= ea) & (v < eb))
    visitor = np.where(v[keep] < tb, v[keep] - ta, v[keep] - ea + (tb - ta))
    visits = WebVisits(
        draws.visits.ts[keep], visitor.astype(np.int64), draws.visits.page[keep],
        draws.visits.first[keep],
    )  # fmt: skip
    return part, _FunnelDraws(
        draws.opp_channel[opps],
        draws.extra_channel[extras],
        draws.tracked[opps],
        draws.extra_tracked[extras],
        visits,
    )


def _add_funnel(
    b: _Batch, world: World, whole: MonthFacts, draws: _FunnelDraws, opps: slice, extras: slice
) -> None:
    """The CRM funnel, web visits and lost trials of the deals *opps* and leads *extras*."""
    cfg: SimulationConfig = world.config
    facts, (opp_channel, extra_channel, tracked, extra_tracked, visits) = _funnel_slice(
        whole, draws, opps, extras
    )

    # --- the CRM funnel, as a CRM-to-Segment sync sends it (see docs/simulator.md)
    won = facts.opp_won
    group = pc.if_else(
        pa.array(won), account_id(np.maximum(facts.opp_account, 0)), prospect_id(facts.opp_prospect)
    )
    contact_email = pc.if_else(
        pa.array(won),
        user_email(world, np.maximum(facts.opp_contact_user, 0)),
        _prospect_email(facts.opp_prospect),
    )
    opp = _ids("deal_", facts.opp_id, 7)
    lead = _ids("lead_", facts.opp_prospect, 7)
    acq = cfg.acquisition
    lead_props = _join(
        '{"lead_id":"',
        lead,
        '","lead_source":"',
        _pick(CHANNELS, opp_channel),
        '","email":"',
        contact_email,
        '"}',
    )
    web_prospect = np.concatenate(
        [facts.opp_prospect[tracked], facts.extra_lead_prospect[extra_tracked]]
    )
    web_channel = np.concatenate([opp_channel[tracked], extra_channel[extra_tracked]])
    for landing in (True, False):
        idx = np.flatnonzero(visits.first == landing)
        _add_pages(
            b,
            visits.ts[idx],
            anonymous_id("p", web_prospect[visits.visitor[idx]]),
            visits.page[idx],
            web_channel[visits.visitor[idx]] if landing else None,
        )
    b.add(
        facts.opp_lead_ts,
        "track",
        "Lead Created",
        None,
        group,
        lead_props,
        context_tail=_CRM_CONTEXT,
    )
    qualified = (facts.opp_lead_ts + facts.opp_created_ts) // 2
    b.add(qualified, "track", "Lead Qualified", None, group, lead_props, context_tail=_CRM_CONTEXT)
    amount = _num(facts.opp_amount)
    opp_props = _join(
        '{"opportunity_id":"',
        opp,
        '","amount":',
        amount,
        ',"currency":"USD","stage":"discovery","email":"',
        contact_email,
        '"}',
    )
    b.add(
        facts.opp_created_ts,
        "track",
        "Opportunity Created",
        None,
        group,
        opp_props,
        context_tail=_CRM_CONTEXT,
    )
    stages = ("discovery", "demo", "proposal", "negotiation")
    for k in range(1, len(stages)):
        reached = facts.opp_stage_ts[:, k] >= 0
        idx = np.flatnonzero(reached)
        props = _join(
            '{"opportunity_id":"',
            opp.take(idx),
            f'","stage":"{stages[k]}","previous_stage":"{stages[k - 1]}","amount":',
            amount.take(idx),
            ',"email":"',
            contact_email.take(idx),
            '"}',
        )
        b.add(
            facts.opp_stage_ts[idx, k],
            "track",
            "Opportunity Stage Changed",
            None,
            group.take(idx),
            props,
            context_tail=_CRM_CONTEXT,
        )
    for flag, name in ((won, "Opportunity Won"), (~won, "Opportunity Lost")):
        idx = np.flatnonzero(flag)
        props = _join(
            '{"opportunity_id":"',
            opp.take(idx),
            '","amount":',
            amount.take(idx),
            ',"currency":"USD","email":"',
            contact_email.take(idx),
            '"}',
        )
        b.add(
            facts.opp_close_ts[idx],
            "track",
            name,
            None,
            group.take(idx),
            props,
            context_tail=_CRM_CONTEXT,
        )
    extra_email = _prospect_email(facts.extra_lead_prospect)
    extra_props = _join(
        '{"lead_id":"',
        _ids("lead_", facts.extra_lead_prospect, 7),
        '","lead_source":"',
        _pick(CHANNELS, extra_channel),
        '","email":"',
        extra_email,
        '"}',
    )
    b.add(
        facts.extra_lead_ts,
        "track",
        "Lead Created",
        None,
        prospect_id(facts.extra_lead_prospect),
        extra_props,
        context_tail=_CRM_CONTEXT,
    )

    # --- trials that did not convert: the deal is lost, no subscription follows
    lost = np.flatnonzero(~won & _lost_trials(world, facts.opp_prospect))
    lost_end = facts.opp_close_ts[lost]
    _add_trials(
        b,
        lost_end - acq.trial_days * 86_400,
        lost_end,
        None,
        anonymous_id("p", facts.opp_prospect[lost]),
        group.take(lost),
        _s(["starter"] * len(lost)),
    )


def _add_accounts(
    b: _Batch,
    world: World,
    facts: MonthFacts,
    messages: Sequence[MessageBatch],
    signup_gap: Ints,
    lo: int,
    hi: int,
) -> None:
    """The events of accounts *lo* to *hi* (excluded): lifecycle, usage, billing, messages."""
    cfg: SimulationConfig = world.config
    s = world.state
    acc_of = world.users.account

    def mine(accounts: Ints) -> npt.NDArray[np.bool_]:
        return np.asarray((accounts >= lo) & (accounts < hi), np.bool_)

    won = facts.opp_won

    # --- new accounts: Account Created and a group call from their first user
    new = facts.new_accounts[mine(facts.new_accounts)]
    if len(new):
        first = s.champion[new]
        gid = account_id(new)
        plan = _pick(PLANS, s.plan[new])
        # a trial's account exists from the trial's start; its subscription from its end
        trial = trial_accounts(world, new)
        trial_start, trial_end = trial_span(world, new)
        opened = np.where(trial, trial_start, s.start_ts[new])
        ti = np.flatnonzero(trial)
        _add_trials(
            b, trial_start[ti], trial_end[ti], user_id(first[ti]), None, gid.take(ti), plan.take(ti)
        )
        b.add(
            opened,
            "track",
            "Account Created",
            user_id(first),
            gid,
            _join('{"account_name":"', account_name(new), '"}'),
        )
        traits = _join(
            '{"name":"',
            account_name(new),
            '","industry":"',
            _pick(INDUSTRIES, new * 3),
            '","country":"',
            _pick(_COUNTRIES, new * 7),
            '","timezone":"',
            _pick(_ZONES, new * 7),
            '","plan":"',
            plan,
            '","employees":',
            _num(s.seats[new] * 8 + 5),
            "}",
        )
        b.add(opened + 1, "group", None, user_id(first), gid, None, traits)

    # --- customers from before the window: the product identifies them on their first visit
    if facts.month == 0:
        top = min(hi, s.n)
        old = lo + np.flatnonzero(s.start_ts[lo:top] < facts.start).astype(np.int64)
        ou = np.flatnonzero(np.isin(acc_of, old)).astype(np.int64)
        stamp_u = facts.start + (ou * 7919) % (3 * 86_400)
        traits = _join(
            '{"email":"',
            user_email(world, ou),
            '","name":"',
            user_name(ou),
            '","title":"',
            _pick(_TITLES, ou),
            '"}',
        )
        b.add(stamp_u, "identify", None, user_id(ou), account_id(acc_of[ou]), None, traits)
        gtraits = _join(
            '{"name":"',
            account_name(old),
            '","industry":"',
            _pick(INDUSTRIES, old * 3),
            '","country":"',
            _pick(_COUNTRIES, old * 7),
            '","timezone":"',
            _pick(_ZONES, old * 7),
            '","plan":"',
            _pick(PLANS, s.plan[old]),
            '"}',
        )
        b.add(
            facts.start + (old * 104729) % 86_400,
            "group",
            None,
            user_id(world.first_user(old)),
            account_id(old),
            None,
            gtraits,
        )

    # --- new users: identify, Signed Up, and the invite that brought them
    keep = mine(acc_of[facts.new_users])
    nu, inviter = facts.new_users[keep], facts.new_user_inviter[keep]
    if len(nu):
        uacc = acc_of[nu]
        uid, gid = user_id(nu), account_id(uacc)
        created = world.users.created_ts[nu]
        # a trial's buyer signs up when the trial starts
        trial_buyer = trial_accounts(world, uacc) & (inviter < 0) & (created == s.start_ts[uacc])
        created = np.where(trial_buyer, trial_span(world, uacc)[0], created)
        traits = _join(
            '{"email":"',
            user_email(world, nu),
            '","name":"',
            user_name(nu),
            '","title":"',
            _pick(_TITLES, nu),
            '"}',
        )
        # the browser that signs up: a buyer's is the one that visited before the lead
        buyers = facts.opp_contact_user[won]
        order = np.argsort(buyers, kind="stable")
        at = np.minimum(np.searchsorted(buyers[order], nu), max(len(buyers) - 1, 0))
        is_buyer = (
            (buyers[order][at] == nu) & (inviter < 0)
            if len(buyers)
            else np.zeros(len(nu), np.bool_)
        )
        buyer_prospect = facts.opp_prospect[won][order][at] if len(buyers) else nu
        anon = pc.if_else(
            pa.array(is_buyer), anonymous_id("p", buyer_prospect), anonymous_id("u", nu)
        )
        signup_ts = created - signup_gap[keep]  # after any invite
        _add_pages(b, signup_ts, anon, np.full(len(nu), _SIGNUP_PAGE, np.int64), None)
        b.add(created, "identify", None, uid, gid, None, traits, anonymous=anon)
        invited = inviter >= 0
        kind = pc.if_else(pa.array(invited), "invited", "organic")
        b.add(created + 1, "track", "Signed Up", uid, gid, _join('{"type":"', kind, '"}'))
        inv = np.flatnonzero(invited)
        b.add(
            created[inv] - 600,
            "track",
            "Invite Sent",
            user_id(inviter[inv]),
            gid.take(inv),
            _join('{"invitee_email":"', user_email(world, nu[inv]), '","invitee_role":"member"}'),
        )
    keep = mine(acc_of[facts.removed_users])
    removed = facts.removed_users[keep]
    if len(removed):
        b.add(
            facts.removed_ts[keep],
            "track",
            "Account Removed User",
            user_id(removed),
            account_id(acc_of[removed]),
            _s(["{}"] * len(removed)),
        )

    # --- onboarding milestones, done by the account's first user
    keep = mine(facts.milestone_account)
    if keep.any():
        reached = facts.milestone_account[keep]
        b.add(
            facts.milestone_ts[keep],
            "track",
            _pick(cfg.onboarding.milestones, facts.milestone_index[keep]),
            user_id(world.first_user(reached)),
            account_id(reached),
            _s(["{}"] * len(reached)),
        )

    # --- usage
    keep = mine(acc_of[facts.session_user])
    session_user = facts.session_user[keep]
    b.add(
        facts.session_ts[keep],
        "track",
        "Signed In",
        user_id(session_user),
        account_id(acc_of[session_user]),
        _s(["{}"] * len(session_user)) if len(session_user) else None,
    )
    keep = mine(acc_of[facts.feature_user])
    feature_user = facts.feature_user[keep]
    if len(feature_user):
        props = _join('{"feature":"', _pick(cfg.usage.features, facts.feature_index[keep]), '"}')
        b.add(
            facts.feature_ts[keep],
            "track",
            "Feature Used",
            user_id(feature_user),
            account_id(acc_of[feature_user]),
            props,
        )

    # --- seat changes, as the product's billing page reports them
    keep = mine(facts.change_account)
    ca = facts.change_account[keep]
    if len(ca):
        price = world.price[s.plan[ca]] * (1.0 - s.discount[ca])
        props = _join(
            '{"plan":"',
            _pick(PLANS, s.plan[ca]),
            '","seats":',
            _num(facts.change_seats_after[keep]),
            ',"mrr":',
            _num(facts.change_seats_after[keep] * price),
            ',"previous_mrr":',
            _num(facts.change_seats_before[keep] * price),
            ',"currency":"USD","interval":"',
            pc.if_else(pa.array(s.annual[ca]), "year", "month"),
            '","subscription_id":"',
            _ids("sub_", ca, 6),
            '"}',
        )
        b.add(
            facts.change_ts[keep],
            "track",
            "Subscription Changed",
            user_id(np.where(s.champion[ca] >= 0, s.champion[ca], world.first_user(ca))),
            account_id(ca),
            props,
        )

    # --- NPS
    keep = mine(acc_of[facts.nps_user])
    nps_user = facts.nps_user[keep]
    if len(nps_user):
        props = _join('{"score":', _num(facts.nps_score[keep]), "}")
        b.add(
            facts.nps_ts[keep],
            "track",
            "NPS Submitted",
            user_id(nps_user),
            account_id(acc_of[nps_user]),
            props,
        )

    # --- what tenure's delivery channels report back about the month's actions
    for batch in messages:
        keep = mine(batch.accounts)
        b.add(
            batch.ts[keep],
            "track",
            batch.event,
            user_id(batch.users[keep]),
            account_id(batch.accounts[keep]),
            batch.properties.filter(pa.array(keep)),
            context_tail=_TENURE_CONTEXT,
        )
