"""``simulate()``: run the world month by month and stream every file it writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tenure.simulate._config import SimulationConfig
from tenure.simulate._emit import account_id, events_of_month
from tenure.simulate._files import ExportWriter, corrupt, write_events
from tenure.simulate._world import World, month_bounds

__all__ = ["SimulationProgress", "SimulationReport", "simulate"]

#: Called with (months done, months in total) after each month.
SimulationProgress = Callable[[int, int], None]

_SEGMENTS = ("at_risk", "steady", "thriving")

_ACCOUNT_MONTHS = pa.schema(
    [
        ("account_id", pa.string()),
        ("month", pa.date32()),
        ("hazard", pa.float64()),
        ("churned", pa.bool_()),
        ("churned_at", pa.timestamp("s", tz="UTC")),
        ("involuntary", pa.bool_()),
        ("health", pa.float64()),
        ("engagement", pa.float64()),
        ("segment", pa.string()),
        ("mrr", pa.float64()),
        ("champion_present", pa.bool_()),
        ("open_tickets", pa.int64()),
    ]
)


@dataclass(frozen=True, slots=True)
class SimulationReport:
    out_dir: Path
    seed: int
    accounts: int
    months: int
    start: dt.date
    end: dt.date  # first day after the window: ingest with a clock at or after it
    events: int  # event records written, malformed ones included
    malformed: int  # of which deliberately malformed (each ends in quarantine)
    invoices: int
    tickets: int
    opportunities: int
    churned: int
    mrr_start: float
    mrr_end: float
    monthly_logo_churn: float  # churned / customer-months at risk
    nrr: float  # MRR now of the customers of nrr_months ago, over their MRR then
    nrr_months: int
    win_rate: float  # won / closed opportunities


def _times(seconds: np.ndarray, present: np.ndarray) -> pa.Array:
    """Unix seconds as UTC timestamps, null where not *present*."""
    values = pa.array(np.where(present, seconds, 0), pa.int64(), mask=~np.asarray(present, bool))
    return values.cast(pa.timestamp("s", tz="UTC"))


def _segment(health: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(_SEGMENTS)[np.digitize(health, [-0.5, 0.5])], pa.string())


def simulate(
    out_dir: Path,
    config: SimulationConfig,
    *,
    seed: int,
    progress: SimulationProgress | None = None,
) -> SimulationReport:
    """Write a simulated company into *out_dir*: ``events/``, ``exports/`` and ``truth/``.

    The same *config* and *seed* give byte-identical files. Memory is bounded
    by one month of events plus per-account state.
    """
    events_dir, exports_dir, truth_dir = out_dir / "events", out_dir / "exports", out_dir / "truth"
    for path in (events_dir, exports_dir, truth_dir):
        path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    side = np.random.default_rng(
        [seed, 1]
    )  # corruption and export details: the world's draws stay put
    world = World(config, rng)
    first_start, _ = month_bounds(config, 0)
    _, sim_end = month_bounds(config, config.months - 1)
    nrr_months = min(12, config.months)
    nrr_month = config.months - nrr_months
    prefix = f"sim{seed}"
    events = malformed = churned = at_risk = won = closed = 0
    mrr_start = 0.0
    cohort = np.zeros(0, np.int64)
    cohort_mrr = 0.0
    truth = pq.ParquetWriter(
        truth_dir / "account_months.parquet", _ACCOUNT_MONTHS, compression="zstd"
    )
    opportunities = pq.ParquetWriter(
        truth_dir / "opportunities.parquet",
        pa.schema(
            [
                ("opportunity_id", pa.string()),
                ("group_id", pa.string()),
                ("p_win", pa.float64()),
                ("won", pa.bool_()),
                ("closed_at", pa.timestamp("s", tz="UTC")),
            ]
        ),
        compression="zstd",
    )
    try:
        with ExportWriter(exports_dir, sim_end) as exports:
            for m in range(config.months):
                facts = world.advance()
                if m == 0:
                    mrr_start = float(facts.truth_mrr.sum())
                if m == nrr_month:
                    cohort, cohort_mrr = facts.truth_account, float(facts.truth_mrr.sum())
                table = events_of_month(world, facts, prefix)
                table, rows, kinds = corrupt(table, side, config.malformed_fraction, config.format)
                write_events(
                    events_dir / f"{np.datetime64(config.start, 'M') + m}.{config.format.value}",
                    table,
                    rows,
                    kinds,
                    config.format,
                )
                events += table.num_rows
                malformed += len(rows)
                exports.month(world, facts, side)
                acc = facts.truth_account
                churn_ts = world.state.churn_ts[acc]
                now_churned = (churn_ts >= facts.start) & (churn_ts < facts.end)
                churned += int(now_churned.sum())
                at_risk += len(acc)
                won += int(facts.opp_won.sum())
                closed += len(facts.opp_won)
                n = len(acc)
                truth.write_table(
                    pa.table(
                        {
                            "account_id": account_id(acc),
                            "month": pa.array(
                                np.full(n, np.datetime64(config.start, "M") + m).astype(
                                    "datetime64[D]"
                                ),
                                pa.date32(),
                            ),
                            "hazard": facts.truth_hazard,
                            "churned": now_churned,
                            "churned_at": _times(churn_ts, now_churned),
                            "involuntary": now_churned & world.state.churn_involuntary[acc],
                            "health": facts.truth_health,
                            "engagement": facts.truth_engagement,
                            "segment": _segment(facts.truth_health),
                            "mrr": facts.truth_mrr,
                            "champion_present": facts.truth_champion,
                            "open_tickets": facts.truth_open_tickets,
                        },
                        schema=_ACCOUNT_MONTHS,
                    )
                )
                group = np.where(
                    facts.opp_won,
                    account_id(np.maximum(facts.opp_account, 0)).to_numpy(zero_copy_only=False),
                    None,
                )
                opportunities.write_table(
                    pa.table(
                        {
                            "opportunity_id": pa.array(
                                [f"deal_{i + 1:07d}" for i in facts.opp_id], pa.string()
                            ),
                            "group_id": pa.array(group, pa.string()),
                            "p_win": facts.opp_p_win,
                            "won": facts.opp_won,
                            "closed_at": pa.array(facts.opp_close_ts, pa.int64()).cast(
                                pa.timestamp("s", tz="UTC")
                            ),
                        }
                    )
                )
                if progress is not None:
                    progress(m + 1, config.months)
            exports.snapshots(world)
            invoices, tickets = exports.invoice_count, exports.ticket_count
    finally:
        truth.close()
        opportunities.close()
    s = world.state
    alive_end = np.flatnonzero(s.churn_ts[: s.n] < 0).astype(np.int64)
    mrr_end = float(s.mrr(alive_end, world.price).sum())
    kept = cohort[s.churn_ts[cohort] < 0]
    nrr = float(s.mrr(kept, world.price).sum()) / cohort_mrr if cohort_mrr else float("nan")
    _write_accounts(world, truth_dir / "accounts.parquet", first_start)
    end_date = (
        (np.datetime64(config.start, "M") + config.months).astype("datetime64[D]").astype(dt.date)
    )
    return SimulationReport(
        out_dir=out_dir,
        seed=seed,
        accounts=s.n,
        months=config.months,
        start=config.start,
        end=end_date,
        events=events,
        malformed=malformed,
        invoices=invoices,
        tickets=tickets,
        opportunities=closed,
        churned=churned,
        mrr_start=round(mrr_start, 2),
        mrr_end=round(mrr_end, 2),
        monthly_logo_churn=churned / at_risk if at_risk else 0.0,
        nrr=nrr,
        nrr_months=nrr_months,
        win_rate=won / closed if closed else float("nan"),
    )


def _write_accounts(world: World, path: Path, window_start: int) -> None:
    """One row per account: latents at the end, outcome, realized and expected value."""
    s = world.state
    acc = np.arange(s.n, dtype=np.int64)
    churned = s.churn_ts[acc] >= 0
    mrr = s.mrr(acc, world.price)
    # expected discounted value of future revenue if the account kept this month's hazard:
    # mrr * sum_t ((1 - h) / (1 + d)^(1/12))^t. A cheap closed form, not a forward simulation.
    monthly_discount = (1 + world.config.churn.discount_rate) ** (-1 / 12)
    survive = np.clip(1 - world.last_hazard[acc], 0.0, 0.999)
    future = np.where(churned, 0.0, mrr / (1 - survive * monthly_discount))
    pq.write_table(
        pa.table(
            {
                "account_id": account_id(acc),
                "started_at": pa.array(s.start_ts[acc], pa.int64()).cast(
                    pa.timestamp("s", tz="UTC")
                ),
                "acquired_in_window": s.start_ts[acc] >= window_start,
                "churned": churned,
                "churned_at": _times(s.churn_ts[acc], churned),
                "involuntary": s.churn_involuntary[acc],
                "fit": s.fit[acc],
                "price_sensitivity": s.price_sensitivity[acc],
                "engagement": s.engagement[acc],
                "health": s.health[acc],
                "segment": _segment(s.health[acc]),
                "plan": pa.array(s.plan[acc], pa.int64()),
                "annual": s.annual[acc],
                "seats": s.seats[acc],
                "mrr": np.where(churned, 0.0, mrr),
                "realized_revenue": np.round(s.revenue[acc], 2),
                "realized_clv_discounted": np.round(s.discounted_revenue[acc], 2),
                "clv_censored": ~churned,
                "expected_future_value_at_current_hazard": np.round(future, 2),
            }
        ),
        path,
        compression="zstd",
    )
