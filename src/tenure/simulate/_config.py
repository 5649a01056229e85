"""The simulator's parameters: one typed, validated model, overridable from YAML.

Every default is documented, with where its figure comes from, in
docs/simulator.md. A YAML file overrides any subset: unknown keys are errors
that name the key, as in the project file.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tenure.errors import ConfigError, ConfigProblem

__all__ = [
    "AcquisitionParams",
    "ActionEffectParams",
    "BillingParams",
    "ChurnParams",
    "EventFormat",
    "ExpansionParams",
    "HealthParams",
    "InterventionParams",
    "SimulationConfig",
    "SupportParams",
    "SurveyParams",
    "UsageParams",
    "load_simulation_config",
    "parse_simulation_config",
]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventFormat(enum.StrEnum):
    PARQUET = "parquet"
    JSONL = "jsonl"


class AcquisitionParams(_Params):
    #: Share of the accounts that are already customers when the simulation starts.
    initial_customer_fraction: float = Field(default=0.5, ge=0, le=1)
    #: Tenure (months) of the initial customers is uniform on 1..this.
    initial_max_tenure_months: int = Field(default=36, ge=1)
    #: Intercept of the win-probability logit (mean win rate ≈ 0.22 with the defaults).
    win_logit_intercept: float = -1.7
    #: Effect of the prospect's fit (standard normal) on the win logit.
    win_fit_effect: float = Field(default=0.8, ge=0)
    #: Effect of price sensitivity (0..1) on the win logit.
    win_price_effect: float = Field(default=1.5, ge=0)
    #: Sales cycle from lead to close, days: lognormal median and sigma.
    sales_cycle_median_days: float = Field(default=45.0, gt=0)
    sales_cycle_sigma: float = Field(default=0.5, ge=0)
    #: Leads that never become opportunities, per opportunity.
    unqualified_leads_per_opportunity: float = Field(default=2.0, ge=0)
    #: Probability of each plan (starter, growth, enterprise) for a new account.
    plan_mix: tuple[float, float, float] = (0.55, 0.35, 0.10)
    #: Price per seat per month, by plan, in USD.
    seat_price: tuple[float, float, float] = (15.0, 35.0, 60.0)
    #: Median seats at signup, by plan (lognormal, sigma seats_sigma).
    seats_median: tuple[float, float, float] = (3.0, 8.0, 30.0)
    seats_sigma: float = Field(default=0.6, ge=0)
    #: Share of accounts on annual billing, by plan.
    annual_share: tuple[float, float, float] = (0.2, 0.45, 0.8)
    #: Share of leads by channel: organic search, paid search, referral, events.
    channel_mix: tuple[float, float, float, float] = (0.45, 0.25, 0.15, 0.15)
    #: What one lead costs, by channel as in channel_mix, in USD: the acquisition spend
    #: written to ``finance/marketing_spend.csv`` (a channel costing 0 gets no rows).
    cost_per_lead: tuple[float, float, float, float] = (0.0, 500.0, 100.0, 800.0)
    #: Mean anonymous web pages a prospect views before the lead is created (at least one).
    web_pages_per_prospect: float = Field(default=3.0, ge=1)
    #: The first anonymous visit falls on one of this many days before the lead.
    web_visit_days: int = Field(default=14, ge=1)
    #: Share of leads that never convert whose anonymous visits are tracked too.
    anonymous_lead_share: float = Field(default=0.3, ge=0, le=1)
    #: Share of self-serve (starter plan) deals that begin with a free trial; a trial that
    #: does not convert is a lost deal.
    trial_share: float = Field(default=0.4, ge=0, le=1)
    #: Length of a trial, days. A converted trial's subscription starts when it ends.
    trial_days: int = Field(default=14, ge=1)

    @model_validator(mode="after")
    def _mix_sums_to_one(self) -> AcquisitionParams:
        if abs(sum(self.plan_mix) - 1.0) > 1e-6 or min(self.plan_mix) < 0:
            raise ValueError(
                f"plan_mix must be three non-negative shares summing to 1, got {self.plan_mix}"
            )
        if abs(sum(self.channel_mix) - 1.0) > 1e-6 or min(self.channel_mix) < 0:
            raise ValueError(
                f"channel_mix must be four non-negative shares summing to 1, got {self.channel_mix}"
            )
        if min(self.cost_per_lead) < 0:
            raise ValueError(f"cost_per_lead must be non-negative, got {self.cost_per_lead}")
        return self


class HealthParams(_Params):
    #: Month-to-month persistence of latent health (AR(1) coefficient).
    persistence: float = Field(default=0.85, ge=0, lt=1)
    #: Weight of fit and engagement in the level health reverts to.
    fit_weight: float = 0.6
    engagement_weight: float = 0.4
    #: Standard deviation of the monthly health shock.
    shock_sd: float = Field(default=0.35, ge=0)
    #: Health lost per log(1 + unresolved tickets) at month end.
    unresolved_ticket_drag: float = Field(default=0.25, ge=0)
    #: Health lost when the champion leaves.
    champion_loss_drag: float = Field(default=0.6, ge=0)
    #: Monthly probability that the account's champion leaves.
    champion_loss_rate: float = Field(default=0.015, ge=0, le=1)
    #: Monthly probability that a lost champion is replaced.
    champion_replace_rate: float = Field(default=0.25, ge=0, le=1)
    #: Monthly drift (sd) of engagement propensity.
    engagement_drift_sd: float = Field(default=0.05, ge=0)


class OnboardingParams(_Params):
    """Onboarding milestones: what a new customer sets up in its first months.

    Whether and how soon an account reaches each milestone follow its fit and
    engagement: a sign of the latent state (which drives churn), not a cause of it.
    """

    #: The milestone events (``lifecycle.onboarding_milestones``), in the order
    #: customers usually reach them.
    milestones: tuple[str, ...] = ("Integration Connected", "Dashboard Created", "Report Scheduled")
    #: Log-odds of ever reaching each milestone, at fit and engagement 0.
    reach_logit: tuple[float, ...] = (1.5, 0.6, -0.4)
    fit_weight: float = 0.8
    engagement_weight: float = 1.2
    #: Median days from the subscription start to each milestone, at engagement 0.
    median_days: tuple[float, ...] = (3.0, 10.0, 24.0)
    #: Days to a milestone scale by exp(−this × engagement): engaged accounts are quicker.
    speed_elasticity: float = Field(default=0.5, ge=0)
    #: Spread (log-normal sigma) of the days to a milestone around its median.
    days_sigma: float = Field(default=0.6, ge=0)
    #: A milestone not reached within this many days of the start is never reached.
    within_days: int = Field(default=120, ge=1)

    @model_validator(mode="after")
    def _one_value_per_milestone(self) -> OnboardingParams:
        k = len(self.milestones)
        if len(set(self.milestones)) != k or not all(m.strip() for m in self.milestones):
            raise ValueError("milestones must be distinct, non-empty event names")
        if len(self.reach_logit) != k or len(self.median_days) != k:
            raise ValueError(
                f"reach_logit and median_days need one value per milestone ({k}), got "
                f"{len(self.reach_logit)} and {len(self.median_days)}"
            )
        if any(d <= 0 for d in self.median_days):
            raise ValueError("median_days must be positive")
        return self


class UsageParams(_Params):
    #: Share of seats that are active users in a month at health 0.
    active_share: float = Field(default=0.7, gt=0, le=1)
    #: Sessions (one Signed In each) per active user per month at health 0.
    sessions_per_user: float = Field(default=1.8, gt=0)
    #: Elasticity of sessions to health (sessions × exp(this × health)).
    health_elasticity: float = Field(default=0.5, ge=0)
    #: Feature Used events per session.
    features_per_session: float = Field(default=0.4, ge=0)
    #: The product's features, in order of how commonly they are adopted.
    features: tuple[str, ...] = (
        "dashboards.view",
        "reports.export",
        "alerts.create",
        "integrations.sync",
        "api.call",
        "workflows.run",
    )


class SupportParams(_Params):
    #: Tickets per account per month at health 0 and one seat (× seats^0.5).
    tickets_per_account: float = Field(default=0.25, ge=0)
    #: How much worse health raises ticket volume (× exp(-this × health)).
    health_effect: float = Field(default=0.4, ge=0)
    #: Resolution time, hours: lognormal median and sigma.
    resolution_median_hours: float = Field(default=20.0, gt=0)
    resolution_sigma: float = Field(default=1.3, ge=0)
    #: Share of tickets that are never solved (stay open or pending).
    never_solved_share: float = Field(default=0.05, ge=0, le=1)
    #: Share of solved tickets whose requester rates them.
    csat_response_rate: float = Field(default=0.3, ge=0, le=1)


class SurveyParams(_Params):
    #: NPS surveys run in every month whose index is a multiple of this (quarterly).
    every_months: int = Field(default=3, ge=1)
    #: Share of active users who answer a survey.
    response_rate: float = Field(default=0.1, ge=0, le=1)
    #: Mean score at health 0, its slope in health, and the answer noise.
    mean_score: float = Field(default=8.0, ge=0, le=10)
    health_slope: float = Field(default=1.2, ge=0)
    noise_sd: float = Field(default=1.8, ge=0)


class ExpansionParams(_Params):
    #: Logit intercepts and health slopes of monthly seat expansion and contraction.
    expand_intercept: float = -2.9
    expand_health: float = Field(default=0.9, ge=0)
    contract_intercept: float = -4.2
    contract_health: float = Field(default=0.9, ge=0)
    #: Seats added (or removed) as a share of the current seats: uniform range.
    expand_share: tuple[float, float] = (0.1, 0.3)
    contract_share: tuple[float, float] = (0.1, 0.35)


class BillingParams(_Params):
    #: Probability that an invoice's first charge fails.
    failure_rate: float = Field(default=0.06, ge=0, le=1)
    #: Probability that retries recover a failed charge.
    recovery_rate: float = Field(default=0.6, ge=0, le=1)
    #: Probability that an unrecovered failure ends the subscription that month.
    involuntary_churn: float = Field(default=0.35, ge=0, le=1)


class ChurnParams(_Params):
    """The voluntary monthly churn hazard: logit-linear in its drivers."""

    intercept: float = -4.9
    #: Per unit of latent health (lower health, higher hazard).
    health: float = Field(default=0.8, ge=0)
    #: Per unit of log usage ratio (this month's sessions vs the account's norm).
    usage_drop: float = Field(default=0.6, ge=0)
    #: Per log(1 + unresolved tickets).
    unresolved_tickets: float = Field(default=0.5, ge=0)
    #: While the champion is gone (and for three months after a replacement).
    champion_lost: float = Field(default=0.9, ge=0)
    #: Per unit of price sensitivity (0..1).
    price_sensitivity: float = Field(default=0.8, ge=0)
    #: In the first three months of tenure (onboarding churn).
    early_tenure: float = Field(default=0.5, ge=0)
    #: Idiosyncratic noise on the logit each month (the part nothing observable explains).
    noise_sd: float = Field(default=0.5, ge=0)
    #: Annual subscriptions can only end at renewal, where the hazard is
    #: 1 - (1 - monthly hazard) ** this.
    renewal_months_equivalent: float = Field(default=12.0, ge=1)
    #: Annual discount rate for CLV in the ground truth.
    discount_rate: float = Field(default=0.10, ge=0)


class ActionEffectParams(_Params):
    """The true effect of one action type: a log-odds shift of that month's voluntary churn
    hazard, by response segment (negative lowers churn), and what one delivery costs."""

    persuadable: float = -1.0
    sure_thing: float = 0.0
    lost_cause: float = 0.0
    sleeping_dog: float = 0.6
    #: Cost of one delivered action, USD (a discount's forgone revenue is counted apart).
    cost: float = Field(default=0.0, ge=0)


class InterventionParams(_Params):
    """Who responds to tenure's actions, and how (see docs/simulator.md, Interventions)."""

    #: Shares of the response segments among won accounts: persuadable, sure thing,
    #: lost cause, sleeping dog. Which segment an account is in leans on its traits.
    segment_shares: tuple[float, float, float, float] = (0.25, 0.40, 0.25, 0.10)
    email: ActionEffectParams = ActionEffectParams(persuadable=-0.8, sleeping_dog=0.5, cost=0.05)
    in_app: ActionEffectParams = ActionEffectParams(persuadable=-0.5, sleeping_dog=0.3, cost=0.01)
    csm_call: ActionEffectParams = ActionEffectParams(
        persuadable=-1.5, lost_cause=-0.2, sleeping_dog=0.9, cost=40.0
    )
    #: A discount's effect at discount_reference_pct; it scales linearly with the percentage.
    discount: ActionEffectParams = ActionEffectParams(
        persuadable=-1.2, lost_cause=-0.3, sleeping_dog=0.4, cost=0.0
    )
    discount_reference_pct: float = Field(default=20.0, gt=0, le=100)
    #: Months (the month of the offer included) a discount lowers the price.
    discount_months: int = Field(default=3, ge=1)
    #: Probability that a delivered message is opened (email, in-app) and that an opened
    #: one is clicked, for an account of average engagement; engagement and segment move them.
    email_open_rate: float = Field(default=0.35, gt=0, lt=1)
    in_app_open_rate: float = Field(default=0.6, gt=0, lt=1)
    click_rate: float = Field(default=0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> InterventionParams:
        shares = self.segment_shares
        if abs(sum(shares) - 1.0) > 1e-6 or min(shares) <= 0:
            raise ValueError(
                f"segment_shares must be four positive shares summing to 1, got {shares}"
            )
        return self


class SimulationConfig(_Params):
    """All parameters of a simulated B2B SaaS company. Counts come from the caller."""

    accounts: int = Field(default=2000, ge=1)
    months: int = Field(default=24, ge=1)
    #: First day of the first simulated month (UTC).
    start: dt.date = dt.date(2024, 1, 1)
    format: EventFormat = EventFormat.PARQUET
    #: Share of event records written malformed (each ends in quarantine).
    malformed_fraction: float = Field(default=0.0, ge=0, le=0.5)
    #: Accounts whose events are built and written together: peak memory holds one block's
    #: events. Events are sorted by time within a block; the block size changes only the
    #: order of a month file's events, their message ids and which rows are made malformed.
    event_block_accounts: int = Field(default=20_000, ge=1)
    acquisition: AcquisitionParams = AcquisitionParams()
    health: HealthParams = HealthParams()
    onboarding: OnboardingParams = OnboardingParams()
    usage: UsageParams = UsageParams()
    support: SupportParams = SupportParams()
    surveys: SurveyParams = SurveyParams()
    expansion: ExpansionParams = ExpansionParams()
    billing: BillingParams = BillingParams()
    churn: ChurnParams = ChurnParams()
    interventions: InterventionParams = InterventionParams()

    @model_validator(mode="after")
    def _first_of_month(self) -> SimulationConfig:
        if self.start.day != 1:
            raise ValueError(f"start must be the first day of a month, got {self.start}")
        return self


def _problems(error: ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        expected = item["msg"]
        if item["type"] == "extra_forbidden":
            expected = "unknown key (check the spelling; docs/simulator.md lists every parameter)"
        elif expected.startswith("Value error, "):
            expected = expected.removeprefix("Value error, ")
        problems.append(ConfigProblem(key, expected, item.get("input")))
    return problems


def parse_simulation_config(
    data: Any, *, source: str = "simulation config", **overrides: Any
) -> SimulationConfig:
    """Validate parsed YAML (a mapping, or None) with keyword *overrides* on top."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", "a mapping of parameters", data)])
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return SimulationConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(
            source, _problems(error), hint="docs/simulator.md lists every parameter and default"
        ) from None


def load_simulation_config(path: Path | None = None, **overrides: Any) -> SimulationConfig:
    """The defaults, overridden by the YAML file at *path* and then by *overrides*."""
    if path is None:
        return parse_simulation_config({}, **overrides)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            str(path), [ConfigProblem("(file)", f"a readable file: {error}")]
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [ConfigProblem(where, f"valid YAML: {problem}")]) from None
    return parse_simulation_config(data, source=str(path), **overrides)
