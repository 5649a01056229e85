"""Declarative feature definitions: what a feature counts, over which window, for whom.

A definition is data (a pydantic model), so users add features in ``tenure.yaml``
without writing Python; :mod:`tenure.features._compile` turns each one into an
Ibis expression. Filters are plain property equality/membership tests — nothing a
user writes is evaluated as code.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUILTIN_FEATURES",
    "Aggregation",
    "FeatureDefinition",
    "FeatureEntity",
    "definition_hash",
    "milestones_feature",
    "parse_window",
]

_WINDOW = re.compile(r"^(\d+)\s*d$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REASON_FIELDS = re.compile(r"\{([^{}]*)\}")
_REASON_FIELD = re.compile(r"^(value|abs_value|pct|abs_pct)(:[^{}]*)?$")


class FeatureEntity(enum.StrEnum):
    ACCOUNT = "account"
    PERSON = "person"


class Aggregation(enum.StrEnum):
    """How the matching events of a window become one number (or category)."""

    COUNT = "count"  # events
    SUM = "sum"  # of a numeric property
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    COUNT_DISTINCT = "count_distinct"  # of a property, or of ``user`` (distinct people)
    LATEST = "latest"  # the property's value on the latest event
    DAYS_SINCE_LAST = "days_since_last"  # the window's length when there is none
    DAYS_SINCE_FIRST = "days_since_first"
    CHANGE = "change"  # latest value now minus latest value one window ago
    CHANGE_PCT = "change_pct"  # count (or sum) this window vs the window before, in %
    WEEKLY_TREND = "weekly_trend"  # least-squares slope of weekly counts / mean week
    OPEN_ITEMS = "open_items"  # items opened (``key``) and not closed by ``close_events``
    #: items (``key``) opened by ``events`` at any time in the lookback and closed by
    #: ``close_events`` within the window, after they were opened
    CLOSED_ITEMS = "closed_items"
    DAYS_TO_RENEWAL = "days_to_renewal"  # from the latest start event and its ``interval``
    RATIO = "ratio"  # of two other features: numerator / denominator


#: Aggregations whose value is a property of the events (so ``field`` is required).
_NEEDS_FIELD = {
    Aggregation.SUM,
    Aggregation.MEAN,
    Aggregation.MIN,
    Aggregation.MAX,
    Aggregation.COUNT_DISTINCT,
    Aggregation.LATEST,
    Aggregation.CHANGE,
}

Scalar = str | int | float | bool


def parse_window(text: str) -> int:
    """``"30d"`` → 30. Windows are whole days."""
    match = _WINDOW.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"a window is a whole number of days like '30d', got {text!r}")
    return int(match.group(1))


class FeatureDefinition(BaseModel):
    """One feature: the events it reads, the window before the cutoff, the aggregation.

    ``field`` names an event property (``amount``) or one of the columns every
    event has: ``user`` (the person), ``event`` (its name), ``sentiment`` (of the
    event's text, when it has any). ``where`` keeps events whose property equals
    the value (or one of the values of a list). ``reason`` renders the feature in a
    churn reason, with ``{value}``, ``{abs_value}``, ``{pct}`` or ``{abs_pct}`` and
    an optional format spec, e.g. ``"logins down {abs_pct:.0f} % over 30 days"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    entity: FeatureEntity = FeatureEntity.ACCOUNT
    aggregation: Aggregation
    events: list[str] = Field(default_factory=list)
    window: str = "30d"
    #: How far back LATEST, CHANGE, DAYS_SINCE_* and DAYS_TO_RENEWAL look.
    lookback: str | None = None
    field: str | None = None
    where: dict[str, Annotated[Scalar | list[Scalar], Field()]] = Field(default_factory=dict)
    close_events: list[str] = Field(default_factory=list)
    key: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    #: The value when an entity has no matching events (``null`` leaves it missing).
    default: float | None = 0.0
    description: str = ""
    reason: str | None = None
    #: The reason's wording when the value is positive (a change that went up).
    reason_rising: str | None = None
    #: The reason's wording when the value is missing (no such events at all).
    reason_missing: str | None = None
    #: The reason's wording when the value is exactly 1 ("1 failed payment").
    reason_one: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a feature name is lower_snake_case, starting with a letter")
        return value

    @field_validator("window", "lookback")
    @classmethod
    def _window_is_days(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value

    @field_validator("reason", "reason_rising", "reason_missing", "reason_one")
    @classmethod
    def _reason_uses_known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for placeholder in _REASON_FIELDS.findall(value):
            if not _REASON_FIELD.match(placeholder):
                raise ValueError(
                    "reason placeholders are {value}, {abs_value}, {pct} or {abs_pct} with an "
                    f"optional number format like {{pct:.0f}}, got {{{placeholder}}}"
                )
        try:
            value.format(value=1.0, abs_value=1.0, pct=1.0, abs_pct=1.0)
        except (ValueError, IndexError, KeyError) as error:
            raise ValueError(f"reason {value!r} does not format a number: {error}") from None
        return value

    @model_validator(mode="after")
    def _parts_fit_the_aggregation(self) -> FeatureDefinition:
        agg = self.aggregation
        if agg is Aggregation.RATIO:
            if not (self.numerator and self.denominator):
                raise ValueError("a ratio needs numerator and denominator (feature names)")
            return self
        if not self.events:
            raise ValueError(f"aggregation {agg.value} needs events (a list of event names)")
        if agg in _NEEDS_FIELD and not self.field:
            raise ValueError(f"aggregation {agg.value} needs field (an event property)")
        if agg is Aggregation.OPEN_ITEMS and not (self.key and self.close_events):
            raise ValueError("open_items needs key (the item's property) and close_events")
        if agg is Aggregation.CLOSED_ITEMS and not (self.key and self.close_events):
            raise ValueError("closed_items needs key (the item's property) and close_events")
        if agg is Aggregation.DAYS_TO_RENEWAL and not self.field:
            raise ValueError("days_to_renewal needs field (the billing interval property)")
        return self

    @property
    def window_days(self) -> int:
        return parse_window(self.window)

    @property
    def lookback_days(self) -> int:
        """Days before the cutoff whose events this feature may read."""
        if self.lookback is not None:
            return parse_window(self.lookback)
        if self.aggregation in (Aggregation.CHANGE_PCT,):
            return 2 * self.window_days
        return self.window_days

    def render_reason(self, value: Any) -> str:
        """This feature's value in plain words, for a reason code."""
        if value is None or (isinstance(value, float) and value != value):
            return self.reason_missing or f"{self.description or self.name}: none"
        number = float(value) if isinstance(value, int | float) else None
        template = self.reason
        if self.reason_rising and number is not None and number > 0:
            template = self.reason_rising
        if self.reason_one and number == 1:
            template = self.reason_one
        if template and number is not None:
            return template.format(
                value=number, abs_value=abs(number), pct=number, abs_pct=abs(number)
            )
        shown = f"{number:,.4g}" if number is not None else str(value)
        return f"{self.description or self.name}: {shown}"


def definition_hash(definition: FeatureDefinition) -> str:
    """A stable hash of what the feature computes (not of its wording)."""
    semantic = definition.model_dump(
        mode="json",
        exclude={"description", "reason", "reason_rising", "reason_missing", "reason_one"},
        exclude_defaults=False,
    )
    text = json.dumps(semantic, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _f(**kwargs: Any) -> FeatureDefinition:
    return FeatureDefinition(**kwargs)


_USAGE = ["Signed In", "Feature Used"]
_SUBSCRIPTION = ["Subscription Started", "Subscription Changed"]

#: The features every project gets (a project may switch any off or add its own).
BUILTIN_FEATURES: tuple[FeatureDefinition, ...] = (
    _f(
        name="logins_30d",
        aggregation="count",
        events=["Signed In"],
        window="30d",
        description="sign-ins in the last 30 days",
        reason="few sign-ins: {value:.0f} in the last 30 days",
    ),
    _f(
        name="logins_change_30d",
        aggregation="change_pct",
        events=["Signed In"],
        window="30d",
        default=None,
        description="change in sign-ins vs the 30 days before, %",
        reason="logins down {abs_pct:.0f} % over 30 days",
        reason_missing="no sign-ins in the previous 30 days",
        reason_rising="logins up {pct:.0f} % over 30 days",
    ),
    _f(
        name="active_users_30d",
        aggregation="count_distinct",
        events=_USAGE,
        field="user",
        window="30d",
        description="people active in the last 30 days",
        reason="few active users: {value:.0f} in the last 30 days",
    ),
    _f(
        name="users_180d",
        aggregation="count_distinct",
        events=_USAGE,
        field="user",
        window="180d",
        description="people active in the last 180 days",
    ),
    _f(
        name="active_users_ratio",
        aggregation="ratio",
        numerator="active_users_30d",
        denominator="users_180d",
        default=None,
        description="share of the last 180 days' users active in the last 30",
        reason="{pct:.0f} % of users still active",
        reason_missing="no active users in 180 days",
    ),
    _f(
        name="feature_breadth_90d",
        aggregation="count_distinct",
        events=["Feature Used"],
        field="feature",
        window="90d",
        description="distinct features used in the last 90 days",
        reason="narrow use: {value:.0f} features in 90 days",
        reason_one="narrow use: 1 feature in 90 days",
    ),
    _f(
        name="usage_trend",
        aggregation="weekly_trend",
        events=_USAGE,
        window="56d",
        default=None,
        description="weekly activity trend over 8 weeks (share of an average week per week)",
        reason="activity falling {abs_pct:.0f} % of a week's usage per week",
        reason_missing="no activity in 8 weeks",
        reason_rising="activity rising {pct:.0f} % of a week's usage per week",
    ),
    _f(
        name="days_since_last_login",
        aggregation="days_since_last",
        events=["Signed In"],
        window="365d",
        description="days since anyone signed in (365 when never)",
        reason="no sign-in for {value:.0f} days",
        reason_one="no sign-in for 1 day",
    ),
    _f(
        name="invites_30d",
        aggregation="count",
        events=["Invite Sent"],
        window="30d",
        description="invitations sent in the last 30 days",
    ),
    _f(
        name="users_removed_90d",
        aggregation="count",
        events=["Account Removed User"],
        window="90d",
        description="users removed in the last 90 days",
        reason="{value:.0f} users removed in the last 90 days",
        reason_one="1 user removed in the last 90 days",
    ),
    _f(
        name="champion_left",
        aggregation="closed_items",
        events=["Account Created"],
        close_events=["Account Removed User"],
        key="user",
        window="90d",
        lookback="3650d",
        description="the user who created the account (its first champion) was removed in "
        "the last 90 days",
        reason="the account's creator, its first champion, left in the last 90 days",
    ),
    _f(
        name="tickets_30d",
        aggregation="count",
        events=["Ticket Created"],
        window="30d",
        description="tickets opened in the last 30 days",
        reason="{value:.0f} tickets opened in the last 30 days",
        reason_one="1 ticket opened in the last 30 days",
    ),
    _f(
        name="tickets_open",
        aggregation="open_items",
        events=["Ticket Created"],
        close_events=["Ticket Solved", "Ticket Closed"],
        key="ticket_id",
        window="180d",
        description="tickets opened in the last 180 days and not solved",
        reason="{value:.0f} unresolved tickets",
        reason_one="1 unresolved ticket",
    ),
    _f(
        name="urgent_tickets_open",
        aggregation="open_items",
        events=["Ticket Created"],
        close_events=["Ticket Solved", "Ticket Closed"],
        key="ticket_id",
        where={"priority": ["urgent", "high"]},
        window="180d",
        description="urgent or high-priority tickets not solved",
        reason="{value:.0f} unresolved urgent tickets",
        reason_one="1 unresolved urgent ticket",
    ),
    _f(
        name="days_since_urgent_ticket",
        aggregation="days_since_last",
        events=["Ticket Created"],
        where={"priority": ["urgent"]},
        window="90d",
        description="days since an urgent ticket was opened (90 when none in 90 days)",
    ),
    _f(
        name="ticket_sentiment_30d",
        aggregation="mean",
        events=["Ticket Created"],
        field="sentiment",
        window="30d",
        default=None,
        description="mean sentiment of tickets opened in the last 30 days (−1 … 1)",
        reason="tone of recent tickets {value:+.2f} (−1 … 1)",
        reason_missing="no tickets in the last 30 days",
    ),
    _f(
        name="csat_mean_90d",
        aggregation="mean",
        events=["CSAT Submitted"],
        field="score",
        window="90d",
        default=None,
        description="mean CSAT (1–5) over 90 days",
        reason="support satisfaction {value:.1f} of 5",
        reason_missing="no CSAT rating in 90 days",
    ),
    _f(
        name="nps_last",
        aggregation="latest",
        events=["NPS Submitted"],
        field="score",
        window="365d",
        default=None,
        description="latest NPS score (0–10) in the last year",
        reason="last NPS score {value:.0f}",
        reason_missing="no NPS answer in the last year",
    ),
    _f(
        name="payment_failures_90d",
        aggregation="count",
        events=["Payment Failed"],
        window="90d",
        description="failed payments in the last 90 days",
        reason="{value:.0f} failed payments in 90 days",
        reason_one="1 failed payment in 90 days",
    ),
    _f(
        name="mrr",
        aggregation="latest",
        events=_SUBSCRIPTION,
        field="mrr",
        window="3650d",
        default=None,
        description="monthly recurring revenue",
        reason="plan size: MRR {value:,.0f}",
        reason_missing="no subscription on record",
    ),
    _f(
        name="mrr_change_90d",
        aggregation="change",
        events=_SUBSCRIPTION,
        field="mrr",
        window="90d",
        lookback="3650d",
        description="MRR change over 90 days",
        reason="MRR changed by {value:+,.0f} in 90 days",
    ),
    _f(
        name="seats",
        aggregation="latest",
        events=_SUBSCRIPTION,
        field="seats",
        window="3650d",
        default=None,
        description="licensed seats",
        reason="small team: {value:.0f} seats",
        reason_one="small team: 1 seat",
    ),
    _f(
        name="tenure_days",
        aggregation="days_since_first",
        events=["Subscription Started"],
        window="3650d",
        default=None,
        description="days since the subscription started",
        reason="customer for {value:.0f} days",
        reason_one="customer for 1 day",
    ),
    _f(
        name="days_to_renewal",
        aggregation="days_to_renewal",
        events=["Subscription Started"],
        field="interval",
        window="3650d",
        default=None,
        description="days until the next renewal date",
        reason="renewal in {value:.0f} days",
        reason_one="renewal in 1 day",
    ),
)


def milestones_feature(milestones: list[str]) -> FeatureDefinition:
    """``milestones_done``: how many of the onboarding *milestones* (event names, from
    ``lifecycle.onboarding_milestones``) the account has done, ever before the cutoff.
    A built-in while milestones are configured (:func:`tenure.features.feature_set`)."""
    return FeatureDefinition(
        name="milestones_done",
        aggregation=Aggregation.COUNT_DISTINCT,
        events=list(milestones),
        field="event",
        window="3650d",
        description=f"onboarding milestones done, of {len(milestones)}",
        reason=f"{{value:.0f}} of {len(milestones)} onboarding milestones done",
    )
