"""The closed loop: tenure decides and delivers inside the simulator, month by month,
and targeting policies are compared on what the simulator's ground truth says they did.

For each seed:

1. **Warm-up.** The simulated company runs ``warmup_months`` with no actions; every
   month's files are ingested into a fresh project (events, the Stripe and Zendesk
   exports, and Stripe's subscription snapshot as of that month's end), exactly as
   a nightly load would. At the end, features are built and the churn, survival and
   CLV models trained (:func:`tenure.models.pipeline.train`).
2. **Exploration.** For ``explore_months`` every customer is eligible for a CSM call in
   the campaign ``explore``, with half held out by tenure's own campaign holdout
   (``decide.holdouts``): a randomized experiment run by the product. Each month the
   pipeline builds, scores and publishes the state, ``decide`` runs a cycle, and the
   real delivery worker hands the calls to the simulator through
   :class:`SimulatorChannel`. Then the uplift model is trained from the decision log
   and its outcomes (:func:`tenure.measure._feedback.train_uplift`).
3. **Evaluation.** The project is copied once per policy and the simulator replayed
   to the same month with the same actions (it is deterministic; the replay is
   checked). Each policy then runs ``eval_months`` months, at most ``budget`` calls a
   month (``decide.global_budget``):

   * ``none``: no action;
   * ``random``: ``budget`` customers drawn at random each month;
   * ``risk``: the ``budget`` customers with the highest churn probability (a rule
     whose ``value`` is ``scores.churn_probability``);
   * ``uplift``: the customers with the highest ``uplift × CLV − cost``, and none
     whose expected value is negative (the decide engine's ranking).

The outcomes come from the simulator, never from tenure: MRR kept over the window,
logos churned, and the cost of the calls. Policies are compared per seed (the
same world, so differences are paired) with Student-t 95 % intervals over seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import enum
import math
import multiprocessing
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import yaml
from scipy import stats

from tenure._config_decide import CampaignBudget, Channel, DeliverySettings, Holdouts
from tenure.config import load_config
from tenure.deliver import Delivery, NetworkChannel
from tenure.errors import SendError, TenureError
from tenure.measure._feedback import (
    VALIDATION_SHARE,
    FeedbackReport,
    score_uplift,
    train_uplift,
    uplift_frame,
)
from tenure.measure._uplift_metrics import qini_coefficient
from tenure.project import Project, init_project
from tenure.simulate import Action, ActionType, Simulation, SimulationConfig, StepReport
from tenure.simulate._world import month_bounds

__all__ = [
    "Comparison",
    "LoopPolicy",
    "LoopReport",
    "LoopSettings",
    "PeriodRow",
    "PolicyOutcome",
    "SeedSetup",
    "SimulatorChannel",
    "run_loop",
]

_CAMPAIGN_EXPLORE = "explore"
_CAMPAIGN_TARGET = "retention"
_TEMPLATE = "loop_call"
_TREATMENT = ActionType.CSM_CALL.value
_TEMPLATE_TEXT = """\
channel: csm_task
description: Call the account (written by tenure loop)
body:
  title: "Call {{ account.name }}"
  account_id: "{{ account.id }}"
  churn_risk: "{{ '%.0f' % (scores.churn_probability * 100) }} %"
"""

Progress = Callable[[str], None]
#: What each policy is scored on: the truth's effect of the calls, then the realized world.
_METRICS = (
    "mrr_saved_expected",
    "saves_expected",
    "saves_realized",
    "revenue",
    "mrr_end",
    "churned",
    "cost",
    "net",
)


class LoopPolicy(enum.StrEnum):
    NONE = "none"
    RANDOM = "random"
    RISK = "risk"
    UPLIFT = "uplift"


@dataclass(frozen=True, slots=True)
class LoopSettings:
    accounts: int = 2000
    warmup_months: int = 12
    explore_months: int = 4
    eval_months: int = 6
    #: CSM calls a month for every targeting policy (the equal budget).
    budget: int = 60
    #: Percent of customers held out of the exploration campaign.
    explore_holdout_percent: float = 50.0
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    policies: tuple[LoopPolicy, ...] = tuple(LoopPolicy)

    @property
    def months(self) -> int:
        return self.warmup_months + self.explore_months + self.eval_months


@dataclass(frozen=True, slots=True)
class PeriodRow:
    """One evaluated month of one policy and seed, from the simulator's truth."""

    seed: int
    policy: str
    month: dt.date
    customers: int  # at the month's start
    targeted: int  # calls tenure delivered
    churned: int
    churned_without_actions: int  # the same month's draws with no action at all
    mrr_end: float  # MRR of the customers at the month's end
    cost: float
    #: The calls' true effect, from the simulator's hazards with and without them (no
    #: outcome noise): churns they prevented in expectation (negative: caused) …
    saves_expected: float = 0.0
    #: … and the MRR of those customers, in expectation (MRR kept a month by the calls).
    mrr_saved_expected: float = 0.0
    #: Churns the calls prevented minus those they caused, on the month's own draws.
    saves_realized: int = 0


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    seed: int
    policy: str
    revenue: float  # MRR summed over the evaluated months' ends (MRR-months kept)
    mrr_end: float
    churned: int
    cost: float
    saves_expected: float = 0.0
    mrr_saved_expected: float = 0.0
    saves_realized: int = 0

    @property
    def net(self) -> float:
        return self.revenue - self.cost


@dataclass(frozen=True, slots=True)
class Comparison:
    """``better`` minus ``worse`` per seed, on one metric, with a 95 % t interval."""

    better: str
    worse: str
    metric: str
    mean: float
    low: float
    high: float
    seeds: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True, slots=True)
class SeedSetup:
    seed: int
    exploration: FeedbackReport | None
    explore_calls: int
    seconds: float
    #: The yardstick for the uplift model's out-of-time Qini: the Qini of the simulator's
    #: true effects on the same validation rows (None when nothing was trained).
    qini_true: float | None = None


@dataclass(frozen=True)
class LoopReport:
    settings: LoopSettings
    outcomes: tuple[PolicyOutcome, ...]
    periods: tuple[PeriodRow, ...]
    setups: tuple[SeedSetup, ...]
    comparisons: tuple[Comparison, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def outcome(self, seed: int, policy: str) -> PolicyOutcome:
        return next(o for o in self.outcomes if o.seed == seed and o.policy == policy)

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": {
                **dataclasses.asdict(self.settings),
                "policies": [p.value for p in self.settings.policies],
                "months": self.settings.months,
            },
            "summary": {
                policy: {
                    m: dict(zip(("mean", "low", "high"), v, strict=True)) for m, v in d.items()
                }
                for policy, d in self.summary().items()
            },
            "comparisons": [dataclasses.asdict(c) for c in self.comparisons],
            "outcomes": [{**dataclasses.asdict(o), "net": o.net} for o in self.outcomes],
            "setups": [
                {
                    "seed": s.seed,
                    "explore_calls": s.explore_calls,
                    "qini_true_effects": s.qini_true,
                    "seconds": round(s.seconds, 1),
                    "uplift": {
                        t: {
                            "model": u.version.label,
                            "rows": u.rows,
                            "treated": u.treated,
                            "control": u.control,
                            "churn_treated": u.churn_treated,
                            "churn_control": u.churn_control,
                            "qini_out_of_time": u.qini,
                        }
                        for t, u in (s.exploration.trained.items() if s.exploration else [])
                    },
                    "uplift_skipped": dict(s.exploration.skipped) if s.exploration else {},
                }
                for s in self.setups
            ],
            "seconds": round(self.seconds, 1),
            "notes": list(self.notes),
        }

    def write(self, directory: Path) -> tuple[Path, Path]:
        """``periods.csv`` (one row per seed, policy and month) and ``loop.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        series = directory / "periods.csv"
        with series.open("w", encoding="utf-8", newline="") as handle:
            names = [f.name for f in dataclasses.fields(PeriodRow)]
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            for row in self.periods:
                writer.writerow(dataclasses.asdict(row))
        summary = directory / "loop.json"
        summary.write_bytes(orjson.dumps(self.as_dict(), option=orjson.OPT_INDENT_2))
        return series, summary

    def summary(self) -> dict[str, dict[str, tuple[float, float, float]]]:
        """policy → metric → (mean, low, high) over seeds."""
        found: dict[str, dict[str, tuple[float, float, float]]] = {}
        for policy in self.settings.policies:
            rows = [o for o in self.outcomes if o.policy == policy.value]
            found[policy.value] = {
                metric: _interval([float(getattr(o, metric)) for o in rows]) for metric in _METRICS
            }
        return found


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    mean = float(np.mean(values)) if values else math.nan
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(
        stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    )
    return mean, mean - half, mean + half


class SimulatorChannel(NetworkChannel):
    """Hands CSM tasks to the simulator: the delivered call is an :class:`Action`.

    *accounts* maps tenure's account ids to the simulator's (the ``acct_…`` group
    ids the events carry). A resend with an idempotency key already taken is
    dropped, as a receiver should.
    """

    def __init__(self, accounts: Mapping[str, str]) -> None:
        self.accounts = dict(accounts)
        self.actions: list[Action] = []
        self._keys: set[str] = set()

    def send(self, delivery: Delivery, payload: Mapping[str, Any]) -> str:
        simulated = self.accounts.get(delivery.account_id or "")
        if simulated is None:
            raise SendError(
                f"delivery {delivery.id}: account {delivery.account_id!r} has no simulated "
                "account id (acct_…) among its group ids",
                permanent=True,
            )
        if delivery.idempotency_key in self._keys:
            return f"duplicate of {delivery.idempotency_key}, dropped"
        self._keys.add(delivery.idempotency_key)
        self.actions.append(Action(type=ActionType.CSM_CALL, account_id=simulated))
        return f"call handed to the simulator for {simulated}"


# ------------------------------------------------------------------ project plumbing
class _Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def _month_start(config: SimulationConfig, month: int) -> dt.datetime:
    """The first instant of simulated month *month* (the end of the one before)."""
    start, _ = month_bounds(config, month)
    return dt.datetime.fromtimestamp(start, dt.UTC)


def _policy_text(policy: LoopPolicy | None, cost: float) -> str:
    rule: dict[str, Any] = {
        "id": "call",
        "when": "has(scores.churn_probability)",
        "action": {
            "channel": "csm_task",
            "template": _TEMPLATE,
            "campaign": _CAMPAIGN_EXPLORE if policy is None else _CAMPAIGN_TARGET,
            "cost": cost,
            "type": _TREATMENT,
        },
    }
    if policy is LoopPolicy.RISK:
        rule["value"] = "scores.churn_probability"
    name = "explore" if policy is None else policy.value
    return yaml.safe_dump({"name": name, "rules": [rule]}, sort_keys=False)


def _write_decide_files(root: Path, policy: LoopPolicy | None, cost: float) -> str:
    folder = f"loop/{'explore' if policy is None else policy.value}"
    (root / folder / "policies").mkdir(parents=True, exist_ok=True)
    (root / folder / "templates").mkdir(parents=True, exist_ok=True)
    text = _policy_text(policy, cost)
    (root / folder / "policies" / "loop.yaml").write_text(text, encoding="utf-8")
    (root / folder / "templates" / f"{_TEMPLATE}.yaml").write_text(_TEMPLATE_TEXT, encoding="utf-8")
    return folder


def _open(
    root: Path, clock: _Clock, policy: LoopPolicy | None, settings: LoopSettings, cost: float
) -> Project:
    """The loop's project with decide settings for *policy* (None: exploration)."""
    base = load_config(root, environ={})
    folder = _write_decide_files(root, policy, cost)
    decide = base.decide.model_copy(
        update={
            "policies_dir": f"{folder}/policies",
            "templates_dir": f"{folder}/templates",
            "journeys_dir": f"{folder}/journeys",
            "caps": [],
            "quiet_hours": None,
            "urgent_ticket_suppression": None,
            "review": base.decide.review.model_copy(update={"min_value": None}),
            "holdouts": Holdouts(campaigns={_CAMPAIGN_EXPLORE: settings.explore_holdout_percent}),
            "global_budget": (
                None
                if policy is None
                # a cycle a month: the window only has to hold this month's cycle
                else CampaignBudget(budget=settings.budget * cost, period="7d")
            ),
        }
    )
    delivery = DeliverySettings(csm_task_webhook=None)
    config = base.model_copy(update={"decide": decide, "delivery": delivery})
    return Project(root, config, clock=clock, environ={})


def _simulated_ids(project: Project) -> dict[str, str]:
    backend = project.warehouse.backend
    accounts = backend.to_pandas(backend.table("accounts").select("account_id", "group_ids"))
    found = {}
    for account_id, groups in accounts.itertuples(index=False):
        for group in groups if groups is not None else []:
            if isinstance(group, str) and group.startswith("acct_"):
                found[str(account_id)] = group
                break
    return found


def _ingest_month(project: Project, simulation: Simulation, snapshots: Path) -> None:
    """Load the month just stepped: its events and the exports as they stand at its end
    (:meth:`~tenure.simulate.Simulation.export_snapshot`), as a nightly load would."""
    from tenure.collect import ingest
    from tenure.identity import stitch

    month = simulation.month - 1
    events = sorted((simulation.out_dir / "events").glob("*"))[month]
    ingest(project, [events, *simulation.export_snapshot(snapshots / f"{month:03d}")])
    stitch(project)


def _cycle(
    project: Project,
    *,
    now: dt.datetime,
    policy: LoopPolicy | None,
    settings: LoopSettings,
    rng: np.random.Generator,
) -> list[Action]:
    """Build, score, publish, decide and deliver at *now*; the calls the simulator gets."""
    from sqlalchemy import select

    from tenure.decide import decide, publish_state
    from tenure.deliver import run_worker
    from tenure.models.pipeline import build, score
    from tenure.store._tables import customer_state

    build(project, as_of=now)
    score(project, as_of=now)
    if policy is LoopPolicy.UPLIFT:
        # only this policy has an uplift model: the others rank without one
        score_uplift(project, as_of=now)
    publish_state(project, as_of=now)
    accounts = None
    if policy is LoopPolicy.RANDOM:
        with project.store.connect() as connection:
            everyone = sorted(connection.execute(select(customer_state.c.account_id)).scalars())
        chosen = rng.choice(len(everyone), min(settings.budget, len(everyone)), replace=False)
        accounts = [everyone[i] for i in sorted(chosen)]
    decide(project, now=now, accounts=accounts, actor="tenure loop")
    channel = SimulatorChannel(_simulated_ids(project))
    run_worker(project, once=True, channels={Channel.CSM_TASK.value: channel}, worker_id="loop")
    return channel.actions


def _mrr(simulation: Simulation) -> float:
    s = simulation.world.state
    alive = np.flatnonzero(s.churn_ts[: s.n] < 0).astype(np.int64)
    return float(s.mrr(alive, simulation.world.price).sum())


# ------------------------------------------------------------------ the loop
def run_loop(
    directory: Path,
    settings: LoopSettings | None = None,
    *,
    config: SimulationConfig | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> LoopReport:
    """Run the closed loop (module doc) in *directory*, one sub-folder per seed and policy;
    *jobs* seeds at a time in separate processes (their progress then goes to stderr)."""
    from tenure.simulate import load_simulation_config

    settings = settings or LoopSettings()
    if settings.warmup_months < 6:
        raise TenureError("the warm-up needs at least 6 months of history to train on")
    if jobs < 1:
        raise TenureError(f"jobs must be at least 1 (got {jobs})")
    sim_config = (config or load_simulation_config(None)).model_copy(
        update={"accounts": settings.accounts, "months": settings.months}
    )
    started = time.perf_counter()
    results: list[tuple[list[PolicyOutcome], list[PeriodRow], SeedSetup]] = []
    if jobs == 1 or len(settings.seeds) == 1:
        for seed in settings.seeds:
            results.append(_run_seed(directory, settings, sim_config, seed, progress))
    else:
        context = multiprocessing.get_context("spawn")  # no forked DuckDB or SQLite handles
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [
                pool.submit(_run_seed, directory, settings, sim_config, seed, _stderr)
                for seed in settings.seeds
            ]
            results = [f.result() for f in futures]
    outcomes = [o for found, _, _ in results for o in found]
    periods = [p for _, found, _ in results for p in found]
    setups = [setup for _, _, setup in results]
    report = LoopReport(settings, tuple(outcomes), tuple(periods), tuple(setups))
    return dataclasses.replace(
        report, comparisons=_compare(report), seconds=time.perf_counter() - started
    )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_seed(
    directory: Path,
    settings: LoopSettings,
    sim_config: SimulationConfig,
    seed: int,
    progress: Progress | None,
) -> tuple[list[PolicyOutcome], list[PeriodRow], SeedSetup]:
    """One seed: warm-up and exploration once, then every policy from the same month."""
    from tenure.models.pipeline import build, train

    say = progress or (lambda _: None)
    seed_started = time.perf_counter()
    cost = sim_config.interventions.csm_call.cost
    root = directory / f"seed-{seed}"
    if root.exists():
        shutil.rmtree(root)
    base = root / "base"
    clock = _Clock(_month_start(sim_config, 0))
    init_project(base / "project", clock=clock).close()
    history: list[list[Action]] = []
    reports: list[StepReport] = []
    explore_calls = 0
    feedback = None
    with Simulation(base / "sim", sim_config, seed=seed) as simulation:
        project = _open(base / "project", clock, None, settings, cost)
        try:
            for month in range(settings.warmup_months + settings.explore_months):
                clock.at = _month_start(sim_config, month)
                actions: list[Action] = []
                if month >= settings.warmup_months:
                    if month == settings.warmup_months:
                        say(f"seed {seed}: training on {month} months")
                        build(project, as_of=clock.at)
                        train(project, as_of=clock.at, actor="tenure loop")
                    actions = _cycle(
                        project, now=clock.at, policy=None, settings=settings,
                        rng=np.random.default_rng(seed),
                    )  # fmt: skip
                    explore_calls += len(actions)
                history.append(actions)
                reports.append(simulation.step(actions))
                clock.at = _month_start(sim_config, month + 1)  # loaded the night after
                _ingest_month(project, simulation, base / "snapshots")
                say(f"seed {seed}: month {month + 1} of {settings.months} ({len(actions)} calls)")
            clock.at = _month_start(sim_config, len(history))
            feedback = train_uplift(project, as_of=clock.at, actor="tenure loop", promote=True)
            say(
                f"seed {seed}: uplift trained on {feedback.rows} randomized decisions"
                + "".join(f"; {t}: {why}" for t, why in feedback.skipped.items())
            )
        finally:
            project.close()
    qini_true = None
    if feedback is not None and feedback.trained:
        project = _open(base / "project", clock, None, settings, cost)
        try:
            qini_true = true_effect_qini(project, base / "sim" / "truth", as_of=clock.at)
        finally:
            project.close()
    setup = SeedSetup(seed, feedback, explore_calls, time.perf_counter() - seed_started, qini_true)
    outcomes, periods = [], []
    for policy in settings.policies:
        rows = _evaluate(root, sim_config, seed, policy, settings, history, reports, cost, say)
        periods.extend(rows)
        outcomes.append(
            PolicyOutcome(
                seed=seed,
                policy=policy.value,
                revenue=round(sum(r.mrr_end for r in rows), 2),
                mrr_end=rows[-1].mrr_end if rows else 0.0,
                churned=sum(r.churned for r in rows),
                cost=round(sum(r.cost for r in rows), 2),
                saves_expected=round(sum(r.saves_expected for r in rows), 4),
                mrr_saved_expected=round(sum(r.mrr_saved_expected for r in rows), 2),
                saves_realized=sum(r.saves_realized for r in rows),
            )
        )
    return outcomes, periods, setup


def _evaluate(
    root: Path,
    sim_config: SimulationConfig,
    seed: int,
    policy: LoopPolicy,
    settings: LoopSettings,
    history: list[list[Action]],
    reports: list[StepReport],
    cost: float,
    say: Progress,
) -> list[PeriodRow]:
    folder = root / policy.value
    shutil.copytree(root / "base" / "project", folder / "project")
    clock = _Clock(_month_start(sim_config, len(history)))
    rows = []
    rng = np.random.default_rng([seed, list(LoopPolicy).index(policy)])
    with Simulation(folder / "sim", sim_config, seed=seed) as simulation:
        for month, actions in enumerate(history):
            replayed = simulation.step(actions)
            if (
                replayed.churned != reports[month].churned
                or replayed.events != reports[month].events
            ):
                raise TenureError(
                    f"seed {seed}: replaying month {month + 1} for {policy.value} gave a "
                    "different world; the simulator is not deterministic"
                )
        project = _open(folder / "project", clock, policy, settings, cost)
        try:
            for month in range(len(history), settings.months):
                clock.at = _month_start(sim_config, month)
                actions = []
                if policy is not LoopPolicy.NONE:
                    actions = _cycle(
                        project, now=clock.at, policy=policy, settings=settings, rng=rng
                    )
                step = simulation.step(actions)
                if policy is not LoopPolicy.NONE and month + 1 < settings.months:
                    clock.at = _month_start(sim_config, month + 1)
                    _ingest_month(project, simulation, folder / "snapshots")
                rows.append(
                    PeriodRow(
                        seed=seed,
                        policy=policy.value,
                        month=step.month,
                        customers=step.customers,
                        targeted=step.delivered,
                        churned=step.churned,
                        churned_without_actions=step.churned_without_actions,
                        mrr_end=round(_mrr(simulation), 2),
                        cost=step.action_cost,
                    )
                )
                say(
                    f"seed {seed} {policy.value}: month {month + 1} of {settings.months}, "
                    f"{step.delivered} calls, {step.churned} churned"
                )
        finally:
            project.close()
    # the simulator's truth files are whole once it is closed
    effects = _true_effects(folder / "sim" / "truth", {r.month for r in rows})
    return [dataclasses.replace(r, **effects.get(r.month, {})) for r in rows]


def true_effect_qini(project: Project, truth: Path, *, as_of: dt.datetime) -> float | None:
    """The Qini of the simulator's true effects of a call on the rows the uplift model was
    validated on (the latest fifth of the randomized decisions, outcome: stayed)."""
    import pyarrow.parquet as pq

    frame, _ = uplift_frame(project, as_of=as_of)
    frame = frame.sort_values(["decided_at", "decision_id"])
    latest = frame.iloc[int(len(frame) * (1 - VALIDATION_SHARE)) :]
    if latest.empty:
        return None
    simulated = _simulated_ids(project)
    effects = pq.read_table(
        truth / "treatment_effects.parquet",
        columns=["account_id", "month", f"effect_prob_{_TREATMENT}"],
    ).to_pandas()
    months = latest["decided_at"].map(lambda at: dt.date(at.year, at.month, 1))
    keys = pd.DataFrame(
        {"account_id": latest["account_id"].map(simulated), "month": months.to_numpy()}
    )
    true = keys.merge(effects, on=["account_id", "month"], how="left")[f"effect_prob_{_TREATMENT}"]
    known = true.notna().to_numpy()
    if not known.any():
        return None
    return float(
        qini_coefficient(
            1 - latest["churned"].to_numpy()[known],
            latest["treated"].to_numpy()[known],
            -true.to_numpy()[known],
        )
    )


def _true_effects(truth: Path, months: set[dt.date]) -> dict[dt.date, dict[str, Any]]:
    """Per month: the CSM calls' effect in the simulator's ground truth."""
    import pyarrow.parquet as pq

    effects = pq.read_table(
        truth / "treatment_effects.parquet",
        columns=[
            "account_id", "month", f"applied_{_TREATMENT}", "hazard",
            "hazard_without_actions", "churned", "churned_without_actions",
        ],
    ).to_pandas()  # fmt: skip
    mrr = pq.read_table(truth / "account_months.parquet", columns=["account_id", "month", "mrr"])
    called = effects[effects[f"applied_{_TREATMENT}"] & effects["month"].isin(months)]
    called = called.merge(mrr.to_pandas(), on=["account_id", "month"], how="left")
    found = {}
    for month, rows in called.groupby("month"):
        prevented = rows["hazard_without_actions"] - rows["hazard"]
        found[month] = {
            "saves_expected": round(float(prevented.sum()), 4),
            "mrr_saved_expected": round(float((prevented * rows["mrr"].fillna(0.0)).sum()), 2),
            "saves_realized": int(rows["churned_without_actions"].sum() - rows["churned"].sum()),
        }
    return found


def _compare(report: LoopReport) -> tuple[Comparison, ...]:
    present = {p.value for p in report.settings.policies}
    pairs = [
        (LoopPolicy.UPLIFT, LoopPolicy.RISK),
        (LoopPolicy.UPLIFT, LoopPolicy.RANDOM),
        (LoopPolicy.RISK, LoopPolicy.RANDOM),
        (LoopPolicy.UPLIFT, LoopPolicy.NONE),
        (LoopPolicy.RISK, LoopPolicy.NONE),
        (LoopPolicy.RANDOM, LoopPolicy.NONE),
    ]
    found = []
    for better, worse in pairs:
        if better.value not in present or worse.value not in present:
            continue
        for metric in _METRICS:
            diffs = [
                float(getattr(report.outcome(s, better.value), metric))
                - float(getattr(report.outcome(s, worse.value), metric))
                for s in report.settings.seeds
            ]
            mean, low, high = _interval(diffs)
            found.append(Comparison(better.value, worse.value, metric, mean, low, high, len(diffs)))
    return tuple(found)
