"""The simulator: determinism, ingestible output, known malformed records, honest truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from tenure.collect import ingest
from tenure.errors import ConfigError, NotFoundError
from tenure.identity import find_profile, stitch
from tenure.project import init_project
from tenure.simulate import (
    AcquisitionParams,
    Action,
    ActionEffectParams,
    ActionType,
    ChurnParams,
    EventFormat,
    InterventionParams,
    OnboardingParams,
    Simulation,
    SimulationConfig,
    SimulationReport,
    load_simulation_config,
    simulate,
)

SMALL = SimulationConfig(accounts=200, months=12)
AFTER = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)  # SMALL's window ends 2025-01-01


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ingest(tmp_path: Path, out: Path) -> tuple[int, int, dict[str, int]]:
    project = init_project(tmp_path / "proj", clock=lambda: AFTER)
    try:
        report = ingest(project, [out / "events", out / "exports"])
    finally:
        project.close()
    return report.loaded, report.quarantined, report.quarantined_by_reason


def test_public_api_is_pinned() -> None:
    import tenure.simulate as module

    assert sorted(module.__all__) == [
        "AcquisitionParams", "Action", "ActionEffectParams", "ActionType", "BillingParams",
        "ChurnParams", "EventFormat", "ExpansionParams", "HealthParams", "InterventionParams",
        "OnboardingParams", "ResponseSegment", "Simulation", "SimulationConfig",
        "SimulationProgress", "SimulationReport", "StepReport", "SupportParams", "SurveyParams",
        "UsageParams", "load_simulation_config", "parse_simulation_config", "simulate",
    ]  # fmt: skip


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    simulate(tmp_path / "a", SMALL, seed=7)
    simulate(tmp_path / "b", SMALL, seed=7)
    simulate(tmp_path / "c", SMALL, seed=8)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)
    assert "truth/account_months.parquet" in a
    assert "exports/stripe/invoices.csv" in a


def test_output_loads_with_zero_quarantine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ticks: list[tuple[int, int]] = []
    report = simulate(out, SMALL, seed=1, progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1] == (12, 12)
    assert len(ticks) == 12
    assert report.end == dt.date(2025, 1, 1)
    loaded, quarantined, reasons = _ingest(tmp_path, out)
    assert quarantined == 0, reasons
    csv_rows = report.invoices + report.tickets
    assert loaded > report.events + csv_rows  # exports add more than one event per row at times
    assert not list(out.glob("events/*truth*"))


@pytest.mark.parametrize("fmt", [EventFormat.PARQUET, EventFormat.JSONL])
def test_malformed_records_all_end_in_quarantine(tmp_path: Path, fmt: EventFormat) -> None:
    config = SMALL.model_copy(update={"months": 4, "malformed_fraction": 0.01, "format": fmt})
    out = tmp_path / "out"
    report = simulate(out, config, seed=2)
    assert report.malformed > 20
    assert len(list((out / "events").glob(f"*.{fmt.value}"))) == 4
    _, quarantined, reasons = _ingest(tmp_path, out)
    assert quarantined == report.malformed
    expected = {"missing_identity", "malformed_json" if fmt is EventFormat.JSONL else "wrong_type"}
    assert expected <= set(reasons)
    if fmt is EventFormat.JSONL:
        assert "bad_timestamp" in reasons


def test_event_blocks_change_order_and_ids_but_not_the_events(tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"months": 4})
    whole = simulate(tmp_path / "whole", config, seed=3)
    blocked = simulate(
        tmp_path / "blocked", config.model_copy(update={"event_block_accounts": 50}), seed=3
    )
    assert blocked.events == whole.events
    assert blocked.accounts == whole.accounts > 150
    content = list(pq.read_schema(next((tmp_path / "whole").glob("events/*"))).names)
    content.remove("message_id")
    for path in sorted((tmp_path / "whole" / "events").glob("*.parquet")):
        one = pq.read_table(path)
        many = pq.ParquetFile(tmp_path / "blocked" / "events" / path.name)
        table = many.read()
        assert many.metadata.num_row_groups >= 3  # one per block of 50 accounts so far
        assert table.num_rows == one.num_rows
        # the same events, row for row once put in one order
        keys = [(c, "ascending") for c in content]
        assert one.select(content).sort_by(keys).equals(table.select(content).sort_by(keys))
        ids = table["message_id"].to_pylist()
        assert len(set(ids)) == len(ids)
        for g in range(many.metadata.num_row_groups):  # sorted by time within each block
            ts = many.read_row_group(g)["timestamp"].cast(pa.int64()).to_numpy()
            assert (np.diff(ts) >= 0).all()
    blocked_digest = _digest(tmp_path / "blocked")
    simulate(tmp_path / "again", config.model_copy(update={"event_block_accounts": 50}), seed=3)
    assert _digest(tmp_path / "again") == blocked_digest
    _, quarantined, reasons = _ingest(tmp_path, tmp_path / "blocked")
    assert quarantined == 0, reasons


def test_blocked_json_lines_quarantine_exactly_the_malformed(tmp_path: Path) -> None:
    config = SMALL.model_copy(
        update={
            "months": 3,
            "malformed_fraction": 0.01,
            "format": EventFormat.JSONL,
            "event_block_accounts": 50,
        }
    )
    out = tmp_path / "out"
    report = simulate(out, config, seed=2)
    lines = sum(len(p.read_bytes().splitlines()) for p in (out / "events").glob("*.jsonl"))
    assert lines == report.events
    assert report.malformed > 10
    whole = simulate(
        tmp_path / "whole", config.model_copy(update={"event_block_accounts": 200}), seed=2
    )
    assert (whole.events, whole.malformed) == (report.events, report.malformed)
    _, quarantined, _ = _ingest(tmp_path, out)
    assert quarantined == report.malformed


def test_truth_hazard_ranks_who_churns(tmp_path: Path) -> None:
    simulate(tmp_path / "out", SimulationConfig(accounts=1500, months=12), seed=3)
    truth = pq.read_table(tmp_path / "out" / "truth" / "account_months.parquet").to_pandas()
    assert truth["hazard"].between(0, 1).all()
    quintile = truth["hazard"].rank(pct=True, method="first")
    top = truth.loc[quintile > 0.8, "churned"].mean()
    bottom = truth.loc[quintile <= 0.2, "churned"].mean()
    assert top > 4 * bottom
    # realized churn matches the stated hazard on average (calibrated truth)
    assert truth["churned"].mean() == pytest.approx(truth["hazard"].mean(), rel=0.15)
    accounts = pq.read_table(tmp_path / "out" / "truth" / "accounts.parquet").to_pandas()
    assert len(accounts) == 1500
    assert (accounts["realized_clv_discounted"] <= accounts["realized_revenue"] + 1e-6).all()
    assert (accounts.loc[accounts["churned"], "mrr"] == 0).all()


def test_onboarding_milestones_follow_engagement_and_leave_the_world_as_it_was(
    tmp_path: Path,
) -> None:
    config = SimulationConfig(accounts=1200, months=12)
    none = OnboardingParams(milestones=(), reach_logit=(), median_days=())
    simulate(tmp_path / "with", config, seed=9)
    simulate(tmp_path / "without", config.model_copy(update={"onboarding": none}), seed=9)
    milestones = list(config.onboarding.milestones)
    events = {
        name: pq.read_table(tmp_path / name / "events").to_pandas() for name in ("with", "without")
    }
    reached = events["with"][events["with"]["event"].isin(milestones)]
    others = events["with"][~events["with"]["event"].isin(milestones)]
    # their own random stream: every other event and the truth are as they were
    content = ["type", "event", "user_id", "group_id", "timestamp", "properties", "traits"]
    key = content[:5]
    assert (
        others[content]
        .sort_values(key)
        .reset_index(drop=True)
        .equals(events["without"][content].sort_values(key).reset_index(drop=True))
    )
    for name in ("account_months.parquet", "accounts.parquet"):
        truth = [(tmp_path / run / "truth" / name).read_bytes() for run in ("with", "without")]
        assert truth[0] == truth[1]
    # once per account and milestone, by a customer that existed in the window then
    assert not reached.duplicated(["group_id", "event"]).any()
    created = events["with"].loc[events["with"]["event"] == "Account Created"]
    first = created.groupby("group_id")["timestamp"].min()
    new = reached[reached["group_id"].isin(first.index)]
    lag = (new["timestamp"] - new["group_id"].map(first)).dt.days
    assert lag.between(-35, config.onboarding.within_days).all()  # trials start up to 30 d early
    share = [new["event"].eq(m).sum() / len(first) for m in milestones]
    assert share[0] > share[1] > share[2] > 0.2  # the later ones fewer, none rare
    # engaged accounts reach more of them: the count carries the latent state
    truth = pq.read_table(tmp_path / "with" / "truth" / "account_months.parquet").to_pandas()
    engagement = truth.sort_values("month").groupby("account_id")["engagement"].first()
    done = new.groupby("group_id")["event"].nunique().reindex(first.index, fill_value=0)
    by_count = engagement.reindex(done.index).groupby(done.to_numpy()).mean()
    assert by_count[3] > by_count[0] + 0.3


def test_defaults_are_calibrated(tmp_path: Path) -> None:
    report: SimulationReport = simulate(
        tmp_path / "out", SimulationConfig(accounts=2000, months=12), seed=11
    )
    assert 0.005 <= report.monthly_logo_churn <= 0.04
    assert 0.10 <= report.win_rate <= 0.35
    assert 0.8 <= report.nrr <= 1.3
    assert report.accounts == 2000


def test_yaml_overrides_and_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "sim.yaml"
    good.write_text("months: 6\nchurn:\n  intercept: -5.5\n", encoding="utf-8")
    config = load_simulation_config(good, accounts=50)
    assert (config.months, config.accounts, config.churn.intercept) == (6, 50, -5.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("churn:\n  intercpt: 1\nbilling:\n  failure_rate: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_simulation_config(bad)
    keys = [p.key for p in caught.value.problems]
    assert keys == ["billing.failure_rate", "churn.intercpt"] or sorted(keys) == sorted(
        ["billing.failure_rate", "churn.intercpt"]
    )
    assert "unknown key" in str(caught.value)
    with pytest.raises(ConfigError, match="start must be the first day"):
        load_simulation_config(None, start=dt.date(2024, 1, 5))


def test_seeded_world_draws_do_not_depend_on_malformed_fraction(tmp_path: Path) -> None:
    clean = simulate(tmp_path / "a", SMALL.model_copy(update={"months": 3}), seed=5)
    noisy = simulate(
        tmp_path / "b", SMALL.model_copy(update={"months": 3, "malformed_fraction": 0.05}), seed=5
    )
    assert clean.events == noisy.events
    assert clean.churned == noisy.churned
    a = pq.read_table(tmp_path / "a" / "truth" / "account_months.parquet")
    b = pq.read_table(tmp_path / "b" / "truth" / "account_months.parquet")
    assert a.equals(b)
    assert np.isfinite(clean.mrr_end)


# --- interventions -------------------------------------------------------------------------

#: every account a customer at the start, churn ≈ 5 %/month, a strong email effect
TRIAL = SimulationConfig(
    accounts=30_000,
    months=1,
    acquisition=AcquisitionParams(initial_customer_fraction=1.0),
    churn=ChurnParams(intercept=-3.0),
    interventions=InterventionParams(
        email=ActionEffectParams(persuadable=-2.5, sleeping_dog=0.7, cost=0.05)
    ),
)


def test_untreated_steps_write_the_same_bytes_as_simulate(tmp_path: Path) -> None:
    report = simulate(tmp_path / "a", SMALL, seed=7)
    with Simulation(tmp_path / "b", SMALL, seed=7) as simulation:
        steps = [simulation.step() for _ in range(3)]
        again = simulation.finish()  # runs the nine months left
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert dataclasses.replace(again, out_dir=report.out_dir) == report
    assert [s.month for s in steps] == [dt.date(2024, m, 1) for m in (1, 2, 3)]
    assert all(s.churned == s.churned_without_actions and s.delivered == 0 for s in steps)


def test_randomized_email_reproduces_its_average_effect(tmp_path: Path) -> None:
    with Simulation(tmp_path / "out", TRIAL, seed=4) as simulation:
        customers = simulation.customers
        treat = np.random.default_rng(99).random(len(customers)) < 0.5
        actions = [Action(type=ActionType.EMAIL, account_id=a) for a in np.array(customers)[treat]]
        step = simulation.step(actions)
        simulation.finish()
    assert step.delivered == len(actions) == int(treat.sum())
    assert step.action_cost == pytest.approx(0.05 * len(actions))
    truth = pq.read_table(tmp_path / "out" / "truth" / "treatment_effects.parquet").to_pandas()
    assert len(truth) == len(customers)
    # the configured log-odds shift, by segment
    by_segment = truth.groupby("response_segment")["effect_logodds_email"].agg(["min", "max"])
    assert by_segment.loc["persuadable"].tolist() == [-2.5, -2.5]
    assert by_segment.loc["sleeping_dog"].tolist() == [0.7, 0.7]
    assert by_segment.loc[["sure_thing", "lost_cause"]].abs().max().max() == 0.0
    shares = truth["response_segment"].value_counts(normalize=True)
    assert shares["persuadable"] == pytest.approx(0.25, abs=0.02)
    assert shares["sleeping_dog"] == pytest.approx(0.10, abs=0.02)
    # the average treatment effect the truth states, and the one the experiment measures
    ate = truth["effect_prob_email"].mean()
    treated = truth["applied_email"].to_numpy()
    assert treated.sum() == len(actions)
    churned = truth["churned"].to_numpy()
    p1, p0 = churned[treated].mean(), churned[~treated].mean()
    se = np.sqrt(p1 * (1 - p1) / treated.sum() + p0 * (1 - p0) / (~treated).sum())
    assert abs((p1 - p0) - ate) < 1.96 * se, (p1 - p0, ate, se)
    # a real effect the experiment detects, not a null any interval would cover
    assert ate < -2 * se
    assert p1 - p0 < -se
    # the realized counterfactual: untreated accounts are unchanged, treated ones moved
    assert (truth.loc[~treated, "churned"] == truth.loc[~treated, "churned_without_actions"]).all()
    assert (truth.loc[~treated, "hazard"] == truth.loc[~treated, "hazard_without_actions"]).all()


def test_sleeping_dogs_churn_more_when_treated(tmp_path: Path) -> None:
    with Simulation(tmp_path / "out", TRIAL, seed=5) as simulation:
        customers = np.array(simulation.customers)
        treat = np.random.default_rng(7).random(len(customers)) < 0.5
        simulation.step([Action(type=ActionType.EMAIL, account_id=a) for a in customers[treat]])
    truth = pq.read_table(tmp_path / "out" / "truth" / "treatment_effects.parquet").to_pandas()
    dogs = truth[truth["response_segment"] == "sleeping_dog"]
    rates = dogs.groupby("applied_email")["churned"].agg(["mean", "size"])
    p1, n1 = rates.loc[True]
    p0, n0 = rates.loc[False]
    pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
    z = (p1 - p0) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    assert z > 3, (p1, p0, n1, n0)
    treated_dogs = dogs[dogs["applied_email"]]
    assert (treated_dogs["effect_prob_email"] >= 0).all()
    # same draws: treating a sleeping dog can only add churn, never prevent it
    assert (treated_dogs["churned"] >= treated_dogs["churned_without_actions"]).all()
    assert treated_dogs["churned"].sum() > treated_dogs["churned_without_actions"].sum()


def test_actions_emit_messages_that_ingest_cleanly_and_discounts_lower_mrr(
    tmp_path: Path,
) -> None:
    out, config = tmp_path / "out", SMALL.model_copy(update={"months": 3})
    with Simulation(out, config, seed=3) as simulation:
        first = simulation.customers[:40]
        actions = [Action(type=ActionType.EMAIL, account_id=a) for a in first[:20]]
        actions += [Action(type=ActionType.IN_APP, user_id="usr_0000001")]
        actions += [Action(type=ActionType.CSM_CALL, account_id=a) for a in first[20:30]]
        actions += [
            Action(type=ActionType.DISCOUNT, account_id=a, discount_pct=50) for a in first[30:]
        ]
        step = simulation.step(actions)
        report = simulation.finish()
    assert step.delivered == report.actions_delivered == len(actions)
    assert step.discount_forgone > 0
    assert report.action_cost == pytest.approx(20 * 0.05 + 0.01 + 10 * 40.0)
    events = pq.read_table(out / "events" / "2024-01.parquet").to_pandas()
    sent = events[events["event"] == "Message Sent"]
    assert len(sent) == len(actions)
    assert sent["properties"].str.contains('"channel":"csm_task"').sum() == 10
    assert sent["properties"].str.contains('"campaign":"discount_50pct"').sum() == 10
    assert (events["event"] == "Message Opened").sum() > 0
    months = pq.read_table(out / "truth" / "account_months.parquet").to_pandas()
    simulate(tmp_path / "plain", config, seed=3)
    plain = pq.read_table(tmp_path / "plain" / "truth" / "account_months.parquet").to_pandas()
    key = ["account_id", "month"]
    jan = months[months["month"] == months["month"].min()].set_index(key)["mrr"]
    plain_jan = plain[plain["month"] == plain["month"].min()].set_index(key)["mrr"]
    discounted = [(a, jan.index[0][1]) for a in first[30:]]
    assert (jan[discounted] / plain_jan[discounted]).round(9).tolist() == [0.5] * 10
    _, quarantined, reasons = _ingest(tmp_path, out)
    assert quarantined == 0, reasons


def test_actions_on_unknown_accounts_are_refused_by_name(tmp_path: Path) -> None:
    with Simulation(tmp_path / "out", SMALL, seed=1) as simulation:
        with pytest.raises(NotFoundError, match=r"2 action\(s\) name no simulated.*'acct_999999'"):
            simulation.step(
                [
                    Action(type=ActionType.EMAIL, account_id="acct_999999"),
                    Action(type=ActionType.EMAIL, user_id="usr_9999999"),
                ]
            )
        assert simulation.month == 0  # nothing ran
    with pytest.raises(ValueError, match="discount_pct is required for a discount"):
        Action(type=ActionType.DISCOUNT, account_id="acct_000001")
    with pytest.raises(ValueError, match="exactly one of account_id"):
        Action(type=ActionType.EMAIL)


def test_every_event_lies_in_its_month_and_before_the_end(tmp_path: Path) -> None:
    # a deal closed on a month's last day must not onboard users (or sessions) after it:
    # an ingest as of the end of the window would quarantine them as future events
    config = SimulationConfig(accounts=400, months=6)
    report = simulate(tmp_path / "out", config, seed=11)
    end = dt.datetime.combine(report.end, dt.time(), tzinfo=dt.UTC)
    for path in sorted((tmp_path / "out" / "events").glob("*.parquet")):
        stamps = pq.read_table(path, columns=["timestamp"]).column("timestamp")
        month_start = dt.datetime.strptime(path.stem, "%Y-%m").replace(tzinfo=dt.UTC)
        assert pc.min(stamps).as_py() >= month_start - dt.timedelta(days=400)
        assert pc.max(stamps).as_py() < end, path.name
        next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
        assert pc.max(stamps).as_py() < next_month, path.name


def test_pre_signup_page_views_stitch_onto_the_buyer(tmp_path: Path) -> None:
    config = SimulationConfig(accounts=60, months=3)
    simulate(tmp_path / "out", config, seed=5)
    events = pa.concat_tables(
        pq.read_table(p) for p in sorted((tmp_path / "out" / "events").glob("*.parquet"))
    ).to_pylist()
    pages = [e for e in events if e["type"] == "page"]
    assert pages
    assert all(e["user_id"] is None and e["anonymous_id"] for e in pages)
    assert {e["event"] for e in pages} <= {"Home", "Pricing", "Docs", "Customers", "Signup"}
    stitched = {
        e["anonymous_id"]: e["user_id"]
        for e in events
        if e["type"] == "identify" and e["anonymous_id"] and e["anonymous_id"].startswith("anon-p")
    }
    # a buyer: seen on the site before the lead, identified at signup with the same browser
    anon, user = next(iter(sorted(stitched.items())))
    visits = sorted((e for e in pages if e["anonymous_id"] == anon), key=lambda e: e["timestamp"])
    assert len(visits) >= 2
    assert '"campaign":{"source":' in visits[0]["context"]
    assert json.loads(visits[0]["properties"])["path"].startswith("/")
    project = init_project(tmp_path / "proj", clock=lambda: dt.datetime(2024, 4, 2, tzinfo=dt.UTC))
    try:
        report = ingest(project, [tmp_path / "out" / "events", tmp_path / "out" / "exports"])
        assert report.quarantined == 0
        stitch(project)
        profile = find_profile(project.warehouse, user)
        assert find_profile(project.warehouse, anon).profile_id == profile.profile_id
        assert anon in profile.identifiers["anonymous_id"]
    finally:
        project.close()


def test_trials_load_cleanly_and_start_before_their_subscription(tmp_path: Path) -> None:
    simulate(tmp_path / "out", SimulationConfig(accounts=80, months=3), seed=3)
    accounts = pq.read_table(tmp_path / "out" / "truth" / "accounts.parquet").to_pylist()
    trials = {a["account_id"] for a in accounts if a["trial"]}
    assert trials
    assert trials <= {a["account_id"] for a in accounts if a["acquired_in_window"]}
    project = init_project(tmp_path / "proj", clock=lambda: dt.datetime(2024, 4, 2, tzinfo=dt.UTC))
    try:
        report = ingest(project, [tmp_path / "out" / "events", tmp_path / "out" / "exports"])
        events = project.warehouse.events()
        wanted = events.filter(
            events.event.isin(["Trial Started", "Trial Ended", "Subscription Started"])
        )
        rows = project.warehouse.backend.to_pyarrow(wanted).to_pylist()
    finally:
        project.close()
    assert report.quarantined == 0
    started = {
        json.loads(r["properties"])["subscription_id"]: r["timestamp"]
        for r in rows
        if r["event"] == "Subscription Started"
    }
    product_trials = {
        r["group_id"]: r["timestamp"]
        for r in rows
        if r["event"] == "Trial Started" and r["source"] == "segment"
    }
    # every converted trial starts before its subscription, in the product and in Stripe
    for account in trials:
        subscription = account.replace("acct_", "sub_")
        assert product_trials[account] < started[subscription]
    billed = [r for r in rows if r["event"] == "Trial Started" and r["source"] == "stripe"]
    assert {json.loads(r["properties"])["subscription_id"] for r in billed} == {
        a.replace("acct_", "sub_") for a in trials
    }
    # the others are lost deals: a trial that ended with no subscription behind it
    lost = set(product_trials) - trials
    assert lost
    assert all(g.startswith("prospect_") for g in lost)
    ended = {
        r["group_id"] for r in rows if r["event"] == "Trial Ended" and r["source"] == "segment"
    }
    assert lost <= ended


def test_snapshots_mid_run_show_the_exports_as_they_stand(tmp_path: Path) -> None:
    """A step-wise run can load its exports month by month: after month m, the
    subscriptions show who had churned by then and nothing later; invoice and ticket
    rows come as they stood (a ticket solved later shows open, and comes again once
    solved); the files load with nothing in quarantine; the window's files are
    unchanged."""
    plain = simulate(tmp_path / "plain", SMALL, seed=7)
    counts, tickets, solved_later = [], {}, set()
    clock = [dt.datetime(2024, 2, 1, tzinfo=dt.UTC)]
    project = init_project(tmp_path / "proj", clock=lambda: clock[0])
    with Simulation(tmp_path / "run", SMALL, seed=7) as simulation:
        for month in range(4):
            simulation.step()
            end = dt.datetime(2024, month + 2, 1, tzinfo=dt.UTC)
            clock[0] = end
            files = simulation.export_snapshot(tmp_path / "snap" / str(month))
            by_name = {f.name: f for f in files}
            subs = pa_csv.read_csv(by_name["subscriptions.csv"]).to_pylist()
            canceled = [s for s in subs if s["Status"] == "canceled"]
            counts.append(len(canceled))
            for row in canceled:
                assert _utc(row["Canceled At (UTC)"]) < end
            for row in pa_csv.read_csv(by_name["tickets.csv"]).to_pylist():
                if row["Solved at"] is not None:
                    assert _utc(row["Solved at"]) < end
                    if row["Id"] in tickets and tickets[row["Id"]] is None:
                        solved_later.add(row["Id"])
                tickets[row["Id"]] = row["Solved at"]
            report = ingest(project, files)
            assert report.quarantined == 0
        simulation.finish()
    project.close()
    assert counts == sorted(counts)
    assert counts[-1] > 0
    assert solved_later  # shown open at first, solved in a later export
    streamed = pa_csv.read_csv(tmp_path / "run" / "exports" / "zendesk" / "tickets.csv")
    assert set(tickets) == set(streamed.column("Id").to_pylist()[: len(tickets)])
    assert _digest(tmp_path / "plain") == _digest(tmp_path / "run")
    assert plain.churned > 0


def _utc(text: object) -> dt.datetime:
    return dt.datetime.fromisoformat(str(text)).replace(tzinfo=dt.UTC)


def test_marketing_spend_is_the_cost_of_the_leads_the_events_show(tmp_path: Path) -> None:
    """``finance/marketing_spend.csv``: per month and channel that costs anything, the
    cost of the leads of that month's funnel; over the window, as many leads per channel
    as ``Lead Created`` events carry that ``lead_source``. tenure reads it as spend."""
    from tenure.measure._spend import read_spend

    config = SMALL.model_copy(update={"months": 6})
    simulate(tmp_path / "out", config, seed=5)
    path = tmp_path / "out" / "finance" / "marketing_spend.csv"
    rows = pa_csv.read_csv(
        path, convert_options=pa_csv.ConvertOptions(column_types={"month": pa.string()})
    ).to_pylist()
    paid = ("paid", "referral", "events")  # organic leads cost nothing: no rows
    months = [f"2024-{m:02d}" for m in range(1, 7)]
    assert [(r["month"], r["channel"]) for r in rows] == [(m, c) for m in months for c in paid]
    events = pa.concat_tables(
        pq.read_table(p, columns=["event", "properties"])
        for p in sorted((tmp_path / "out" / "events").glob("*.parquet"))
    )
    leads = events.filter(pc.equal(events["event"], "Lead Created"))
    sources = [json.loads(p)["lead_source"] for p in leads["properties"].to_pylist()]
    cost = dict(zip(("organic", *paid), config.acquisition.cost_per_lead, strict=True))
    for channel in paid:
        spent = sum(r["amount"] for r in rows if r["channel"] == channel)
        assert spent == sources.count(channel) * cost[channel] > 0
    assert sources.count("organic") > 0
    spend = read_spend(path, root=tmp_path)
    assert [f"{m:%Y-%m}" for m in spend.by_month] == months
    assert sum(spend.by_month.values()) == pytest.approx(sum(r["amount"] for r in rows))
