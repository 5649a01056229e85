"""Interventions: the actions tenure delivers, who responds to them, and how.

Every account has a latent *response segment*, drawn once (from its own random
stream) with probabilities that lean on traits the data shows, exactly or
noisily: plan, seats, billing interval and industry exactly; fit and engagement
through usage, tickets and NPS. An action shifts the month's voluntary churn
logit by an amount set per segment and action type (``InterventionParams``), so
an uplift model fed the events can learn who to contact and who to leave alone.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenure.errors import NotFoundError
from tenure.simulate._config import ActionEffectParams, InterventionParams, SimulationConfig
from tenure.simulate._emit import INDUSTRIES, MessageBatch
from tenure.simulate._world import SECONDS_PER_DAY, World, sigmoid

__all__ = [
    "Action",
    "ActionType",
    "Deliveries",
    "ResponseSegment",
    "SegmentModel",
    "deliver",
    "effect_matrix",
]

F = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


class ActionType(enum.StrEnum):
    EMAIL = "email"
    IN_APP = "in_app"
    CSM_CALL = "csm_call"
    DISCOUNT = "discount"


ACTION_TYPES = tuple(ActionType)


class ResponseSegment(enum.StrEnum):
    PERSUADABLE = "persuadable"  # contact lowers churn
    SURE_THING = "sure_thing"  # stays either way
    LOST_CAUSE = "lost_cause"  # leaves either way
    SLEEPING_DOG = "sleeping_dog"  # contact raises churn


SEGMENTS = tuple(ResponseSegment)


class Action(BaseModel):
    """One action tenure delivered: to an account (its champion) or to one of its users."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ActionType
    account_id: str | None = None
    user_id: str | None = None
    #: Percent off the price, for discounts only (they last discount_months).
    discount_pct: float | None = Field(default=None, gt=0, lt=100)

    @model_validator(mode="after")
    def _one_target_and_discount_only_for_discounts(self) -> Action:
        problems = []
        if (self.account_id is None) == (self.user_id is None):
            problems.append("give exactly one of account_id (acct_…) and user_id (usr_…)")
        if (self.type is ActionType.DISCOUNT) != (self.discount_pct is not None):
            problems.append("discount_pct is required for a discount and only for a discount")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# Segment leanings on traits (log-odds, relative): modelling choices, documented in
# docs/simulator.md. Columns: persuadable, sure thing, lost cause, sleeping dog.
_INDUSTRY_PERSUADABLE = np.array([0.4, -0.2, 0.3, -0.4, 0.2, 0.0, -0.3])
assert len(_INDUSTRY_PERSUADABLE) == len(INDUSTRIES)
_CALIBRATION_SEED = 20_240_101  # the reference population is fixed: segments depend on config only
_CALIBRATION_SIZE = 20_000
# how segments show in messaging: open and click log-odds offsets
_OPEN_OFFSET = np.array([0.5, 0.2, -0.3, -1.0])
_CLICK_OFFSET = np.array([0.6, 0.0, -0.2, -0.5])
_OPEN_ENGAGEMENT = 0.8


def industry_index(accounts: Ints) -> Ints:
    """The industry the account's group traits report (see ``_emit.event_blocks``)."""
    return np.asarray((accounts * 3) % len(INDUSTRIES), np.int64)


def _scores(
    fit: F, price: F, engagement: F, plan: Ints, seats: Ints, annual: B, industry: Ints
) -> F:
    return np.column_stack(
        [
            0.7 * (plan == 1) + _INDUSTRY_PERSUADABLE[industry] + 1.0 * price,
            1.0 * fit + 0.8 * annual + 0.5 * (plan == 2),
            -1.0 * fit + 1.5 * price,
            -1.5 * engagement + 0.8 * (plan == 0) - 0.8 * annual - 0.3 * np.log(seats),
        ]
    )


def _softmax(x: F) -> F:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True), np.float64)


class SegmentModel:
    """Segment probabilities from traits, with intercepts calibrated to the configured shares.

    The intercepts are fitted once on a fixed reference population of prospects weighted by
    their win probability, so the shares hold among won accounts in expectation.
    """

    def __init__(self, config: SimulationConfig) -> None:
        acq = config.acquisition
        rng = np.random.default_rng(_CALIBRATION_SEED)
        n = _CALIBRATION_SIZE
        fit = rng.standard_normal(n)
        price = rng.beta(2.0, 5.0, n)
        weight = sigmoid(
            acq.win_logit_intercept
            + acq.win_fit_effect * fit
            - acq.win_price_effect * (price - 0.3)
        )
        plan = rng.choice(3, size=n, p=np.asarray(acq.plan_mix)).astype(np.int64)
        median = np.asarray(acq.seats_median)[plan]
        seats = np.maximum(1, np.round(median * np.exp(rng.normal(0, acq.seats_sigma, n))))
        annual = rng.random(n) < np.asarray(acq.annual_share)[plan]
        scores = _scores(
            fit,
            price,
            rng.normal(0.0, 0.5, n),
            plan,
            seats.astype(np.int64),
            annual,
            rng.integers(0, len(INDUSTRIES), n),
        )
        target = np.log(np.asarray(config.interventions.segment_shares))
        self.intercepts = np.zeros(len(SEGMENTS))
        for _ in range(200):
            share = np.average(_softmax(scores + self.intercepts), axis=0, weights=weight)
            gap = target - np.log(share)
            self.intercepts += gap
            if np.abs(gap).max() < 1e-4:
                break

    def draw(self, world: World, accounts: Ints, rng: np.random.Generator) -> Ints:
        s = world.state
        p = _softmax(
            _scores(
                s.fit[accounts],
                s.price_sensitivity[accounts],
                s.engagement[accounts],
                s.plan[accounts],
                s.seats[accounts],
                s.annual[accounts],
                industry_index(accounts),
            )
            + self.intercepts
        )
        u = rng.random(len(accounts))
        chosen = (u[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        return np.asarray(np.minimum(chosen, len(SEGMENTS) - 1), np.int64)


def _effects(params: ActionEffectParams) -> list[float]:
    return [params.persuadable, params.sure_thing, params.lost_cause, params.sleeping_dog]


def effect_matrix(params: InterventionParams) -> F:
    """Log-odds shift by action type (rows, in ActionType order) and segment (columns)."""
    return np.array(
        [_effects(p) for p in (params.email, params.in_app, params.csm_call, params.discount)]
    )


def action_costs(params: InterventionParams) -> F:
    return np.array(
        [params.email.cost, params.in_app.cost, params.csm_call.cost, params.discount.cost]
    )


_ACCOUNT = re.compile(r"acct_(\d+)")
_USER = re.compile(r"usr_(\d+)")


def _number(text: str, pattern: re.Pattern[str], limit: int) -> int:
    match = pattern.fullmatch(text)
    if match is None:
        return -1
    number = int(match.group(1)) - 1
    return number if 0 <= number < limit else -1


@dataclass(frozen=True, slots=True)
class Deliveries:
    """A month's actions resolved to numbers: one row per action, in the order given."""

    account: Ints
    user: Ints
    type: Ints  # index into ActionType
    discount: F  # fraction off the price (0 unless a discount)
    delivered: B  # the account was a customer at the start of the month

    @classmethod
    def resolve(cls, world: World, actions: Sequence[Action]) -> Deliveries:
        """Look the targets up; every unknown one is named in one :class:`NotFoundError`."""
        s, users = world.state, world.users
        account = np.full(len(actions), -1, np.int64)
        user = np.full(len(actions), -1, np.int64)
        unknown = []
        for i, action in enumerate(actions):
            if action.user_id is not None:
                user[i] = _number(action.user_id, _USER, users.n)
                if user[i] < 0:
                    unknown.append(action.user_id)
                else:
                    account[i] = users.account[user[i]]
            elif action.account_id is not None:
                account[i] = _number(action.account_id, _ACCOUNT, s.n)
                if account[i] < 0:
                    unknown.append(action.account_id)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (", …" if len(unknown) > 5 else "")
            raise NotFoundError(
                f"{len(unknown)} action(s) name no simulated account or user: {shown}; "
                f"so far the simulation has accounts acct_000001…acct_{s.n:06d} "
                f"and users usr_0000001…usr_{users.n:07d}",
                hint="act on accounts that exist by now (Simulation.customers lists them)",
            )
        has_champion = s.champion[np.maximum(account, 0)] >= 0
        recipient = np.where(
            user >= 0,
            user,
            np.where(has_champion, s.champion[np.maximum(account, 0)], world.first_user(account)),
        )
        kinds = np.array([ACTION_TYPES.index(a.type) for a in actions], np.int64)
        discount = np.array([(a.discount_pct or 0.0) / 100 for a in actions], np.float64)
        return cls(
            account=account,
            user=np.asarray(recipient, np.int64),
            type=kinds,
            discount=discount,
            delivered=s.churn_ts[account] < 0,
        )

    def applied(self, n_accounts: int) -> tuple[B, F]:
        """Which types each account received (accounts × types) and its best discount."""
        hit = np.zeros((n_accounts, len(ACTION_TYPES)), np.bool_)
        ok = self.delivered
        hit[self.account[ok], self.type[ok]] = True
        best = np.zeros(n_accounts)
        np.maximum.at(best, self.account[ok], self.discount[ok])
        return hit, best


def logit_shift(params: InterventionParams, segment: Ints, applied: B, discount: F) -> tuple[F, F]:
    """Per account: the total log-odds shift of what it received, and each type's effect.

    Each type counts once per account and month; a discount's effect scales with its size.
    """
    per_type = effect_matrix(params)[:, segment].T  # accounts × types
    scale = np.ones_like(per_type)
    scale[:, ACTION_TYPES.index(ActionType.DISCOUNT)] = discount / (
        params.discount_reference_pct / 100
    )
    return (per_type * scale * applied).sum(axis=1), per_type


def _props(channel: pa.Array, numbers: Ints, campaign: pa.Array, tail: str = "}") -> pa.Array:
    ids = pc.utf8_lpad(
        pc.cast(pa.array(numbers + 1, pa.int64()), pa.string()), width=8, padding="0"
    )
    return pc.binary_join_element_wise(
        '{"channel":"',
        channel,
        '","message_id":"msg_',
        ids,
        '","campaign":"',
        campaign,
        '"',
        tail,
        "",
    )


def deliver(
    world: World,
    deliveries: Deliveries,
    segment: Ints,
    rng: np.random.Generator,
    start: int,
    end: int,
    first_number: int,
) -> list[MessageBatch]:
    """The messaging events of the delivered actions, from the action stream *rng*."""
    params = world.config.interventions
    ok = np.flatnonzero(deliveries.delivered)
    n = len(ok)
    if n == 0:
        return []
    acc, usr, kind = deliveries.account[ok], deliveries.user[ok], deliveries.type[ok]
    numbers = first_number + np.arange(n, dtype=np.int64)
    sent = start + 9 * 3600 + rng.integers(0, 8 * 3600, n)
    seg = segment[acc]
    base = np.where(
        kind == ACTION_TYPES.index(ActionType.IN_APP),
        params.in_app_open_rate,
        params.email_open_rate,
    )
    engagement = world.state.engagement[acc]
    p_open = sigmoid(np.log(base / (1 - base)) + _OPEN_ENGAGEMENT * engagement + _OPEN_OFFSET[seg])
    logit_click = np.log(params.click_rate / (1 - params.click_rate))
    p_click = sigmoid(logit_click + _CLICK_OFFSET[seg])
    is_call = kind == ACTION_TYPES.index(ActionType.CSM_CALL)
    opened = ~is_call & (rng.random(n) < p_open)
    clicked = opened & (rng.random(n) < p_click)
    opened_at = np.minimum(sent + rng.integers(60, 2 * SECONDS_PER_DAY, n), end - 1)
    clicked_at = np.minimum(opened_at + rng.integers(5, 600, n), end - 1)
    channels = pa.array(["email", "in_app", "csm_task", "email"], pa.string())
    channel = pc.take(channels, pa.array(kind))
    pct = pc.cast(pa.array(np.round(deliveries.discount[ok] * 100).astype(np.int64)), pa.string())
    campaign = pc.if_else(
        pa.array(kind == ACTION_TYPES.index(ActionType.DISCOUNT)),
        pc.binary_join_element_wise("discount_", pct, "pct", ""),
        pc.binary_join_element_wise(
            "retention_", pc.take(pa.array([t.value for t in ACTION_TYPES]), pa.array(kind)), ""
        ),
    )
    props = _props(channel, numbers, campaign)
    batches = [
        MessageBatch("Message Sent", sent, usr, acc, props),
        MessageBatch("Message Delivered", sent + 5, usr, acc, props),
    ]
    o, c = np.flatnonzero(opened), np.flatnonzero(clicked)
    batches.append(MessageBatch("Message Opened", opened_at[o], usr[o], acc[o], props.take(o)))
    url = _props(
        channel.take(c), numbers[c], campaign.take(c), ',"url":"https://app.example/account"}'
    )
    batches.append(MessageBatch("Message Clicked", clicked_at[c], usr[c], acc[c], url))
    return batches
