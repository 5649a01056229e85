"""The sales funnel: which open deals will be won, which leads will become deals.

Two point-in-time frames feed two :class:`~tenure.models.propensity.PropensityClassifier`
models:

* :func:`opportunity_frame` — every opportunity open at a cutoff (created before
  it, not won or lost before it) with what was known about it then: stage, age,
  days in stage, stage changes, amount and the account's lead source; its label
  is how it ended, the first ``Opportunity Won`` or ``Opportunity Lost`` at or
  after the cutoff.
* :func:`lead_frame` — every account that is a lead at a cutoff (a ``Lead
  Created`` at most 90 days old and no opportunity yet) with its source, age,
  qualification and recent activity; its label is whether an opportunity was
  created within the horizon.

Labels come only from events before ``observed_until``, the time the run stands
at. :func:`train_funnel` validates each model on the newest cutoffs (fitted on
the older ones), refits it on every labelled row and registers it;
:func:`score_funnel` writes ``opportunity_scores`` (win probability, expected
value, reasons) and ``lead_scores`` with the production versions.

Page views are anonymous until a sign-up or a group call ties the visitor to an
account, and identity stitching applies that tie to the visitor's whole past.
Counted through today's identity graph, a lead's pre-lead browsing would show
up only if the lead later signed up: the outcome leaking into the feature. So a
page view counts for an account at a cutoff only when the page names the
account itself, or its visitor (user id or anonymous id) had been seen with one
of the account's group ids before that cutoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa

from tenure._event_values import json_number, typed_identifier
from tenure.errors import ModelError
from tenure.features import attributed_events
from tenure.models._labels import cutoffs_table, monthly_cutoffs
from tenure.models.metrics import classification_report
from tenure.models.propensity import PropensityClassifier
from tenure.models.registry import ModelRegistry, ModelStatus, ModelVersion

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tenure.warehouse import Warehouse

__all__ = [
    "LEAD_MODEL",
    "LEAD_SCORES_TABLE",
    "OPPORTUNITY_MODEL",
    "OPPORTUNITY_SCORES_TABLE",
    "FunnelScores",
    "FunnelTraining",
    "lead_frame",
    "opportunity_frame",
    "score_funnel",
    "train_funnel",
]

OPPORTUNITY_MODEL = "opportunity_win"
LEAD_MODEL = "lead_conversion"
OPPORTUNITY_SCORES_TABLE = "opportunity_scores"
LEAD_SCORES_TABLE = "lead_scores"

_CREATED = "Opportunity Created"
_STAGE_CHANGED = "Opportunity Stage Changed"
_WON = "Opportunity Won"
_LOST = "Opportunity Lost"
_LEAD_CREATED = "Lead Created"
_LEAD_QUALIFIED = "Lead Qualified"
#: The stage of an opportunity whose events never named one.
_FIRST_STAGE = "created"
#: A lead older than this (since its latest Lead Created) is no longer scored.
_LEAD_MAX_AGE_DAYS = 90
_ACTIVITY_DAYS = 30
#: Lead conversion horizon, and the gap between the last training cutoff and as_of.
_HORIZON_DAYS = 30
_MIN_CLASS = 10
_REASONS = 3
_SECONDS_PER_DAY = 86_400.0

#: What each model reads. The registry records a hash of each definition, so change
#: the wording whenever the computation changes.
_OPPORTUNITY_FEATURES: dict[str, str] = {
    "stage": "latest stage named before the cutoff by Opportunity Created or Stage Changed",
    "age_days": "days from Opportunity Created to the cutoff",
    "days_in_stage": "days from the latest Stage Changed (else creation) to the cutoff",
    "stage_changes": "Opportunity Stage Changed events before the cutoff",
    "amount": "latest amount named before the cutoff by Created or Stage Changed",
    "lead_source": "lead_source of the account's first Lead Created before the cutoff",
}
_LEAD_FEATURES: dict[str, str] = {
    "lead_source": "lead_source of the account's latest Lead Created before the cutoff",
    "days_since_lead": "days from the latest Lead Created to the cutoff",
    "qualified": "1 if a Lead Qualified of the account came before the cutoff",
    "page_views_30d": "page views in the 30 days before the cutoff by visitors tied to "
    "the account (by its group id) before the cutoff",
    "events_30d": "track events attributed to the account in the 30 days before the cutoff",
}

_REASON_TEXT: dict[str, Callable[[Any], str]] = {
    "stage": lambda v: f"in stage {v}",
    "age_days": lambda v: f"open for {v:.0f} days",
    "days_in_stage": lambda v: f"{v:.0f} days in its current stage",
    "stage_changes": lambda v: f"{v:.0f} stage changes so far",
    "amount": lambda v: f"amount {v:,.0f}",
    "lead_source": lambda v: f"lead source {v}",
    "days_since_lead": lambda v: f"lead created {v:.0f} days ago",
    "qualified": lambda v: "qualified" if v else "not qualified yet",
    "page_views_30d": lambda v: f"{v:.0f} page views in 30 days",
    "events_30d": lambda v: f"{v:.0f} events in 30 days",
}


# ------------------------------------------------------------------ frames


def opportunity_frame(
    warehouse: Warehouse, cutoffs: Sequence[dt.datetime], *, observed_until: dt.datetime
) -> pd.DataFrame:
    """Opportunities open at each cutoff, with point-in-time features and how they ended.

    One row per (``opportunity_id``, ``cutoff``) for an opportunity created
    before the cutoff and neither won nor lost before it. Columns:
    ``opportunity_id``, ``account_id``, ``cutoff``, ``stage``, ``age_days``,
    ``days_in_stage``, ``stage_changes``, ``amount``, ``lead_source``, and the
    labels ``closed_at`` (first win or loss at or after the cutoff, before
    *observed_until*; missing while open) and ``won`` (1/0; missing while open).
    Only events before *observed_until* are read.
    """
    known = _known_events(warehouse, observed_until)
    known = known.filter(known.event.isin([_CREATED, _STAGE_CHANGED, _WON, _LOST, _LEAD_CREATED]))
    props = known.properties.try_cast("json")
    narrow = known.select(
        opportunity_id=_text(props["opportunity_id"]),
        account_id=known.account_id,
        event=known.event,
        at=known.timestamp,
        stage=props["stage"].str.nullif(""),
        amount=json_number(props["amount"]),
        lead_source=_text(props["lead_source"]),
    )
    cuts = cutoffs_table(cutoffs)
    with narrow.cache() as cached:
        marks = cached.filter(cached.opportunity_id.notnull() & (cached.event != _LEAD_CREATED))
        before = marks.join(cuts, marks.at < cuts.cutoff)
        staged = before.event.isin([_CREATED, _STAGE_CHANGED])
        changed = before.event == _STAGE_CHANGED
        state = before.group_by(["opportunity_id", "cutoff"]).aggregate(
            account_id=before.account_id.argmax(before.at, where=before.account_id.notnull()),
            created_at=before.at.min(where=before.event == _CREATED),
            closes=before.at.count(where=before.event.isin([_WON, _LOST])),
            stage=before.stage.argmax(before.at, where=staged & before.stage.notnull()),
            changed_at=before.at.max(where=changed),
            stage_changes=before.at.count(where=changed),
            amount=before.amount.argmax(before.at, where=staged & before.amount.notnull()),
        )
        open_ = state.filter(state.created_at.notnull() & (state.closes == 0))

        ends = marks.filter(marks.event.isin([_WON, _LOST]))
        ends = ends.select(
            end_opportunity=ends.opportunity_id,
            end_at=ends.at,
            end_won=(ends.event == _WON).cast("int64"),
        )
        ending = open_.join(
            ends, [open_.opportunity_id == ends.end_opportunity, ends.end_at >= open_.cutoff]
        )
        first_end = ending.group_by(["opportunity_id", "cutoff"]).aggregate(
            closed_at=ending.end_at.min(), won=ending.end_won.argmin(ending.end_at)
        )
        first_end = first_end.rename(end_opportunity="opportunity_id", end_cutoff="cutoff")

        # lead_source of the account's first Lead Created before the cutoff
        leads = cached.filter((cached.event == _LEAD_CREATED) & cached.account_id.notnull())
        leads = leads.join(cuts, leads.at < cuts.cutoff)
        sources = leads.group_by(["account_id", "cutoff"]).aggregate(
            lead_source=leads.lead_source.argmin(leads.at)
        )
        sources = sources.rename(source_account="account_id", source_cutoff="cutoff")

        joined = open_.left_join(
            first_end,
            [
                open_.opportunity_id == first_end.end_opportunity,
                open_.cutoff == first_end.end_cutoff,
            ],
        )
        joined = joined.left_join(
            sources,
            [joined.account_id == sources.source_account, joined.cutoff == sources.source_cutoff],
        )
        expr = joined.select(
            "opportunity_id",
            "account_id",
            "cutoff",
            "created_at",
            "stage_changes",
            "amount",
            "lead_source",
            "closed_at",
            "won",
            stage=joined.stage.fill_null(_FIRST_STAGE),
            stage_at=ibis.coalesce(joined.changed_at, joined.created_at),
        )
        frame = _to_pandas(warehouse, expr)
    frame["age_days"] = _days(frame["cutoff"] - frame["created_at"])
    frame["days_in_stage"] = _days(frame["cutoff"] - frame["stage_at"])
    frame["stage_changes"] = frame["stage_changes"].astype("int64")
    frame["amount"] = frame["amount"].astype("float64")
    frame["won"] = frame["won"].astype("Int64")
    columns = ["opportunity_id", "account_id", "cutoff", *_OPPORTUNITY_FEATURES]
    frame = frame[[*columns, "closed_at", "won"]]
    return frame.sort_values(["cutoff", "opportunity_id"], ignore_index=True)


def lead_frame(
    warehouse: Warehouse,
    cutoffs: Sequence[dt.datetime],
    *,
    observed_until: dt.datetime,
    horizon_days: int = _HORIZON_DAYS,
) -> pd.DataFrame:
    """Accounts that are leads at each cutoff, with point-in-time features and their outcome.

    An account is a lead at a cutoff when its latest ``Lead Created`` before the
    cutoff is at most 90 days old and it has no ``Opportunity Created`` before
    the cutoff. Columns: ``account_id``, ``cutoff``, ``lead_source`` (of that
    latest lead), ``days_since_lead``, ``qualified`` (a ``Lead Qualified`` before
    the cutoff, 0/1), ``page_views_30d``, ``events_30d`` and the label
    ``converted``: 1 when an opportunity was created in ``[cutoff, cutoff +
    horizon)``, 0 when not, missing when the horizon ends after *observed_until*.
    """
    known = _known_events(warehouse, observed_until)
    known = known.filter(known.account_id.notnull())
    # only accounts that were ever leads, and nothing a label or feature cannot reach
    reach = max(cutoffs, default=observed_until) + dt.timedelta(days=horizon_days)
    ever = known.filter(known.event == _LEAD_CREATED).select(ever_account="account_id").distinct()
    known = known.filter(known.timestamp < reach).semi_join(
        ever, known.account_id == ever.ever_account
    )
    narrow = known.select(
        account_id=known.account_id,
        event=known.event,
        at=known.timestamp,
        lead_source=(known.event == _LEAD_CREATED).ifelse(
            _text(known.properties.try_cast("json")["lead_source"]), ibis.null("string")
        ),
    )
    cuts = cutoffs_table(cutoffs)
    with narrow.cache() as marks:
        created = marks.filter(marks.event == _LEAD_CREATED)
        before = created.join(cuts, created.at < cuts.cutoff)
        leads = before.group_by(["account_id", "cutoff"]).aggregate(
            lead_at=before.at.max(), lead_source=before.lead_source.argmax(before.at)
        )
        leads = leads.filter(leads.lead_at >= leads.cutoff - ibis.interval(days=_LEAD_MAX_AGE_DAYS))
        opened = marks.filter(marks.event == _CREATED)
        earlier = opened.select(opened_account="account_id", opened_at="at")
        leads = leads.anti_join(
            earlier, [leads.account_id == earlier.opened_account, earlier.opened_at < leads.cutoff]
        )
        opened = opened.select(mark_account="account_id", mark_at="at")
        qualified = marks.filter(marks.event == _LEAD_QUALIFIED).select(
            mark_account="account_id", mark_at="at"
        )
        activity = marks.select(mark_account="account_id", mark_at="at")
        window_start = leads.cutoff - ibis.interval(days=_ACTIVITY_DAYS)
        horizon_end = leads.cutoff + ibis.interval(days=horizon_days)
        counts = {
            "qualified": _count_marks(leads, qualified, lambda at: at < leads.cutoff),
            "events_30d": _count_marks(
                leads, activity, lambda at: (at < leads.cutoff) & (at >= window_start)
            ),
            "opportunities": _count_marks(
                leads, opened, lambda at: (at >= leads.cutoff) & (at < horizon_end)
            ),
            "page_views_30d": _page_views(warehouse, leads, observed_until),
        }
        expr = leads
        for name, counted in counts.items():
            expr = expr.left_join(
                counted,
                [expr.account_id == counted.count_account, expr.cutoff == counted.count_cutoff],
            ).select(*expr.columns, counted.matched.fill_null(0).name(name))
        frame = _to_pandas(warehouse, expr)
    frame["days_since_lead"] = _days(frame["cutoff"] - frame["lead_at"])
    frame["qualified"] = (frame["qualified"] > 0).astype("int64")
    for name in ("page_views_30d", "events_30d", "opportunities"):
        frame[name] = frame[name].astype("int64")
    unknown = frame["cutoff"] + pd.Timedelta(days=horizon_days) > pd.Timestamp(observed_until)
    frame["converted"] = (frame["opportunities"] > 0).astype("Int64").mask(unknown)
    frame = frame[["account_id", "cutoff", *_LEAD_FEATURES, "converted"]]
    return frame.sort_values(["cutoff", "account_id"], ignore_index=True)


def _known_events(warehouse: Warehouse, observed_until: dt.datetime) -> ir.Table:
    events = attributed_events(warehouse)
    return events.filter(events.timestamp < observed_until)


def _count_marks(
    pairs: ir.Table,
    marks: ir.Table,
    within: Callable[[ir.TimestampColumn], ir.BooleanValue],
) -> ir.Table:
    """Per (account, cutoff) of *pairs*: *marks* of the account whose time is *within*."""
    joined = pairs.join(marks, [pairs.account_id == marks.mark_account, within(marks.mark_at)])
    counted = joined.group_by(["account_id", "cutoff"]).aggregate(matched=joined.mark_at.count())
    return counted.rename(count_account="account_id", count_cutoff="cutoff")


def _page_views(warehouse: Warehouse, pairs: ir.Table, observed_until: dt.datetime) -> ir.Table:
    """Page views in the 30 days before each cutoff that were the account's by then.

    A page counts when it names one of the account's group ids, or its visitor's
    user id or anonymous id had come with one of them before the cutoff (see the
    module docstring for why today's identity graph is not used).
    """
    raw = warehouse.events()
    raw = raw.filter(raw.timestamp < observed_until)
    groups = warehouse.table("account_nodes").select(
        group_key="identifier", group_account="account_id"
    )
    keyed = raw.select(
        "message_id",
        "type",
        at=raw.timestamp,
        user_key=typed_identifier("user_id", raw.user_id),
        anonymous_key=typed_identifier("anonymous_id", raw.anonymous_id),
        group_key=typed_identifier("group_id", raw.group_id),
    )
    keyed = keyed.left_join(groups, keyed.group_key == groups.group_key).select(
        "message_id", "type", "at", "user_key", "anonymous_key", "group_account"
    )
    grouped = keyed.filter(keyed.group_account.notnull())
    ties = ibis.union(
        *(
            grouped.select(tie_key=grouped[column], tie_account="group_account", tie_at="at")
            for column in ("user_key", "anonymous_key")
        )
    )
    ties = ties.filter(ties.tie_key.notnull())
    ties = ties.group_by(["tie_key", "tie_account"]).aggregate(tied_at=ties.tie_at.min())

    pages = keyed.filter(keyed.type == "page")
    visitors = ibis.union(
        *(
            pages.select("message_id", "at", visitor=pages[column])
            for column in ("user_key", "anonymous_key")
        )
    )
    via_visitor = visitors.join(ties, visitors.visitor == ties.tie_key).select(
        "message_id", "at", credit_account="tie_account", credited_at="tied_at"
    )
    named = pages.filter(pages.group_account.notnull()).select(
        "message_id", "at", credit_account="group_account", credited_at="at"
    )
    credits = ibis.union(named, via_visitor)
    joined = pairs.join(
        credits,
        [
            pairs.account_id == credits.credit_account,
            credits.credited_at < pairs.cutoff,
            credits.at < pairs.cutoff,
            credits.at >= pairs.cutoff - ibis.interval(days=_ACTIVITY_DAYS),
        ],
    )
    counted = joined.group_by(["account_id", "cutoff"]).aggregate(
        matched=joined.message_id.nunique()
    )
    return counted.rename(count_account="account_id", count_cutoff="cutoff")


def _text(value: ir.JSONValue) -> ir.StringValue:
    """A JSON property as text, whether it was written as a string or a whole number."""
    return ibis.coalesce(value.str, value.int.cast("string")).nullif("")


def _to_pandas(warehouse: Warehouse, expr: ir.Table) -> pd.DataFrame:
    frame: pd.DataFrame = warehouse.backend.to_pyarrow(expr).to_pandas()
    return frame


def _days(delta: pd.Series) -> pd.Series:
    days: pd.Series = delta.dt.total_seconds() / _SECONDS_PER_DAY
    return days.astype("float64")


# ------------------------------------------------------------------ training


@dataclass(frozen=True, slots=True)
class FunnelTraining:
    """What one funnel training run produced."""

    as_of: dt.datetime
    versions: dict[str, ModelVersion]
    #: The metrics each model was registered with (out-of-time validation, row counts).
    metrics: dict[str, dict[str, float]]
    #: Models not trained this run, and why.
    skipped: dict[str, str]
    promoted: list[str]
    #: Labelled rows each model's frame had (trained or not).
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Spec:
    frame: pd.DataFrame
    label: str
    features: dict[str, str]
    target: str
    description: str
    params: dict[str, Any]


def train_funnel(
    warehouse: Warehouse,
    registry: ModelRegistry,
    *,
    as_of: dt.datetime,
    history_months: int = 12,
    validation_months: int = 3,
    actor: str = "system",
    promote: bool | None = None,
    random_state: int = 0,
) -> FunnelTraining:
    """Train and register ``opportunity_win`` and ``lead_conversion`` on history before *as_of*.

    Cutoffs are *history_months* monthly (30-day) steps ending 30 days before
    *as_of*. Each model is fitted on the older cutoffs and scored on the newest
    *validation_months* (the metrics it is registered with), then refitted on
    every row whose label is known. A model with fewer than 10 outcomes of a
    kind, or whose older or newer cutoffs cannot be fitted or scored, is
    skipped with the reason. New versions are candidates; ``promote=True``
    makes them production, ``None`` only when a model has none yet.
    """
    if history_months < 2 or not 1 <= validation_months < history_months:
        raise ModelError(
            f"out-of-time validation needs 1 ≤ validation_months < history_months "
            f"(got validation_months={validation_months}, history_months={history_months})",
            hint="keep some older months to fit on, e.g. --history-months 12 --validation-months 3",
        )
    seconds: dict[str, float] = {}
    cutoffs = monthly_cutoffs(as_of - dt.timedelta(days=_HORIZON_DAYS), history_months)
    started = time.perf_counter()
    opportunities = opportunity_frame(warehouse, cutoffs, observed_until=as_of)
    leads = lead_frame(warehouse, cutoffs, observed_until=as_of, horizon_days=_HORIZON_DAYS)
    seconds["frames"] = time.perf_counter() - started
    specs = {
        OPPORTUNITY_MODEL: _Spec(
            opportunities,
            "won",
            _OPPORTUNITY_FEATURES,
            "win",
            "P(an open opportunity is won rather than lost), out-of-time validated",
            {},
        ),
        LEAD_MODEL: _Spec(
            leads,
            "converted",
            _LEAD_FEATURES,
            "conversion",
            f"P(a lead becomes an opportunity within {_HORIZON_DAYS} days), out-of-time validated",
            {"horizon_days": _HORIZON_DAYS},
        ),
    }
    registered: dict[str, ModelVersion] = {}
    metrics: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    rows: dict[str, int] = {}
    for name, spec in specs.items():
        started = time.perf_counter()
        known = spec.frame[spec.frame[spec.label].notna()].reset_index(drop=True)
        rows[name] = len(known)
        fitted = _fit_validated(known, spec, validation_months, random_state)
        seconds[name] = time.perf_counter() - started
        if isinstance(fitted, str):
            skipped[name] = fitted
            continue
        model, metrics[name] = fitted
        registered[name] = registry.register(
            name,
            model,
            training_start=min(known["cutoff"]).to_pydatetime(),
            training_end=as_of,
            feature_hashes={
                feature: hashlib.sha256(f"{name}:{feature}:{meaning}".encode()).hexdigest()[:16]
                for feature, meaning in spec.features.items()
            },
            metrics=metrics[name],
            params={**model.get_params(), **spec.params},
            description=spec.description,
            actor=actor,
        )
    promoted = []
    for name, version in registered.items():
        if promote or (promote is None and registry.production(name) is None):
            registry.promote(name, version.version, to=ModelStatus.PRODUCTION, actor=actor)
            promoted.append(name)
    return FunnelTraining(
        as_of=as_of,
        versions={name: registry.get(name, v.version) for name, v in registered.items()},
        metrics=metrics,
        skipped=skipped,
        promoted=promoted,
        rows=rows,
        seconds=seconds,
    )


def _fit_validated(
    known: pd.DataFrame, spec: _Spec, validation_months: int, random_state: int
) -> tuple[PropensityClassifier, dict[str, float]] | str:
    """The model refitted on every row and its out-of-time metrics, or why it cannot be."""
    y = known[spec.label].to_numpy(dtype=np.int64)
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    if min(positives, negatives) < _MIN_CLASS:
        return (
            f"{positives} positive and {negatives} negative outcomes ({_MIN_CLASS} of each needed)"
        )
    cutoffs = sorted(known["cutoff"].unique())
    if len(cutoffs) < 2:
        return f"labelled rows at {len(cutoffs)} cutoff; out-of-time validation needs 2 or more"
    split = cutoffs[-validation_months] if len(cutoffs) > validation_months else cutoffs[-1]
    older = (known["cutoff"] < split).to_numpy()
    fit_y, check_y = y[older], y[~older]
    if min(fit_y.sum(), fit_y.size - fit_y.sum()) < _MIN_CLASS:
        return (
            f"the cutoffs before {pd.Timestamp(split):%Y-%m-%d} hold {int(fit_y.sum())} positive "
            f"and {int(fit_y.size - fit_y.sum())} negative outcomes "
            f"({_MIN_CLASS} of each needed to fit before validating)"
        )
    if check_y.min() == check_y.max():
        return (
            f"the validation cutoffs (from {pd.Timestamp(split):%Y-%m-%d}) hold only "
            f"outcome {int(check_y[0])} across {check_y.size} rows"
        )
    X = known[list(spec.features)]
    params: dict[str, Any] = {"target_name": spec.target, "n_jobs": 1, "random_state": random_state}
    check = PropensityClassifier(**params).fit(X[older], fit_y)
    validation = classification_report(check_y, check.predict_proba(X[~older])[:, 1])
    model = PropensityClassifier(**params).fit(X, y)
    metrics = {
        **validation.as_dict(),
        "rows": float(y.size),
        "positives": float(positives),
        "validation_rows": float(check_y.size),
    }
    return model, metrics


# ------------------------------------------------------------------ scoring


@dataclass(frozen=True, slots=True)
class FunnelScores:
    """What one funnel scoring run wrote: rows per table and the model versions used."""

    as_of: dt.datetime
    rows: dict[str, int]
    versions: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


def score_funnel(
    warehouse: Warehouse, registry: ModelRegistry, *, as_of: dt.datetime
) -> FunnelScores:
    """Score open opportunities and current leads at *as_of* with the production models.

    Writes ``opportunity_scores`` (win probability, expected value = amount ×
    probability, top reasons) and ``lead_scores``, each replaced as a whole. A
    model without a production version is skipped and its table left as it is.
    """
    rows: dict[str, int] = {}
    versions: dict[str, str] = {}
    seconds: dict[str, float] = {}
    stamp = pa.timestamp("us", tz="UTC")

    started = time.perf_counter()
    loaded = _production(registry, OPPORTUNITY_MODEL)
    if loaded is not None:
        version, model = loaded
        frame = opportunity_frame(warehouse, [as_of], observed_until=as_of)
        X = frame[list(model.feature_names_in_)]
        p = model.predict_proba(X)[:, 1] if len(frame) else np.zeros(0)
        reasons = model.explain(X, top_k=_REASONS, describe=_describe) if len(frame) else []
        amount = frame["amount"].to_numpy(dtype=np.float64)
        table = pa.table(
            {
                "opportunity_id": pa.array(frame["opportunity_id"], pa.string()),
                "account_id": pa.array(frame["account_id"], pa.string()),
                "as_of": pa.array([as_of] * len(frame), stamp),
                "stage": pa.array(frame["stage"], pa.string()),
                "age_days": pa.array(frame["age_days"], pa.float64()),
                "amount": pa.array(amount, pa.float64(), from_pandas=True),
                "win_probability": pa.array(p, pa.float64()),
                "expected_value": pa.array(amount * p, pa.float64(), from_pandas=True),
                "reasons": pa.array(
                    [json.dumps([r.as_dict() for r in row]) for row in reasons], pa.string()
                ),
                "model": pa.array([version.label] * len(frame), pa.string()),
            }
        )
        warehouse.replace_table(OPPORTUNITY_SCORES_TABLE, table)
        rows[OPPORTUNITY_SCORES_TABLE] = len(frame)
        versions[OPPORTUNITY_MODEL] = version.label
        seconds[OPPORTUNITY_MODEL] = time.perf_counter() - started

    started = time.perf_counter()
    loaded = _production(registry, LEAD_MODEL)
    if loaded is not None:
        version, model = loaded
        frame = lead_frame(warehouse, [as_of], observed_until=as_of)
        X = frame[list(model.feature_names_in_)]
        p = model.predict_proba(X)[:, 1] if len(frame) else np.zeros(0)
        table = pa.table(
            {
                "account_id": pa.array(frame["account_id"], pa.string()),
                "as_of": pa.array([as_of] * len(frame), stamp),
                "lead_source": pa.array(frame["lead_source"], pa.string()),
                "days_since_lead": pa.array(frame["days_since_lead"], pa.float64()),
                "conversion_probability": pa.array(p, pa.float64()),
                "model": pa.array([version.label] * len(frame), pa.string()),
            }
        )
        warehouse.replace_table(LEAD_SCORES_TABLE, table)
        rows[LEAD_SCORES_TABLE] = len(frame)
        versions[LEAD_MODEL] = version.label
        seconds[LEAD_MODEL] = time.perf_counter() - started
    return FunnelScores(as_of=as_of, rows=rows, versions=versions, seconds=seconds)


def _production(
    registry: ModelRegistry, name: str
) -> tuple[ModelVersion, PropensityClassifier] | None:
    version = registry.production(name)
    if version is None:
        return None
    model = registry.load(version)
    if not isinstance(model, PropensityClassifier):
        raise ModelError(
            f"production version {version.label} is a {type(model).__name__}, "
            "not a PropensityClassifier",
            hint=f"promote a version trained by train_funnel, or retire {version.label}",
        )
    return version, model


def _describe(feature: str, value: object) -> str:
    if value is None:
        return f"{feature.replace('_', ' ')} unknown"
    render = _REASON_TEXT.get(feature)
    return render(value) if render is not None else f"{feature} is {value}"
