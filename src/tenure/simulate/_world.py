"""The latent world: accounts whose hidden state evolves a month at a time.

Everything is a numpy array over accounts (or users, tickets, invoices), so a
month of 100k accounts is a few dozen vectorized operations. :meth:`World.advance`
runs one month and returns what happened as plain arrays (:class:`MonthFacts`);
turning facts into events and exports is someone else's job (``_emit.py``).

The state is kept in one place (:class:`AccountState`) and each month reads it
at the month's start, draws what happens, and writes the next state. That is
the seam where a later ``step(actions)`` plugs in: an action changes state
(or a hazard term) before the month's draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tenure.simulate._config import SimulationConfig

__all__ = [
    "SECONDS_PER_DAY",
    "AccountState",
    "MonthFacts",
    "World",
    "compose_hazard",
    "month_bounds",
    "sigmoid",
]

F = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

SECONDS_PER_DAY = 86_400
_STAGES = ("discovery", "demo", "proposal", "negotiation")


def month_bounds(config: SimulationConfig, month: int) -> tuple[int, int]:
    """Unix seconds of the first instant of *month* and of the next one."""
    base = np.datetime64(config.start, "M") + month
    start = int(base.astype("datetime64[s]").astype(np.int64))
    end = int((base + 1).astype("datetime64[s]").astype(np.int64))
    return start, end


def sigmoid(x: F) -> F:
    return 1.0 / (1.0 + np.exp(-x))


def compose_hazard(
    logit: F, annual: B, renewal: B, involuntary: F, renewal_months_equivalent: float
) -> F:
    """The month's churn hazard from the voluntary logit: annual plans churn only at renewal,
    where a year of monthly hazard applies; an unrecovered failed payment adds *involuntary*."""
    voluntary = sigmoid(logit)
    voluntary = np.where(
        annual,
        np.where(renewal, 1 - (1 - voluntary) ** renewal_months_equivalent, 0.0),
        voluntary,
    )
    return np.asarray(1 - (1 - voluntary) * (1 - involuntary), np.float64)


@dataclass
class AccountState:
    """Hidden and billing state of every account acquired so far (index = account number)."""

    capacity: int
    #: How many onboarding milestones there are (columns of ``milestone_ts``).
    milestones: int = 0
    n: int = 0
    fit: F = field(init=False)
    engagement: F = field(init=False)
    price_sensitivity: F = field(init=False)
    health: F = field(init=False)
    plan: Ints = field(init=False)
    annual: B = field(init=False)
    seats: Ints = field(init=False)
    start_ts: Ints = field(init=False)  # when the subscription started (may precede the window)
    billing_day: Ints = field(init=False)  # day of month (0-27) invoices are issued
    churn_ts: Ints = field(init=False)  # -1 while a customer
    churn_involuntary: B = field(init=False)
    champion: Ints = field(init=False)  # user number of the champion, -1 while there is none
    champion_lost_months: Ints = field(init=False)  # months since the champion left; -1 never
    usage_log_ratio: F = field(init=False)  # last month's sessions vs the account's norm
    open_tickets: Ints = field(init=False)  # unsolved at the end of last month
    failed_unrecovered: B = field(init=False)  # last month's charge failed for good
    revenue: F = field(init=False)  # invoiced and paid within the window
    discounted_revenue: F = field(init=False)  # the same, discounted to the acquisition month
    discount: F = field(init=False)  # price reduction (0..1) from a discount offer
    discount_until: Ints = field(init=False)  # first month the discount no longer applies
    #: (account, milestone) → when the account reaches it, -1 never
    milestone_ts: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        n = self.capacity
        self.milestone_ts = np.full((n, self.milestones), -1, np.int64)
        for name in ("fit", "engagement", "price_sensitivity", "health", "usage_log_ratio"):
            setattr(self, name, np.zeros(n))
        for name in ("revenue", "discounted_revenue", "discount"):
            setattr(self, name, np.zeros(n))
        for name in ("plan", "seats", "start_ts", "billing_day", "open_tickets", "discount_until"):
            setattr(self, name, np.zeros(n, np.int64))
        for name in ("churn_ts", "champion", "champion_lost_months"):
            setattr(self, name, np.full(n, -1, np.int64))
        for name in ("annual", "churn_involuntary", "failed_unrecovered"):
            setattr(self, name, np.zeros(n, np.bool_))

    def mrr(self, accounts: Ints, price: F) -> F:
        list_price = self.seats[accounts] * price[self.plan[accounts]]
        return np.asarray(list_price * (1.0 - self.discount[accounts]), np.float64)


@dataclass
class Users:
    """Product users; a user number indexes every array. Seats are users."""

    account: Ints = field(default_factory=lambda: np.zeros(0, np.int64))
    activity: F = field(default_factory=lambda: np.zeros(0))
    active: B = field(default_factory=lambda: np.zeros(0, np.bool_))
    created_ts: Ints = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n(self) -> int:
        return len(self.account)

    def add(self, account: Ints, created_ts: Ints, rng: np.random.Generator) -> Ints:
        first = self.n
        self.account = np.concatenate([self.account, account])
        self.activity = np.concatenate([self.activity, rng.gamma(2.0, 0.5, len(account))])
        self.active = np.concatenate([self.active, np.ones(len(account), np.bool_)])
        self.created_ts = np.concatenate([self.created_ts, created_ts])
        return np.arange(first, self.n, dtype=np.int64)


@dataclass
class MonthFacts:
    """What happened in one month, as arrays. Times are Unix seconds."""

    month: int
    start: int
    end: int
    # opportunities that closed this month (won ones became accounts)
    opp_id: Ints
    opp_account: Ints  # the account number for won deals, -1 for lost prospects
    opp_prospect: Ints  # prospect number (group id of lost deals)
    opp_won: B
    opp_amount: F
    opp_lead_ts: Ints
    opp_created_ts: Ints
    opp_stage_ts: npt.NDArray[np.int64]  # (n, 4) stage entry times, -1 if never reached
    opp_close_ts: Ints
    opp_p_win: F
    opp_contact_user: Ints  # user number of the buyer for won deals, -1 for lost ones
    extra_lead_ts: Ints  # leads that never became opportunities
    extra_lead_prospect: Ints
    new_accounts: Ints  # accounts whose subscription started this month
    new_users: Ints  # users created this month (signup, seat expansion)
    new_user_inviter: Ints  # user who invited them, -1 for the account's first user
    removed_users: Ints
    removed_ts: Ints
    session_user: Ints
    session_ts: Ints
    feature_user: Ints
    feature_ts: Ints
    feature_index: Ints
    ticket_account: Ints
    ticket_user: Ints
    ticket_created_ts: Ints
    ticket_solved_ts: Ints  # -1 when never solved
    ticket_priority: Ints
    ticket_csat: Ints  # -1 unrated, 0 bad, 1 good
    milestone_account: Ints  # onboarding milestones reached this month
    milestone_ts: Ints
    milestone_index: Ints  # index into the config's onboarding milestones
    invoice_account: Ints
    invoice_ts: Ints
    invoice_amount: F
    invoice_failed: B
    invoice_recovered: B
    nps_user: Ints
    nps_ts: Ints
    nps_score: Ints
    change_account: Ints
    change_ts: Ints
    change_seats_before: Ints
    change_seats_after: Ints
    churned: Ints
    # ground truth, one row per account that was a customer at some point of the month
    truth_account: Ints
    truth_hazard: F
    truth_health: F
    truth_engagement: F
    truth_mrr: F
    truth_champion: B
    truth_open_tickets: Ints
    # the hazard's parts, for counterfactuals: the voluntary logit before any action
    # (noise included), the plan's renewal state and the involuntary hazard
    truth_logit: F
    truth_annual: B
    truth_renewal: B
    truth_involuntary: F
    truth_hazard_untreated: F  # the hazard had no action been taken
    truth_churned_untreated: B  # whether the account would have churned with no action


class World:
    """A simulated company. Create it, then call :meth:`advance` once per month in order."""

    def __init__(
        self,
        config: SimulationConfig,
        rng: np.random.Generator,
        onboarding_rng: np.random.Generator | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        #: Milestone draws come from their own stream: they leave the world's draws as
        #: they were (by default one spawned from *rng*'s seed, not drawn from *rng*).
        self.onboarding_rng = onboarding_rng or np.random.default_rng(
            rng.bit_generator.seed_seq.spawn(1)[0]  # type: ignore[attr-defined]
        )
        acq = config.acquisition
        self.price = np.asarray(acq.seat_price, np.float64)
        self.state = AccountState(config.accounts, len(config.onboarding.milestones))
        self.users = Users()
        self.month = 0
        #: each account's churn hazard in the latest month (the true model's current risk)
        self.last_hazard = np.zeros(config.accounts)
        self.prospects = 0
        self.opportunities = 0
        initial = round(config.accounts * acq.initial_customer_fraction)
        remaining = config.accounts - initial
        # new logos arrive at a steady pace; the first months absorb the rounding
        self.wins_per_month = np.diff(
            np.floor(np.linspace(0, remaining, config.months + 1)).astype(np.int64)
        )
        if initial:
            start, _ = month_bounds(config, 0)
            tenure = rng.integers(1, acq.initial_max_tenure_months + 1, initial)
            started = (
                start
                - tenure * 30 * SECONDS_PER_DAY
                - rng.integers(0, 30, initial) * SECONDS_PER_DAY
            )
            self._acquire(self._draw_wins(initial)[0], started.astype(np.int64))

    # ------------------------------------------------------------------ acquisition
    def _draw_prospects(self, n: int) -> tuple[F, F, F]:
        acq = self.config.acquisition
        fit = self.rng.standard_normal(n)
        price = self.rng.beta(2.0, 5.0, n)
        logit = (
            acq.win_logit_intercept
            + acq.win_fit_effect * fit
            - acq.win_price_effect * (price - 0.3)
        )
        return fit, price, sigmoid(logit)

    def _draw_wins(self, wins: int) -> tuple[tuple[F, F], F, F, F, B]:
        """Prospects in order until *wins* of them are won: (won latents), all fit/price/p/won."""
        fits, prices, probs, won = [], [], [], []
        count = 0
        while count < wins:
            batch = max(64, int((wins - count) * 6))
            fit, price, p = self._draw_prospects(batch)
            w = self.rng.random(batch) < p
            cum = np.cumsum(w)
            if count + int(cum[-1]) >= wins:
                cut = int(np.searchsorted(cum, wins - count)) + 1
                fit, price, p, w = fit[:cut], price[:cut], p[:cut], w[:cut]
            fits.append(fit)
            prices.append(price)
            probs.append(p)
            won.append(w)
            count += int(w.sum())
        if not fits:
            empty = np.zeros(0)
            return (empty, empty), empty, empty, empty, np.zeros(0, np.bool_)
        fit_all, price_all = np.concatenate(fits), np.concatenate(prices)
        p_all, won_all = np.concatenate(probs), np.concatenate(won)
        return (fit_all[won_all], price_all[won_all]), fit_all, price_all, p_all, won_all

    def _acquire(
        self, latents: tuple[F, F], start_ts: Ints, until: int | None = None
    ) -> tuple[Ints, Ints]:
        """New customer accounts starting at *start_ts*, their users created before *until*."""
        """Add accounts with the given latents; return (account numbers, their first users)."""
        cfg, s, rng = self.config, self.state, self.rng
        fit, price = latents
        n = len(fit)
        idx = np.arange(s.n, s.n + n, dtype=np.int64)
        s.n += n
        s.fit[idx] = fit
        s.price_sensitivity[idx] = price
        s.engagement[idx] = rng.normal(0.0, 0.5, n)
        h = cfg.health
        s.health[idx] = (
            h.fit_weight * fit + h.engagement_weight * s.engagement[idx] + rng.normal(0, 0.5, n)
        )
        acq = cfg.acquisition
        s.plan[idx] = rng.choice(3, size=n, p=np.asarray(acq.plan_mix))
        median = np.asarray(acq.seats_median)[s.plan[idx]]
        s.seats[idx] = np.maximum(1, np.round(median * np.exp(rng.normal(0, acq.seats_sigma, n))))
        s.annual[idx] = rng.random(n) < np.asarray(acq.annual_share)[s.plan[idx]]
        s.start_ts[idx] = start_ts
        s.billing_day[idx] = (start_ts // SECONDS_PER_DAY) % 28
        # one user per seat; the first user is the buyer and the champion
        owners = np.repeat(idx, s.seats[idx])
        created = np.repeat(start_ts, s.seats[idx]) + rng.integers(
            0, 3 * SECONDS_PER_DAY, len(owners)
        )
        if until is not None:  # a deal closed on the month's last day onboards within it
            # (a minute's margin: sign-up events follow their user's creation by seconds)
            created = np.minimum(created, until - 60)
        firsts = (np.cumsum(s.seats[idx]) - s.seats[idx]).astype(np.int64)  # empty when n == 0
        created[firsts] = start_ts  # the buyer exists from the start
        users = self.users.add(owners, created, rng)
        s.champion[idx] = users[firsts]
        self._onboard(idx)
        return idx, users

    def _onboard(self, idx: Ints) -> None:
        """When each new account will reach each onboarding milestone, if ever."""
        ob, s, rng = self.config.onboarding, self.state, self.onboarding_rng
        k = len(ob.milestones)
        if not len(idx) or not k:
            return
        fit, engagement = s.fit[idx, None], s.engagement[idx, None]
        logit = np.asarray(ob.reach_logit)[None, :] + ob.fit_weight * fit
        logit = logit + ob.engagement_weight * engagement
        reached = rng.random((len(idx), k)) < 1.0 / (1.0 + np.exp(-logit))
        median = np.asarray(ob.median_days)[None, :] * np.exp(-ob.speed_elasticity * engagement)
        days = median * rng.lognormal(0.0, ob.days_sigma, (len(idx), k))
        reached &= days < ob.within_days
        at = s.start_ts[idx, None] + (days * SECONDS_PER_DAY).astype(np.int64)
        s.milestone_ts[idx] = np.where(reached, at, -1)

    def _milestones(self, start: int, end: int) -> tuple[Ints, Ints, Ints]:
        """The milestones reached this month by accounts still customers then: account,
        time, milestone index. (Those of customers from before the window, reached
        before it, are not written: the product's tracking starts with the window.)"""
        s = self.state
        when = s.milestone_ts[: s.n]
        due = (when >= start) & (when < end)
        churn = s.churn_ts[: s.n, None]
        due &= (churn < 0) | (when < churn)
        account, index = np.nonzero(due)
        return (
            account.astype(np.int64),
            when[account, index].astype(np.int64),
            index.astype(np.int64),
        )

    # ------------------------------------------------------------------ the month
    def advance(self, logit_shift: F | None = None) -> MonthFacts:
        """Run the next month. *logit_shift* (one value per account number, or None) moves
        this month's voluntary churn logit: the treatment effect of the month's actions."""
        cfg, s, rng, users = self.config, self.state, self.rng, self.users
        m = self.month
        start, end = month_bounds(cfg, m)
        span = end - start
        s.discount[: s.n][s.discount_until[: s.n] <= m] = 0.0

        # 1. who is a customer at the start of the month, and their hazard
        alive = np.flatnonzero(s.churn_ts[: s.n] < 0).astype(np.int64)
        ch = cfg.churn
        champion_gone = (s.champion[alive] < 0) | (
            (s.champion_lost_months[alive] >= 0) & (s.champion_lost_months[alive] < 3)
        )
        tenure_months = (start - s.start_ts[alive]) // (30 * SECONDS_PER_DAY)
        logit = (
            ch.intercept
            - ch.health * s.health[alive]
            - ch.usage_drop * np.minimum(s.usage_log_ratio[alive], 0.0)
            + ch.unresolved_tickets * np.log1p(s.open_tickets[alive])
            + ch.champion_lost * champion_gone
            + ch.price_sensitivity * s.price_sensitivity[alive]
            + ch.early_tenure * (tenure_months < 3)
            + rng.normal(0.0, ch.noise_sd, len(alive))
        )
        months_since_start = np.round((start - s.start_ts[alive]) / (30.44 * SECONDS_PER_DAY))
        renewal = (months_since_start % 12 == 0) & (months_since_start > 0)
        annual = s.annual[alive]
        involuntary = np.where(s.failed_unrecovered[alive], cfg.billing.involuntary_churn, 0.0)
        untreated = compose_hazard(
            logit, annual, renewal, involuntary, ch.renewal_months_equivalent
        )
        hazard = untreated
        if logit_shift is not None:
            hazard = compose_hazard(
                logit + logit_shift[alive],
                annual,
                renewal,
                involuntary,
                ch.renewal_months_equivalent,
            )
        u = rng.random(len(alive))
        churn_now = u < hazard
        churned_untreated = u < untreated
        churn_invol = churn_now & (rng.random(len(alive)) * hazard < involuntary)
        churn_at = start + rng.integers(0, span, len(alive))
        churned = alive[churn_now]
        s.churn_ts[churned] = churn_at[churn_now]
        s.churn_involuntary[churned] = churn_invol[churn_now]

        self.last_hazard[alive] = hazard
        truth_mrr = s.mrr(alive, self.price)
        truth = (alive, hazard, s.health[alive].copy(), s.engagement[alive].copy(), truth_mrr)
        truth_champion = s.champion[alive] >= 0
        truth_open = s.open_tickets[alive].copy()

        # 2. this month's new logos, with the deals that won (and lost) them
        funnel = self._funnel(m, start, end)
        new_accounts = funnel.pop("new_accounts")
        new_first_users = funnel.pop("new_users")

        # accounts active during some of the month: alive at start, or new this month
        active = np.concatenate([alive, new_accounts])
        live_from = np.maximum(s.start_ts[active], start)
        live_to = np.where(s.churn_ts[active] >= 0, s.churn_ts[active], end)
        share = np.clip((live_to - live_from) / span, 0.0, 1.0)
        pos = np.full(s.n, -1, np.int64)
        pos[active] = np.arange(len(active))

        # 3. usage: sessions per active user, Feature Used per session
        uc = cfg.usage
        u_idx = np.flatnonzero(users.active & (pos[users.account] >= 0)).astype(np.int64)
        u_acc = users.account[u_idx]
        u_share = share[pos[u_acc]]
        rate = (
            uc.sessions_per_user
            * users.activity[u_idx]
            * np.exp(uc.health_elasticity * s.health[u_acc] + s.engagement[u_acc])
            * u_share
            * (rng.random(len(u_idx)) < uc.active_share)
        )
        counts = rng.poisson(rate)
        session_user = np.repeat(u_idx, counts)
        s_acc = users.account[session_user]
        lo = np.maximum(live_from[pos[s_acc]], users.created_ts[session_user])
        hi = live_to[pos[s_acc]]
        session_ts = lo + (rng.random(len(session_user)) * np.maximum(hi - lo, 1)).astype(np.int64)
        # no session before the user exists or after the account's month ends
        keep = lo < hi
        session_user, s_acc, session_ts, hi = (
            session_user[keep],
            s_acc[keep],
            session_ts[keep],
            hi[keep],
        )
        n_feat = rng.poisson(uc.features_per_session, len(session_user))
        feature_user = np.repeat(session_user, n_feat)
        feature_ts = np.repeat(session_ts, n_feat) + rng.integers(30, 1800, len(feature_user))
        feature_ts = np.minimum(feature_ts, np.repeat(hi, n_feat) - 1)
        # breadth of adoption grows with engagement: index drawn from a geometric
        depth = np.clip(0.55 - 0.15 * s.engagement[users.account[feature_user]], 0.15, 0.9)
        feature_index = np.minimum(rng.geometric(depth) - 1, len(uc.features) - 1).astype(np.int64)
        expected = uc.sessions_per_user * uc.active_share * s.seats[active] * share
        sessions_per_acc = np.bincount(pos[s_acc], minlength=len(active))
        usage_ratio = np.log((sessions_per_acc + 1.0) / (expected + 1.0))

        # 4. support tickets
        sp = cfg.support
        t_rate = (
            sp.tickets_per_account
            * np.sqrt(s.seats[active])
            * np.exp(-sp.health_effect * s.health[active])
            * share
        )
        t_counts = rng.poisson(t_rate)
        ticket_account = np.repeat(active, t_counts)
        t_lo, t_hi = live_from[pos[ticket_account]], live_to[pos[ticket_account]]
        ticket_created = t_lo + (
            rng.random(len(ticket_account)) * np.maximum(t_hi - t_lo, 1)
        ).astype(np.int64)
        ticket_user = self._some_user(ticket_account)
        hours = sp.resolution_median_hours * np.exp(
            rng.normal(0, sp.resolution_sigma, len(ticket_account))
        )
        never = rng.random(len(ticket_account)) < sp.never_solved_share
        ticket_solved = np.where(never, -1, ticket_created + (hours * 3600).astype(np.int64))
        priority = rng.choice(4, size=len(ticket_account), p=[0.3, 0.5, 0.15, 0.05]).astype(
            np.int64
        )
        rated = (ticket_solved >= 0) & (rng.random(len(ticket_account)) < sp.csat_response_rate)
        good = rng.random(len(ticket_account)) < sigmoid(
            1.8 + 0.8 * s.health[ticket_account] - 0.5 * np.log(hours / 24)
        )
        csat = np.where(rated, good.astype(np.int64), -1)
        # unsolved at month end, over all of the account's tickets still open
        open_end = np.bincount(
            pos[ticket_account],
            weights=((ticket_solved < 0) | (ticket_solved >= end)),
            minlength=len(active),
        ).astype(np.int64)

        # 5. invoices: monthly plans every month, annual plans at each anniversary
        billing_ts = start + s.billing_day[active] * SECONDS_PER_DAY + 9 * 3600
        months_in = np.round((billing_ts - s.start_ts[active]) / (30.44 * SECONDS_PER_DAY))
        due = (
            (billing_ts >= s.start_ts[active])
            & (billing_ts < live_to)
            & (~s.annual[active] | (months_in % 12 == 0))
        )
        inv_acc = active[due]
        inv_amount = s.mrr(inv_acc, self.price) * np.where(s.annual[inv_acc], 12.0, 1.0)
        bp = cfg.billing
        failed = rng.random(len(inv_acc)) < bp.failure_rate
        recovered = failed & (rng.random(len(inv_acc)) < bp.recovery_rate)
        paid = ~failed | recovered
        s.revenue[inv_acc] += inv_amount * paid
        acq_month = np.maximum(
            (s.start_ts[inv_acc] - month_bounds(cfg, 0)[0]) // (30 * SECONDS_PER_DAY), 0
        )
        disc = (1 + ch.discount_rate) ** (-(np.maximum(m - acq_month, 0)) / 12)
        s.discounted_revenue[inv_acc] += inv_amount * paid * disc

        # 6. NPS survey
        nps_user = np.zeros(0, np.int64)
        nps_ts = np.zeros(0, np.int64)
        nps_score = np.zeros(0, np.int64)
        sv = cfg.surveys
        if m % sv.every_months == sv.every_months - 1:
            cand = u_idx[rng.random(len(u_idx)) < sv.response_rate]
            c_acc = users.account[cand]
            lo = np.maximum(live_from[pos[c_acc]], users.created_ts[cand])
            hi = live_to[pos[c_acc]]
            ok = hi > lo
            nps_user, lo, hi, c_acc = cand[ok], lo[ok], hi[ok], c_acc[ok]
            nps_ts = lo + (rng.random(len(nps_user)) * (hi - lo)).astype(np.int64)
            raw = (
                sv.mean_score
                + sv.health_slope * s.health[c_acc]
                + rng.normal(0, sv.noise_sd, len(nps_user))
            )
            nps_score = np.clip(np.round(raw), 0, 10).astype(np.int64)

        # 7. seat changes for customers who stay the month
        staying = active[s.churn_ts[active] < 0]
        ex = cfg.expansion
        hx = s.health[staying] + 0.5 * s.engagement[staying]
        p_up = sigmoid(ex.expand_intercept + ex.expand_health * hx)
        p_down = sigmoid(
            ex.contract_intercept - ex.contract_health * hx + s.price_sensitivity[staying]
        )
        draw = rng.random(len(staying))
        up = draw < p_up
        down = ~up & (draw < p_up + p_down) & (s.seats[staying] > 1)
        change_account = np.concatenate([staying[up], staying[down]])
        before = s.seats[change_account].copy()
        grow = np.maximum(
            1, np.round(before[: up.sum()] * rng.uniform(*ex.expand_share, int(up.sum())))
        )
        shrink = np.maximum(
            1, np.round(before[up.sum() :] * rng.uniform(*ex.contract_share, int(down.sum())))
        )
        after = np.concatenate(
            [before[: up.sum()] + grow, np.maximum(1, before[up.sum() :] - shrink)]
        ).astype(np.int64)
        change_ts = np.maximum(start, s.start_ts[change_account]) + rng.integers(
            SECONDS_PER_DAY, max(span - SECONDS_PER_DAY, SECONDS_PER_DAY + 1), len(change_account)
        )
        change_ts = np.minimum(change_ts, end - 1)
        s.seats[change_account] = after
        added_acc = np.repeat(change_account[after > before], (after - before)[after > before])
        added_ts = np.repeat(change_ts[after > before], (after - before)[after > before])
        # (a minute's margin: sign-up events follow their user's creation by seconds)
        added_ts = np.minimum(
            added_ts + rng.integers(0, 2 * SECONDS_PER_DAY, len(added_acc)), end - 60
        )
        added = users.add(added_acc, added_ts, rng)
        inviter = self._some_user(added_acc, exclude_new_from=users.n - len(added))
        removed, removed_ts = self._remove_users(
            change_account[after < before],
            (before - after)[after < before],
            change_ts[after < before],
        )

        # 8. champions leave and are replaced
        hp = cfg.health
        has = staying[s.champion[staying] >= 0]
        leaves = has[rng.random(len(has)) < hp.champion_loss_rate]
        leave_ts = np.maximum(start, s.start_ts[leaves]) + rng.integers(0, span // 2, len(leaves))
        leave_ts = np.minimum(leave_ts, end - 1)
        gone_users = s.champion[leaves]
        users.active[gone_users] = False
        s.champion[leaves] = -1
        s.champion_lost_months[leaves] = 0
        s.health[leaves] -= hp.champion_loss_drag
        removed = np.concatenate([removed, gone_users])
        removed_ts = np.concatenate([removed_ts, leave_ts])
        vacant = staying[(s.champion[staying] < 0) & ~np.isin(staying, leaves)]
        filled = vacant[rng.random(len(vacant)) < hp.champion_replace_rate]
        s.champion[filled] = self._some_user(filled)
        s.champion_lost_months[staying] = np.where(
            s.champion_lost_months[staying] >= 0, s.champion_lost_months[staying] + 1, -1
        )
        s.champion_lost_months[leaves] = 0

        # 9. next month's state
        s.usage_log_ratio[active] = usage_ratio
        s.open_tickets[active] = open_end
        s.failed_unrecovered[active] = False
        s.failed_unrecovered[inv_acc[failed & ~recovered]] = True
        level = hp.fit_weight * s.fit[active] + hp.engagement_weight * s.engagement[active]
        s.health[active] = (
            level
            + hp.persistence * (s.health[active] - level)
            - hp.unresolved_ticket_drag * np.log1p(open_end)
            + rng.normal(0.0, hp.shock_sd, len(active))
        )
        s.engagement[active] += rng.normal(0.0, hp.engagement_drift_sd, len(active))
        users.active[users.account[np.isin(users.account, churned)]] = False

        milestone_account, milestone_ts, milestone_index = self._milestones(start, end)
        self.month += 1
        return MonthFacts(
            month=m,
            start=start,
            end=end,
            **funnel,
            new_accounts=new_accounts,
            new_users=np.concatenate([new_first_users, added]),
            new_user_inviter=np.concatenate([np.full(len(new_first_users), -1, np.int64), inviter]),
            removed_users=removed,
            removed_ts=removed_ts,
            session_user=session_user,
            session_ts=session_ts,
            feature_user=feature_user,
            feature_ts=feature_ts,
            feature_index=feature_index,
            ticket_account=ticket_account,
            ticket_user=ticket_user,
            ticket_created_ts=ticket_created,
            ticket_solved_ts=ticket_solved,
            ticket_priority=priority,
            ticket_csat=csat,
            milestone_account=milestone_account,
            milestone_ts=milestone_ts,
            milestone_index=milestone_index,
            invoice_account=inv_acc,
            invoice_ts=billing_ts[due],
            invoice_amount=inv_amount,
            invoice_failed=failed,
            invoice_recovered=recovered,
            nps_user=nps_user,
            nps_ts=nps_ts,
            nps_score=nps_score,
            change_account=change_account,
            change_ts=change_ts,
            change_seats_before=before,
            change_seats_after=after,
            churned=churned,
            truth_account=truth[0],
            truth_hazard=truth[1],
            truth_health=truth[2],
            truth_engagement=truth[3],
            truth_mrr=truth[4],
            truth_champion=truth_champion,
            truth_open_tickets=truth_open,
            truth_logit=logit,
            truth_annual=annual,
            truth_renewal=renewal,
            truth_involuntary=involuntary,
            truth_hazard_untreated=untreated,
            truth_churned_untreated=churned_untreated,
        )

    # ------------------------------------------------------------------ helpers
    def _funnel(self, m: int, start: int, end: int) -> dict[str, Any]:
        cfg, rng = self.config, self.rng
        acq = cfg.acquisition
        wins = int(self.wins_per_month[m])
        latents, _fit, _price, p_win, won = self._draw_wins(wins)
        n = len(won)
        close_ts = start + rng.integers(0, end - start, n)
        cycle = acq.sales_cycle_median_days * np.exp(rng.normal(0, acq.sales_cycle_sigma, n))
        lead_ts = close_ts - (cycle * SECONDS_PER_DAY).astype(np.int64)
        created_ts = lead_ts + ((close_ts - lead_ts) * 0.25).astype(np.int64)
        # lost deals die at a random stage; won ones pass through all of them
        reached = np.where(won, len(_STAGES), rng.integers(1, len(_STAGES) + 1, n))
        frac = np.linspace(0.25, 0.85, len(_STAGES))
        stage_ts = created_ts[:, None] + ((close_ts - created_ts)[:, None] * frac[None, :]).astype(
            np.int64
        )
        stage_ts[:, 0] = created_ts
        stage_ts = np.where(np.arange(len(_STAGES))[None, :] < reached[:, None], stage_ts, -1)
        new_accounts, new_users = self._acquire(
            latents, np.minimum(close_ts[won] + 3600, end - 120), until=end
        )
        account = np.full(n, -1, np.int64)
        account[won] = new_accounts
        contact = np.full(n, -1, np.int64)
        contact[won] = self.state.champion[new_accounts]
        prospect = np.arange(self.prospects, self.prospects + n, dtype=np.int64)
        self.prospects += n
        opp_id = np.arange(self.opportunities, self.opportunities + n, dtype=np.int64)
        self.opportunities += n
        mrr = np.zeros(n)
        mrr[won] = self.state.mrr(new_accounts, self.price)
        # a lost deal's value: what a typical deal of its size would have been
        mrr[~won] = rng.choice(mrr[won], int((~won).sum())) if won.any() else 300.0
        extra = rng.poisson(acq.unqualified_leads_per_opportunity * max(n, 1) if n else 0)
        extra_prospect = np.arange(self.prospects, self.prospects + extra, dtype=np.int64)
        self.prospects += extra
        return {
            "opp_id": opp_id,
            "opp_account": account,
            "opp_prospect": prospect,
            "opp_won": won,
            "opp_amount": np.round(mrr * 12, 2),
            "opp_lead_ts": lead_ts,
            "opp_created_ts": created_ts,
            "opp_stage_ts": stage_ts,
            "opp_close_ts": close_ts,
            "opp_p_win": p_win,
            "opp_contact_user": contact,
            "extra_lead_ts": start + rng.integers(0, end - start, extra),
            "extra_lead_prospect": extra_prospect,
            "new_accounts": new_accounts,
            "new_users": new_users,
        }

    def _some_user(self, accounts: Ints, exclude_new_from: int | None = None) -> Ints:
        """A random active user of each account (the account's first user when none is active)."""
        users = self.users
        limit = users.n if exclude_new_from is None else exclude_new_from
        if len(accounts) == 0:
            return np.zeros(0, np.int64)
        pool = np.flatnonzero(users.active[:limit]).astype(np.int64)
        order = np.argsort(users.account[pool], kind="stable")
        pool = pool[order]
        pool_acc = users.account[pool]
        first = np.searchsorted(pool_acc, accounts, side="left")
        count = np.searchsorted(pool_acc, accounts, side="right") - first
        pick = first + (self.rng.random(len(accounts)) * np.maximum(count, 1)).astype(np.int64)
        if len(pool) == 0:
            return self.first_user(accounts)
        chosen = pool[np.minimum(pick, len(pool) - 1)]
        return np.where(count > 0, chosen, self.first_user(accounts))

    def first_user(self, accounts: Ints) -> Ints:
        users = self.users
        order = np.argsort(users.account, kind="stable")
        pos = np.searchsorted(users.account[order], accounts)
        return np.asarray(order[np.minimum(pos, len(order) - 1)], np.int64)

    def _remove_users(self, accounts: Ints, counts: Ints, when: Ints) -> tuple[Ints, Ints]:
        """Deactivate the most recently added non-champion users of each account."""
        users, s = self.users, self.state
        if len(accounts) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        removed, stamps = [], []
        mask = np.isin(users.account, accounts) & users.active
        candidates = np.flatnonzero(mask)
        cand_acc = users.account[candidates]
        order = np.lexsort((-candidates, cand_acc))
        candidates, cand_acc = candidates[order], cand_acc[order]
        not_champion = candidates != s.champion[cand_acc]
        candidates, cand_acc = candidates[not_champion], cand_acc[not_champion]
        start = np.searchsorted(cand_acc, accounts, side="left")
        avail = np.searchsorted(cand_acc, accounts, side="right") - start
        take = np.minimum(counts, avail)
        offsets = np.repeat(start, take) + (
            np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
        )
        removed.append(candidates[offsets])
        stamps.append(np.repeat(when, take))
        out = np.concatenate(removed).astype(np.int64)
        users.active[out] = False
        return out, np.concatenate(stamps).astype(np.int64)
