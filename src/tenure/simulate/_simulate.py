"""``Simulation``: run the world month by month, actions in, files out; ``simulate()`` runs it
with no actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tenure.errors import ConfigError, ConfigProblem
from tenure.simulate._config import SimulationConfig
from tenure.simulate._emit import (
    CHANNELS,
    MessageBatch,
    account_id,
    event_blocks,
    lead_channels,
    trial_accounts,
)
from tenure.simulate._files import EventFile, ExportWriter, corrupt, read_text_csv, rows_as_of
from tenure.simulate._interventions import (
    ACTION_TYPES,
    SEGMENTS,
    Action,
    Deliveries,
    SegmentModel,
    action_costs,
    deliver,
    logit_shift,
)
from tenure.simulate._world import MonthFacts, World, compose_hazard, month_bounds

__all__ = ["Simulation", "SimulationProgress", "SimulationReport", "StepReport", "simulate"]

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

_EFFECTS = pa.schema(
    [
        ("account_id", pa.string()),
        ("month", pa.date32()),
        ("response_segment", pa.string()),
        *[(f"effect_logodds_{t.value}", pa.float64()) for t in ACTION_TYPES],
        *[(f"effect_prob_{t.value}", pa.float64()) for t in ACTION_TYPES],
        *[(f"applied_{t.value}", pa.bool_()) for t in ACTION_TYPES],
        ("discount_pct", pa.float64()),
        ("logodds_shift", pa.float64()),
        ("hazard", pa.float64()),
        ("hazard_without_actions", pa.float64()),
        ("churned", pa.bool_()),
        ("churned_without_actions", pa.bool_()),
        ("action_cost", pa.float64()),
        ("discount_forgone", pa.float64()),
    ]
)
_OPPORTUNITIES = pa.schema(
    [
        ("opportunity_id", pa.string()),
        ("group_id", pa.string()),
        ("p_win", pa.float64()),
        ("won", pa.bool_()),
        ("closed_at", pa.timestamp("s", tz="UTC")),
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
    actions_delivered: int = 0
    action_cost: float = 0.0  # fixed costs of delivered actions, USD
    discount_forgone: float = 0.0  # revenue given up to discounts, USD of MRR-months


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one :meth:`Simulation.step` did."""

    month: dt.date  # first day of the simulated month
    customers: int  # customers at the start of the month
    churned: int
    churned_without_actions: int  # the realized counterfactual: same draws, no actions
    events: int
    delivered: int  # actions delivered (their targets were customers at the month's start)
    not_delivered: int  # actions whose account had churned: no event, no effect, no cost
    action_cost: float  # fixed costs of the delivered actions, USD
    discount_forgone: float  # this month's MRR given up to running discounts, USD


def _times(seconds: np.ndarray, present: np.ndarray) -> pa.Array:
    """Unix seconds as UTC timestamps, null where not *present*."""
    values = pa.array(np.where(present, seconds, 0), pa.int64(), mask=~np.asarray(present, bool))
    return values.cast(pa.timestamp("s", tz="UTC"))


def _segment(health: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(_SEGMENTS)[np.digitize(health, [-0.5, 0.5])], pa.string())


class Simulation:
    """A simulated company run a month at a time, with tenure's actions fed back in.

    ``Simulation(out_dir, config, seed=…)`` opens the files; each :meth:`step` runs the next
    month with the actions delivered in it and appends that month's files; :meth:`finish`
    runs any months left without actions, writes the end-of-window files and returns the
    :class:`SimulationReport`. Use it as a context manager so files close on errors.

    The untreated world does not depend on actions: action draws (delivery times, opens,
    clicks) and segment draws come from their own random streams, so stepping with no
    actions writes the same bytes as :func:`simulate`.
    """

    def __init__(
        self,
        out_dir: Path,
        config: SimulationConfig,
        *,
        seed: int,
        progress: SimulationProgress | None = None,
    ) -> None:
        self.out_dir, self.config, self.seed, self.progress = out_dir, config, seed, progress
        self._events_dir = out_dir / "events"
        exports_dir, self._truth_dir = out_dir / "exports", out_dir / "truth"
        for path in (self._events_dir, exports_dir, self._truth_dir):
            path.mkdir(parents=True, exist_ok=True)
        # corruption and export details: the world's draws stay put
        self._side = np.random.default_rng([seed, 1])
        self._segment_rng = np.random.default_rng([seed, 2])
        self._action_rng = np.random.default_rng([seed, 3])
        self.world = World(
            config, np.random.default_rng(seed), onboarding_rng=np.random.default_rng([seed, 4])
        )
        self._segments = SegmentModel(config)
        #: each account's response segment (index into ResponseSegment), -1 before acquisition
        self.segment = np.full(config.accounts, -1, np.int64)
        self._draw_segments(np.arange(self.world.state.n, dtype=np.int64))
        self._first_start, _ = month_bounds(config, 0)
        _, self._sim_end = month_bounds(config, config.months - 1)
        self._nrr_months = min(12, config.months)
        self._prefix = f"sim{seed}"
        self._events = self._malformed = self._churned = self._at_risk = 0
        self._won = self._closed = self._delivered = self._messages = 0
        self._cost = self._forgone = 0.0
        self._mrr_start = self._cohort_mrr = 0.0
        self._cohort = np.zeros(0, np.int64)
        #: (month, channel, amount) of acquisition spend, written by finish()
        self._spend: list[tuple[str, str, float]] = []
        self._truth = pq.ParquetWriter(
            self._truth_dir / "account_months.parquet", _ACCOUNT_MONTHS, compression="zstd"
        )
        self._effects = pq.ParquetWriter(
            self._truth_dir / "treatment_effects.parquet", _EFFECTS, compression="zstd"
        )
        self._opportunities = pq.ParquetWriter(
            self._truth_dir / "opportunities.parquet", _OPPORTUNITIES, compression="zstd"
        )
        self._exports = ExportWriter(exports_dir, self._sim_end)
        self._report: SimulationReport | None = None
        # export_snapshot: rows of each stream exported so far, and those shown unfinished
        self._exported = {"invoices": 0, "tickets": 0}
        self._pending: dict[str, list[int]] = {"invoices": [], "tickets": []}

    def __enter__(self) -> Simulation:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    @property
    def month(self) -> int:
        """Months stepped so far (the index of the next month)."""
        return self.world.month

    @property
    def customers(self) -> list[str]:
        """Ids of the accounts that are customers now (actions on others are not delivered)."""
        s = self.world.state
        alive = np.flatnonzero(s.churn_ts[: s.n] < 0).astype(np.int64)
        return [str(a) for a in account_id(alive).to_pylist()]

    def step(self, actions: Sequence[Action] = ()) -> StepReport:
        """Run the next month with *actions* delivered early in it; write the month's files.

        Raises :class:`~tenure.errors.NotFoundError` naming every action target that is no
        simulated account or user (nothing is run then).
        """
        config, world = self.config, self.world
        m = world.month
        if m >= config.months or self._report is not None:
            raise ConfigError(
                "simulation",
                [ConfigProblem("months", f"at most {config.months} steps, all run", m + 1)],
                hint="configure more months to simulate further",
            )
        start, end = month_bounds(config, m)
        deliveries = Deliveries.resolve(world, actions)
        s = world.state
        applied, discount = deliveries.applied(len(self.segment))
        shift, per_type = logit_shift(config.interventions, self.segment, applied, discount)
        fresh = discount > 0
        s.discount[fresh] = discount[fresh]
        s.discount_until[fresh] = m + config.interventions.discount_months
        costs = action_costs(config.interventions)[deliveries.type] * deliveries.delivered
        messages = deliver(
            world, deliveries, self.segment, self._action_rng, start, end, self._messages
        )
        self._messages += int(deliveries.delivered.sum())
        running = s.discount_until[: s.n] > m
        list_mrr = s.seats[: s.n] * world.price[s.plan[: s.n]]
        forgone = np.zeros(len(self.segment))
        forgone[: s.n] = np.where(
            running & (s.churn_ts[: s.n] < 0), list_mrr * s.discount[: s.n], 0.0
        )
        facts = world.advance(shift if len(actions) else None)
        self._draw_segments(facts.new_accounts)
        events = self._write_month(facts, messages)
        self._write_effects(facts, per_type, applied, discount, shift, deliveries, costs, forgone)
        acc = facts.truth_account
        churned = int(facts.churned.size)
        delivered = int(deliveries.delivered.sum())
        self._delivered += delivered
        self._cost += float(costs.sum())
        self._forgone += float(forgone.sum())
        if self.progress is not None:
            self.progress(m + 1, config.months)
        return StepReport(
            month=(np.datetime64(config.start, "M") + m).astype("datetime64[D]").astype(dt.date),
            customers=len(acc),
            churned=churned,
            churned_without_actions=int(facts.truth_churned_untreated.sum()),
            events=events,
            delivered=delivered,
            not_delivered=len(actions) - delivered,
            action_cost=round(float(costs.sum()), 2),
            discount_forgone=round(float(forgone.sum()), 2),
        )

    def export_snapshot(self, directory: Path) -> list[Path]:
        """The exports a nightly job would take now (at the end of the months stepped so
        far), written to *directory*; returns the files.

        ``stripe/customers.csv`` and ``stripe/subscriptions.csv`` are whole snapshots.
        ``stripe/invoices.csv`` and ``zendesk/tickets.csv`` hold the rows created or
        changed since the last call, as they stand now: a ticket solved later shows
        open and an invoice a later retry pays shows unpaid, and each comes again,
        changed, in the export after its time. The window's own exports (written by
        :meth:`step` and :meth:`finish`) hold every row as it ends up.
        """
        now = month_bounds(self.config, self.world.month - 1)[1] if self.world.month else 0
        now = now or self._first_start
        self._exports.snapshots(self.world, root=directory, now=now)
        self._exports.flush()
        written = [
            directory / "stripe" / "customers.csv",
            directory / "stripe" / "subscriptions.csv",
        ]
        for kind, name in (("invoices", "stripe/invoices.csv"), ("tickets", "zendesk/tickets.csv")):
            stream = read_text_csv(self.out_dir / "exports" / name)
            due = [*self._pending[kind], *range(self._exported[kind], stream.num_rows)]
            self._exported[kind] = stream.num_rows
            rows, final = rows_as_of(kind, stream.take(pa.array(due, pa.int64())), now)
            self._pending[kind] = [
                i for i, done in zip(due, final.to_pylist(), strict=True) if not done
            ]
            if rows.num_rows:
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                pacsv.write_csv(rows, directory / name)
                written.append(directory / name)
        return written

    def finish(self) -> SimulationReport:
        """Run the months not yet stepped (no actions), write the end files, report."""
        if self._report is not None:
            return self._report
        while self.world.month < self.config.months:
            self.step()
        try:
            self._exports.snapshots(self.world)
            invoices, tickets = self._exports.invoice_count, self._exports.ticket_count
        finally:
            self._close()
        _write_spend(self.out_dir / "finance" / "marketing_spend.csv", self._spend)
        world, config = self.world, self.config
        s = world.state
        alive_end = np.flatnonzero(s.churn_ts[: s.n] < 0).astype(np.int64)
        mrr_end = float(s.mrr(alive_end, world.price).sum())
        kept = self._cohort[s.churn_ts[self._cohort] < 0]
        cohort_mrr = self._cohort_mrr
        nrr = float(s.mrr(kept, world.price).sum()) / cohort_mrr if cohort_mrr else float("nan")
        _write_accounts(world, self._truth_dir / "accounts.parquet", self._first_start)
        end_date = (
            (np.datetime64(config.start, "M") + config.months)
            .astype("datetime64[D]")
            .astype(dt.date)
        )
        self._report = SimulationReport(
            out_dir=self.out_dir,
            seed=self.seed,
            accounts=s.n,
            months=config.months,
            start=config.start,
            end=end_date,
            events=self._events,
            malformed=self._malformed,
            invoices=invoices,
            tickets=tickets,
            opportunities=self._closed,
            churned=self._churned,
            mrr_start=round(self._mrr_start, 2),
            mrr_end=round(mrr_end, 2),
            monthly_logo_churn=self._churned / self._at_risk if self._at_risk else 0.0,
            nrr=nrr,
            nrr_months=self._nrr_months,
            win_rate=self._won / self._closed if self._closed else float("nan"),
            actions_delivered=self._delivered,
            action_cost=round(self._cost, 2),
            discount_forgone=round(self._forgone, 2),
        )
        return self._report

    # ------------------------------------------------------------------ internals
    def _close(self) -> None:
        self._exports.__exit__(None, None, None)
        self._truth.close()
        self._effects.close()
        self._opportunities.close()

    def _draw_segments(self, accounts: npt.NDArray[np.int64]) -> None:
        if len(accounts):
            self.segment[accounts] = self._segments.draw(self.world, accounts, self._segment_rng)

    def _write_month(self, facts: MonthFacts, messages: list[MessageBatch]) -> int:
        config, world, m = self.config, self.world, facts.month
        if m == 0:
            self._mrr_start = float(facts.truth_mrr.sum())
        if m == config.months - self._nrr_months:
            self._cohort, self._cohort_mrr = facts.truth_account, float(facts.truth_mrr.sum())
        events = 0
        path = self._events_dir / f"{np.datetime64(config.start, 'M') + m}.{config.format.value}"
        with EventFile(path, config.format) as out:
            for block in event_blocks(
                world, facts, self._prefix, messages, block_accounts=config.event_block_accounts
            ):
                table, rows, kinds = corrupt(
                    block, self._side, config.malformed_fraction, config.format
                )
                out.write(table, rows, kinds)
                events += table.num_rows
                self._malformed += len(rows)
        self._events += events
        self._spend.extend(_month_spend(config, facts))
        self._exports.month(world, facts, self._side)
        acc = facts.truth_account
        churn_ts = world.state.churn_ts[acc]
        now_churned = (churn_ts >= facts.start) & (churn_ts < facts.end)
        self._churned += int(now_churned.sum())
        self._at_risk += len(acc)
        self._won += int(facts.opp_won.sum())
        self._closed += len(facts.opp_won)
        n = len(acc)
        self._truth.write_table(
            pa.table(
                {
                    "account_id": account_id(acc),
                    "month": _month_column(config, m, n),
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
        self._opportunities.write_table(
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
                },
                schema=_OPPORTUNITIES,
            )
        )
        return events

    def _write_effects(
        self,
        facts: MonthFacts,
        per_type: npt.NDArray[np.float64],
        applied: npt.NDArray[np.bool_],
        discount: npt.NDArray[np.float64],
        shift: npt.NDArray[np.float64],
        deliveries: Deliveries,
        costs: npt.NDArray[np.float64],
        forgone: npt.NDArray[np.float64],
    ) -> None:
        acc = facts.truth_account
        config = self.config
        ch = config.churn
        per_acc_cost = np.zeros(len(self.segment))
        np.add.at(
            per_acc_cost, deliveries.account[deliveries.delivered], costs[deliveries.delivered]
        )
        columns: dict[str, pa.Array | npt.NDArray[np.generic]] = {
            "account_id": account_id(acc),
            "month": _month_column(config, facts.month, len(acc)),
            "response_segment": pa.array(
                np.asarray([seg.value for seg in SEGMENTS])[self.segment[acc]], pa.string()
            ),
        }
        for k, kind in enumerate(ACTION_TYPES):
            columns[f"effect_logodds_{kind.value}"] = per_type[acc, k]
        for k, kind in enumerate(ACTION_TYPES):
            treated = compose_hazard(
                facts.truth_logit + per_type[acc, k],
                facts.truth_annual,
                facts.truth_renewal,
                facts.truth_involuntary,
                ch.renewal_months_equivalent,
            )
            columns[f"effect_prob_{kind.value}"] = treated - facts.truth_hazard_untreated
        for k, kind in enumerate(ACTION_TYPES):
            columns[f"applied_{kind.value}"] = applied[acc, k]
        columns |= {
            "discount_pct": np.round(discount[acc] * 100, 6),
            "logodds_shift": shift[acc],
            "hazard": facts.truth_hazard,
            "hazard_without_actions": facts.truth_hazard_untreated,
            "churned": np.isin(acc, facts.churned),
            "churned_without_actions": facts.truth_churned_untreated,
            "action_cost": per_acc_cost[acc],
            "discount_forgone": forgone[acc],
        }
        self._effects.write_table(pa.table(columns, schema=_EFFECTS))


def _month_spend(config: SimulationConfig, facts: MonthFacts) -> list[tuple[str, str, float]]:
    """The month's acquisition spend per channel that costs anything: the cost of the
    leads of the deals closed in the month and of its other leads."""
    month = str(np.datetime64(config.start, "M") + facts.month)
    leads = np.bincount(np.concatenate(lead_channels(config, facts)), minlength=len(CHANNELS))
    cost = config.acquisition.cost_per_lead
    return [
        (month, channel, round(float(leads[k]) * cost[k], 2))
        for k, channel in enumerate(CHANNELS)
        if cost[k] > 0
    ]


def _write_spend(path: Path, rows: list[tuple[str, str, float]]) -> None:
    """The marketing spend export: ``month,channel,amount``, one row per month and channel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["month,channel,amount", *(f"{m},{c},{amount:.2f}" for m, c, amount in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _month_column(config: SimulationConfig, month: int, n: int) -> pa.Array:
    first = np.datetime64(config.start, "M") + month
    return pa.array(np.full(n, first).astype("datetime64[D]"), pa.date32())


def simulate(
    out_dir: Path,
    config: SimulationConfig,
    *,
    seed: int,
    progress: SimulationProgress | None = None,
) -> SimulationReport:
    """Write a simulated company into *out_dir*: ``events/``, ``exports/`` and ``truth/``.

    The same *config* and *seed* give byte-identical files: those of a :class:`Simulation`
    stepped with no actions. Memory is bounded by per-account state, one month of facts as
    arrays of numbers, and one block of ``config.event_block_accounts`` accounts' events.
    """
    with Simulation(out_dir, config, seed=seed, progress=progress) as simulation:
        return simulation.finish()


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
                "trial": trial_accounts(world, acc),
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
