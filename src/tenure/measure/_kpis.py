"""Customer KPIs by signup cohort and by lifecycle stage (``tenure report kpis``).

Read from events strictly before ``as_of`` (and scores not later than it) as Ibis
aggregates, fetching only the final numbers, with the lifecycle's building blocks:
customer spells, :func:`~tenure.lifecycle._kpis._mrr_at`, the stage history.

The definitions are in ``docs/measure.md`` (KPIs); in short:

* **cohort**: the UTC month of the account's signup, the start of its first customer
  spell (its first purchase, or its first won deal where only CRM data exists);
* **activation** and **time to value**: a value event at or after signup;
* **logo** and **revenue churn**: no active subscription at ``as_of``; gross MRR lost
  since the end of month 0; per month as the constant rate compounding to it;
* **GRR / NRR 12 m**: from the end of month 0 to 12 months later (MRR as the lifecycle's);
* **retention curve**: the share active at the end of each cohort month;
* **CLV** from the scores table; **NPS** over each respondent's latest answer;
* **CAC**: the spend of the signup month (``measure.spend``, a CSV read by
  :mod:`tenure.measure._spend`) over the cohort's new customers; **CAC payback**: CAC
  over the month-0 MRR per new customer times ``measure.gross_margin`` — the month-0
  MRR that revenue churn and GRR start from. The report's blended figures pool every
  cohort with spend whose signup month has ended;
* **by stage**: accounts, MRR, NPS, CLV, and for customer stages the share of the
  accounts that entered the stage whose stay ended in ``churned``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa

from tenure._event_values import json_number
from tenure.features import attributed_events
from tenure.lifecycle._history import (
    _TS,
    account_events,
    current_from_history,
    first_touches,
    history_from_events,
    milestone_events,
    spells,
)
from tenure.lifecycle._kpis import (
    Unavailable,
    days_between,
    fetch_rows,
    fraction,
    mrr_at_points,
    number_or_none,
)
from tenure.lifecycle._stages import CUSTOMER_STAGES, Stage
from tenure.measure._spend import MonthlySpend, read_spend

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.config import LifecycleSettings
    from tenure.project import Project
    from tenure.warehouse import Warehouse

__all__ = ["NPS_EVENT", "CohortKPIs", "KPIReport", "StageKPIs", "kpi_report"]

NPS_EVENT = "NPS Submitted"
#: Written by :func:`tenure.models.score` (``SCORES_TABLE``); read by name so that a
#: report does not import the model stack.
_SCORES_TABLE = "scores"
#: Group key → (respondents, NPS); group key → mean CLV, or why there is none.
_NPSByKey = dict[Any, tuple[int, float | None]]
_CLVByKey = dict[Any, float | None] | Unavailable
_NO_SPEND = (
    "no spend data: set measure.spend in tenure.yaml to a CSV of month and amount "
    "(or pass --spend FILE)"
)
_MONTH_OPEN = "the signup month has not ended"
_NO_BASE = "no MRR at the end of the signup month"


@dataclass(frozen=True, slots=True)
class CohortKPIs:
    """The KPIs of the accounts whose signup fell in one month."""

    #: The first day of the signup month.
    cohort: dt.date
    accounts: int
    activated: int
    activation_rate: float | None
    median_time_to_value_days: float | None
    #: Accounts with an active subscription at ``as_of``.
    active: int
    logo_churn: float | None
    logo_churn_monthly: float | Unavailable
    revenue_churn: float | Unavailable
    revenue_churn_monthly: float | Unavailable
    grr_12m: float | Unavailable
    nrr_12m: float | Unavailable
    mean_clv: float | Unavailable
    nps: float | Unavailable
    nps_respondents: int
    #: Acquisition spend of the signup month per new customer (the cohort's accounts).
    cac: float | Unavailable
    #: CAC over the month-0 MRR per new customer times the gross margin.
    cac_payback_months: float | Unavailable
    #: Share of the cohort active at the end of month 0, 1, 2, … up to ``as_of``.
    retention: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class StageKPIs:
    """The accounts in one stage at ``as_of``."""

    stage: Stage
    accounts: int
    mrr: float
    #: Customer stages only: of the accounts that entered the stage, the share churned from it.
    churn_rate: float | None
    mean_clv: float | Unavailable
    nps: float | Unavailable
    nps_respondents: int

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, slots=True)
class KPIReport:
    as_of: dt.datetime
    cohorts: tuple[CohortKPIs, ...]
    stages: tuple[StageKPIs, ...]
    notes: tuple[str, ...]
    #: Blended over the cohorts with a CAC: their spend over their new customers.
    cac: float | Unavailable
    #: Blended: their spend over their month-0 MRR times the gross margin.
    cac_payback_months: float | Unavailable

    def cohort(self, month: str | dt.date) -> CohortKPIs:
        """The cohort of a month (``"2024-01"`` or a date in it)."""
        key = month if isinstance(month, str) else f"{month:%Y-%m}"
        for c in self.cohorts:
            if f"{c.cohort:%Y-%m}" == key:
                return c
        raise KeyError(f"no cohort {key!r}; cohorts: {[f'{c.cohort:%Y-%m}' for c in self.cohorts]}")

    def stage(self, stage: Stage | str) -> StageKPIs:
        wanted = Stage(stage)
        return next(s for s in self.stages if s.stage is wanted)

    def as_dict(self) -> dict[str, Any]:
        blended = {"cac": self.cac, "cac_payback_months": self.cac_payback_months}
        return {
            "as_of": self.as_of.isoformat(),
            "cohorts": [c.as_dict() for c in self.cohorts],
            "stages": [s.as_dict() for s in self.stages],
            "notes": list(self.notes),
            **{k: None if isinstance(v, Unavailable) else v for k, v in blended.items()},
            "unavailable": {k: v.reason for k, v in blended.items() if isinstance(v, Unavailable)},
        }


def _plain(row: CohortKPIs | StageKPIs) -> dict[str, Any]:
    """Fields as JSON values; an unavailable KPI is null, its reason under ``unavailable``."""
    out: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for f in fields(row):
        value = getattr(row, f.name)
        if isinstance(value, Unavailable):
            missing[f.name], value = value.reason, None
        elif isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    out["unavailable"] = missing
    return out


def _add_months(month: dt.datetime, n: int) -> dt.datetime:
    index = month.year * 12 + month.month - 1 + n
    return month.replace(year=index // 12, month=index % 12 + 1, day=1)


def _age_months(cohort: dt.datetime, as_of: dt.datetime) -> float:
    """Calendar months from the cohort month's start to *as_of* (fractional)."""
    whole = (as_of.year - cohort.year) * 12 + as_of.month - cohort.month
    start, end = _add_months(cohort, whole), _add_months(cohort, whole + 1)
    return whole + (as_of - start) / (end - start)


def _monthly(kept: float | None, months: float) -> float | Unavailable:
    """The constant monthly churn rate that leaves *kept* after *months*."""
    if kept is None:
        return Unavailable("no base to measure from")
    if months < 1:
        return Unavailable("less than a month since the end of the signup month")
    return 1.0 - float(max(kept, 0.0) ** (1.0 / months))


def kpi_report(
    project: Project, *, as_of: dt.datetime, spend: MonthlySpend | None = None
) -> KPIReport:
    """KPIs per signup cohort and per current stage (see the module documentation).

    *spend* is the acquisition spend CAC comes from; by default the project's
    ``measure.spend`` file is read (:func:`~tenure.measure._spend.read_spend`), and
    without one CAC is unavailable.
    """
    if as_of.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware (UTC), got {as_of!r}")
    as_of = as_of.astimezone(dt.UTC)
    measure = project.config.measure
    if spend is None and measure.spend is not None:
        spend = read_spend(measure.spend, root=project.root)
    warehouse = project.warehouse
    settings = project.config.lifecycle
    backend = warehouse.backend
    events = account_events(warehouse, as_of=as_of)
    first = first_touches(warehouse, events, settings, as_of=as_of)
    with milestone_events(events, settings).cache() as milestones:
        spell_table = spells(milestones, settings)
        accounts = _accounts(events, spell_table, settings)
        with accounts.cache() as signed_up:
            base = _cohort_base(backend, signed_up)
            # MRR at as_of and at the end of each cohort's month 0 and month 12
            marks = {_add_months(row["cohort"], n) for row in base for n in (1, 13)}
            points = sorted({as_of} | {t for t in marks if t <= as_of})
            mrr = _mrr_points(milestones, settings, points)
            with mrr.cache() as priced:
                revenue = _cohort_revenue(
                    backend, signed_up, [r["cohort"] for r in base], priced, as_of
                )
                curves = _retention(backend, signed_up, spell_table, base, as_of)
                nps = _nps(backend, warehouse, signed_up.select("account_id", key="cohort"), as_of)
                clv = _clv(backend, warehouse, signed_up.select("account_id", key="cohort"), as_of)
                history = history_from_events(milestones, settings, as_of=as_of, first_seen=first)
                with history.cache() as stays:
                    stages = _stages(backend, warehouse, stays, priced, as_of)
    acquisition = _Acquisition(spend, measure.gross_margin, as_of)
    cohorts = tuple(
        _cohort(row, revenue.get(row["cohort"], {}), curves, nps, clv, acquisition, as_of)
        for row in base
    )
    notes = [] if cohorts else ["no account has bought yet: no cohorts"]
    notes += acquisition.unmatched({row["cohort"].date() for row in base})
    return KPIReport(
        as_of=as_of,
        cohorts=cohorts,
        stages=stages,
        notes=tuple(notes),
        cac=acquisition.blended_cac(),
        cac_payback_months=acquisition.blended_payback(),
    )


def _accounts(events: ir.Table, spell_table: ir.Table, settings: LifecycleSettings) -> ir.Table:
    """One row per customer: ``account_id``, ``signup``, ``cohort``, ``active``, ``used_at``."""
    per = spell_table.group_by("account_id").aggregate(
        signup=spell_table.start.min(),
        open_spells=spell_table.count(where=spell_table.end.isnull()),
    )
    used = events.filter(events.event.isin(settings.value_events)).select(
        used_account="account_id", used_at="timestamp"
    )
    joined = per.left_join(used, [per.account_id == used.used_account, used.used_at >= per.signup])
    rows = joined.group_by(["account_id", "signup", "open_spells"]).aggregate(
        used_at=joined.used_at.min()
    )
    return rows.select(
        "account_id",
        "signup",
        "used_at",
        cohort=rows.signup.truncate("M").cast(_TS),
        active=rows.open_spells > 0,
    )


def _cohort_base(backend: Any, accounts: ir.Table) -> list[dict[str, Any]]:
    ttv = days_between(accounts.used_at, accounts.signup)
    per = accounts.group_by("cohort").aggregate(
        accounts=accounts.count(),
        activated=accounts.count(where=accounts.used_at.notnull()),
        median_ttv=ttv.median(),
        active=accounts.count(where=accounts.active),
    )
    return fetch_rows(backend, per.order_by("cohort"))


def _mrr_points(
    events: ir.Table, settings: LifecycleSettings, points: list[dt.datetime]
) -> ir.Table:
    """``account_id``, ``point``, ``mrr``: each account's MRR at each time of *points*."""
    table = mrr_at_points(events, settings, points)
    return table.select("account_id", "point", mrr=table.mrr.cast("float64"))


def _stamps(values: list[dt.datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def _cohort_revenue(
    backend: Any,
    accounts: ir.Table,
    months: list[dt.datetime],
    priced: ir.Table,
    as_of: dt.datetime,
) -> dict[dt.datetime, dict[str, Any]]:
    marks = ibis.memtable(
        pa.table(
            {
                "point_cohort": _stamps(months),
                "base_at": _stamps([_add_months(m, 1) for m in months]),
                "m12_at": _stamps([_add_months(m, 13) for m in months]),
            }
        )
    )
    rows = accounts.join(marks, accounts.cohort == marks.point_cohort)
    for name, column in (("base", "base_at"), ("m12", "m12_at"), ("now", None)):
        side = priced.select(
            **{f"{name}_account": "account_id", f"{name}_point": "point", name: "mrr"}
        )
        at = ibis.literal(as_of, _TS) if column is None else rows[column]
        rows = rows.left_join(
            side, [rows.account_id == side[f"{name}_account"], side[f"{name}_point"] == at]
        )
    paying = rows.filter(rows.base.notnull() & (rows.base > 0))
    now, m12 = paying.now.fill_null(0.0), paying.m12.fill_null(0.0)
    per = paying.group_by("cohort").aggregate(
        base=paying.base.sum(),
        now=now.sum(),
        kept_now=ibis.least(now, paying.base).sum(),
        m12=m12.sum(),
        kept_m12=ibis.least(m12, paying.base).sum(),
    )
    return {r["cohort"]: r for r in fetch_rows(backend, per)}


def _retention(
    backend: Any,
    accounts: ir.Table,
    spell_table: ir.Table,
    base: list[dict[str, Any]],
    as_of: dt.datetime,
) -> dict[tuple[dt.datetime, int], tuple[int, int]]:
    """(cohort, month) → (accounts active at the month's end, of those, active now)."""
    cohorts = [row["cohort"] for row in base]
    ended = {c: int(_age_months(c, as_of)) for c in cohorts}  # months ended by as_of
    keys = [(c, m, _add_months(c, m + 1)) for c in cohorts for m in range(ended[c])]
    if not keys:
        return {}
    marks = ibis.memtable(
        pa.table(
            {
                "mark_cohort": _stamps([k[0] for k in keys]),
                "month": pa.array([k[1] for k in keys], pa.int64()),
                "mark_at": _stamps([k[2] for k in keys]),
            }
        )
    )
    s = spell_table.select(spell_account="account_id", spell_start="start", spell_end="end")
    rows = accounts.join(marks, accounts.cohort == marks.mark_cohort)
    rows = rows.join(
        s,
        [
            rows.account_id == s.spell_account,
            s.spell_start <= rows.mark_at,
            s.spell_end.isnull() | (s.spell_end > rows.mark_at),
        ],
    )
    per = rows.group_by(["cohort", "month"]).aggregate(
        active=rows.account_id.nunique(),
        still=rows.account_id.nunique(where=rows.active),
    )
    found = {(r["cohort"], r["month"]): (r["active"], r["still"]) for r in fetch_rows(backend, per)}
    return {(c, m): found.get((c, m), (0, 0)) for c, m, _ in keys}


def _nps(backend: Any, warehouse: Warehouse, keyed: ir.Table, as_of: dt.datetime) -> _NPSByKey:
    """Group key → (respondents, NPS) over the latest answer of each respondent."""
    events = attributed_events(warehouse)
    answers = events.filter(
        (events.event == NPS_EVENT)
        & events.account_id.notnull()
        & (events.timestamp < ibis.literal(as_of, _TS))
    )
    answers = answers.mutate(
        respondent=ibis.coalesce(answers.profile_id, answers.account_id),
        score=json_number(answers.properties.try_cast("json")["score"]),
    )
    answers = answers.filter(answers.score.notnull())
    latest = answers.group_by(["account_id", "respondent"]).aggregate(
        score=answers.score.argmax(answers.timestamp)
    )
    latest = latest.rename(answer_account="account_id")
    joined = keyed.join(latest, keyed.account_id == latest.answer_account)
    per = joined.group_by("key").aggregate(
        n=joined.count(),
        promoters=joined.count(where=joined.score >= 9),
        detractors=joined.count(where=joined.score <= 6),
    )
    out: _NPSByKey = {}
    for r in fetch_rows(backend, per):
        share = fraction(r["promoters"] - r["detractors"], r["n"])
        out[r["key"]] = (int(r["n"]), None if share is None else 100.0 * share)
    return out


def _clv(backend: Any, warehouse: Warehouse, keyed: ir.Table, as_of: dt.datetime) -> _CLVByKey:
    """Group key → mean CLV of its scored accounts, or why there is none."""
    if not warehouse.has_table(_SCORES_TABLE):
        return Unavailable("no scores: run `tenure score` (CLV comes from the scores table)")
    scores = warehouse.table(_SCORES_TABLE)
    if not {"account_id", "clv", "as_of"} <= set(scores.columns):
        return Unavailable("the scores table has no account_id, clv and as_of columns")
    scored_at = backend.execute(scores.as_of.max())
    if scored_at is not None and scored_at > as_of:
        return Unavailable(f"the scores are as of {scored_at:%Y-%m-%d}, after --as-of")
    values = scores.select(score_account="account_id", clv=scores.clv.cast("float64"))
    joined = keyed.join(values, keyed.account_id == values.score_account)
    per = joined.group_by("key").aggregate(clv=joined.clv.mean())
    return {r["key"]: number_or_none(r["clv"]) for r in fetch_rows(backend, per)}


def _pick_clv(clv: _CLVByKey, key: Any) -> float | Unavailable:
    if isinstance(clv, Unavailable):
        return clv
    value = clv.get(key)
    return Unavailable("none of these accounts is scored") if value is None else value


def _pick_nps(nps: _NPSByKey, key: Any) -> tuple[float | Unavailable, int]:
    n, value = nps.get(key, (0, None))
    return (Unavailable("no NPS answers") if value is None else value), n


class _Acquisition:
    """CAC and payback per cohort from the month's spend, pooled for the blended figures."""

    def __init__(self, spend: MonthlySpend | None, margin: float, as_of: dt.datetime) -> None:
        self.spend, self.margin, self.as_of = spend, margin, as_of
        #: Over the cohorts with a CAC: spend, new customers, month-0 MRR.
        self.spent = self.customers = self.base = 0.0

    def cohort(
        self, cohort: dt.datetime, customers: int, base: float | None
    ) -> tuple[float | Unavailable, float | Unavailable]:
        """(CAC, payback months) of a cohort with *customers* and month-0 MRR *base*."""
        if self.spend is None:
            return Unavailable(_NO_SPEND), Unavailable(_NO_SPEND)
        amount = self.spend.amount(cohort.date())
        if amount is None:
            missing = Unavailable(f"no spend row for {cohort:%Y-%m} in the spend data")
            return missing, missing
        if _add_months(cohort, 1) > self.as_of:  # its new customers are not all in yet
            return Unavailable(_MONTH_OPEN), Unavailable(_MONTH_OPEN)
        self.spent += amount
        self.customers += customers
        self.base += base or 0.0
        cac = amount / customers
        return cac, self._payback(amount, base)

    def _payback(self, amount: float, base: float | None) -> float | Unavailable:
        if amount == 0:  # nothing to pay back, whatever the MRR
            return 0.0
        if not base:
            return Unavailable(_NO_BASE)
        # CAC / (MRR₀ per customer × margin): the customer counts cancel out
        return amount / (base * self.margin)

    def blended_cac(self) -> float | Unavailable:
        if self.spend is None:
            return Unavailable(_NO_SPEND)
        if not self.customers:
            return Unavailable("no cohort with a spend row whose signup month has ended")
        return self.spent / self.customers

    def blended_payback(self) -> float | Unavailable:
        cac = self.blended_cac()
        return cac if isinstance(cac, Unavailable) else self._payback(self.spent, self.base)

    def unmatched(self, cohorts: set[dt.date]) -> list[str]:
        """A note on the spend of months before ``as_of`` in which nobody signed up."""
        if self.spend is None:
            return []
        months = [
            f"{m:%Y-%m}"
            for m in self.spend.by_month
            if m not in cohorts and dt.datetime.combine(m, dt.time(), dt.UTC) < self.as_of
        ]
        if not months:
            return []
        return [f"spend in {', '.join(months)} has no signup cohort, so it is in no CAC"]


def _cohort(
    row: dict[str, Any],
    revenue: dict[str, Any],
    curves: dict[tuple[dt.datetime, int], tuple[int, int]],
    nps: _NPSByKey,
    clv: _CLVByKey,
    acquisition: _Acquisition,
    as_of: dt.datetime,
) -> CohortKPIs:
    cohort, n = row["cohort"], int(row["accounts"])
    after_month0 = _age_months(cohort, as_of) - 1
    retention = tuple(active / n for (c, _), (active, _) in sorted(curves.items()) if c == cohort)
    if after_month0 < 0:
        logo_monthly: float | Unavailable = Unavailable(_MONTH_OPEN)
        revenue_churn: float | Unavailable = Unavailable(_MONTH_OPEN)
    else:
        active0, still = curves[cohort, 0]
        logo_monthly = _monthly(fraction(still, active0), after_month0)
        kept = fraction(revenue.get("kept_now"), revenue.get("base"))
        revenue_churn = Unavailable(_NO_BASE) if kept is None else 1.0 - kept
    revenue_monthly: float | Unavailable = (
        revenue_churn
        if isinstance(revenue_churn, Unavailable)
        else _monthly(1.0 - revenue_churn, after_month0)
    )
    grr: float | Unavailable
    nrr: float | Unavailable
    if (month12 := _add_months(cohort, 13)) > as_of:
        grr = nrr = Unavailable(f"cohort too young: its month 12 ends {month12:%Y-%m-%d}")
    elif not revenue.get("base"):
        grr = nrr = Unavailable(_NO_BASE)
    else:
        grr = float(revenue["kept_m12"]) / float(revenue["base"])
        nrr = float(revenue["m12"]) / float(revenue["base"])
    score, respondents = _pick_nps(nps, cohort)
    base = revenue.get("base")
    cac, payback = acquisition.cohort(cohort, n, None if base is None else float(base))
    return CohortKPIs(
        cohort=cohort.date(),
        accounts=n,
        activated=int(row["activated"]),
        activation_rate=fraction(row["activated"], n),
        median_time_to_value_days=number_or_none(row["median_ttv"]),
        active=int(row["active"]),
        logo_churn=fraction(n - int(row["active"]), n),
        logo_churn_monthly=logo_monthly,
        revenue_churn=revenue_churn,
        revenue_churn_monthly=revenue_monthly,
        grr_12m=grr,
        nrr_12m=nrr,
        mean_clv=_pick_clv(clv, cohort),
        nps=score,
        nps_respondents=respondents,
        cac=cac,
        cac_payback_months=payback,
        retention=retention,
    )


def _stages(
    backend: Any, warehouse: Warehouse, stays: ir.Table, priced: ir.Table, as_of: dt.datetime
) -> tuple[StageKPIs, ...]:
    current = current_from_history(stays, as_of=as_of).select("account_id", "stage")
    now = priced.filter(priced.point == ibis.literal(as_of, _TS))
    now = now.select(now_account="account_id", mrr=now.mrr)
    with_mrr = current.left_join(now, current.account_id == now.now_account)
    counts = with_mrr.group_by("stage").aggregate(
        accounts=with_mrr.count(), mrr=with_mrr.mrr.fill_null(0.0).sum()
    )
    per_stage = {r["stage"]: r for r in fetch_rows(backend, counts)}
    following = ibis.window(group_by="account_id", order_by="entered")
    moves = stays.mutate(target=stays.stage.lead().over(following))
    churned = moves.group_by("stage").aggregate(
        entered=moves.account_id.nunique(),
        churned=moves.account_id.nunique(where=moves.target == Stage.CHURNED.value),
    )
    churn = {r["stage"]: r for r in fetch_rows(backend, churned)}
    keyed = current.select("account_id", key="stage")
    nps = _nps(backend, warehouse, keyed, as_of)
    clv = _clv(backend, warehouse, keyed, as_of)
    out = []
    for stage in Stage:
        row, moved = per_stage.get(stage.value, {}), churn.get(stage.value, {})
        rate = fraction(moved.get("churned"), moved.get("entered"))
        score, respondents = _pick_nps(nps, stage.value)
        kpis = StageKPIs(
            stage=stage,
            accounts=int(row.get("accounts", 0)),
            mrr=float(row.get("mrr") or 0.0),
            churn_rate=rate if stage in CUSTOMER_STAGES else None,
            mean_clv=_pick_clv(clv, stage.value),
            nps=score,
            nps_respondents=respondents,
        )
        out.append(kpis)
    return tuple(out)
