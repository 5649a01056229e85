"""Settings of the decide and deliver stages: guardrails, channels, retries.

Kept apart from :mod:`tenure.config` (which includes them as the ``decide``
and ``delivery`` sections) so each stays one screenful of policy.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Channel",
    "DecideSettings",
    "DeliverySettings",
    "Duration",
    "FrequencyCap",
    "Holdouts",
    "QuietHours",
    "ReviewSettings",
    "SmtpSettings",
    "WebhookTarget",
    "parse_duration",
]

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@functools.lru_cache(maxsize=256)
def parse_duration(text: str) -> dt.timedelta:
    """``"30d"``, ``"12h"``, ``"2w"`` … as a timedelta; anything else is a ValueError."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"a duration like 30m, 12h, 7d or 2w (got {text!r})")
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _checked(text: str) -> str:
    parse_duration(text)
    return text


#: A duration setting kept as written (``"7d"``), checked when the settings load.
Duration = Annotated[str, AfterValidator(_checked)]


class Channel(enum.StrEnum):
    EMAIL = "email"
    IN_APP = "in_app"
    WEBHOOK = "webhook"
    CSM_TASK = "csm_task"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrequencyCap(_Strict):
    """At most *max* actions per customer in any rolling *window* (on one channel, or all)."""

    channel: Channel | None = None  # None: every channel together
    max: int = Field(ge=0)
    window: Duration = "7d"


class QuietHours(_Strict):
    """No message starts between *start* and *end* in the customer's time zone."""

    start: dt.time = dt.time(21, 0)
    end: dt.time = dt.time(8, 0)
    channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL, Channel.IN_APP])
    #: Used when neither the contact nor the account has a valid ``timezone`` trait.
    default_timezone: str = "UTC"


class ReviewSettings(_Strict):
    """Which actions wait for a person's approval before anything is sent."""

    #: Accounts worth at least this much (CLV, else 12 × MRR) are reviewed.
    min_value: float | None = Field(default=10_000.0, ge=0)
    #: Discount offers above this fraction (0.15 = 15 %) are reviewed.
    max_discount: float = Field(default=0.15, ge=0, le=1)
    #: A review not decided within this time expires and nothing is sent.
    expires_after: Duration = "3d"
    #: Channels whose actions are reviewed for high-value accounts (discounts always are).
    channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL, Channel.WEBHOOK])


class CampaignBudget(_Strict):
    budget: float = Field(ge=0)
    period: Duration = "30d"


class Holdouts(_Strict):
    """Customers who get nothing, so that what the actions change can be measured.

    Membership is a hash of the account and a salt (:mod:`tenure.measure`), so it
    is the same on every path and in every cycle, and needs no lookup. A customer
    held out is decided for as usual and logged with status ``holdout`` and the
    action they would have had; nothing is sent and no cap or budget is spent.
    """

    #: Held out of every campaign: what all of tenure's actions change together.
    global_control_percent: float = Field(default=0.0, ge=0.0, le=50.0)
    #: Per campaign: the percent of those a rule of the campaign would act on held out.
    campaigns: dict[str, float] = Field(default_factory=dict)
    #: Changing the salt reshuffles every group: do it only between experiments.
    salt: str = Field(default="tenure", min_length=1, pattern=r"^[^|]+$")

    @model_validator(mode="after")
    def _percent_range(self) -> Holdouts:
        for campaign, percent in self.campaigns.items():
            if not 0.0 < percent < 100.0:
                raise ValueError(
                    f"campaigns.{campaign}: a holdout percent between 0 and 100 (got {percent})"
                )
        return self


class DecideSettings(_Strict):
    """Guardrails every path (batch, API, journeys) goes through."""

    #: Where policy and template files live, relative to the project.
    policies_dir: str = "policies"
    templates_dir: str = "templates"
    journeys_dir: str = "journeys"
    #: Consent when a customer has never said anything on a channel.
    default_consent: dict[Channel, bool] = Field(default_factory=lambda: {c: True for c in Channel})
    caps: list[FrequencyCap] = Field(
        default_factory=lambda: [
            FrequencyCap(channel=Channel.EMAIL, max=2, window="7d"),
            FrequencyCap(channel=Channel.IN_APP, max=3, window="7d"),
            FrequencyCap(channel=None, max=4, window="7d"),
        ]
    )
    quiet_hours: QuietHours | None = QuietHours()
    #: Spend caps per campaign, and over every campaign together. While any is set,
    #: a batch cycle decides the customers whose best action is worth most first.
    budgets: dict[str, CampaignBudget] = Field(default_factory=dict)
    global_budget: CampaignBudget | None = None
    #: Act even where uplift says the action is worth less than nothing (uplift ×
    #: value − cost < 0: it drives the customer away, or costs more than it saves).
    #: Off by default: such a candidate is blocked ("value") and the next one tried.
    act_on_negative_value: bool = False
    #: No message to an account with an urgent ticket opened this recently
    #: (feature ``days_since_urgent_ticket``), on these channels.
    urgent_ticket_suppression: Duration | None = "7d"
    suppression_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.EMAIL, Channel.IN_APP]
    )
    review: ReviewSettings = ReviewSettings()
    #: How long after a decision the account's lifecycle events count as its outcome.
    attribution_window: Duration = "30d"
    holdouts: Holdouts = Holdouts()


class SmtpSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    #: ``starttls`` upgrades a plain connection; ``ssl`` connects with TLS (port 465).
    security: str = Field(default="none", pattern="^(none|starttls|ssl)$")
    username: str | None = None
    #: Name of the environment variable holding the password (never the password).
    password_env: str | None = None
    from_address: str = "tenure@localhost"
    timeout_seconds: float = Field(default=30.0, gt=0)


class WebhookTarget(_Strict):
    url: str
    #: Environment variable with the HMAC-SHA256 signing secret.
    secret_env: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class DeliverySettings(_Strict):
    """Channels and retry policy of ``tenure worker``."""

    smtp: SmtpSettings = SmtpSettings()
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    #: The webhook (a key of ``webhooks``) CSM tasks are posted to, e.g. a CRM.
    csm_task_webhook: str | None = None
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    #: How long a worker owns a claimed action; after that another may resend it
    #: (with the same idempotency key).
    lease_seconds: float = Field(default=120.0, gt=0)
    #: Base of unsubscribe links, e.g. https://tenure.example.com (the server's
    #: ``/unsubscribe/{token}`` records the opt-out).
    public_url: str = "http://127.0.0.1:8000"
    #: Environment variable with the secret unsubscribe tokens are signed with.
    unsubscribe_secret_env: str = "TENURE_UNSUBSCRIBE_SECRET"  # noqa: S105 (a variable name)

    @model_validator(mode="after")
    def _known_csm_webhook(self) -> DeliverySettings:
        if self.csm_task_webhook is not None and self.csm_task_webhook not in self.webhooks:
            raise ValueError(
                f"csm_task_webhook {self.csm_task_webhook!r} is not one of webhooks "
                f"({', '.join(sorted(self.webhooks)) or 'none defined'})"
            )
        return self
