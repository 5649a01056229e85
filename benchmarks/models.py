"""How well tenure's models recover the simulator's ground truth.

    python -m benchmarks.models --accounts 3000 --months 24 --seed 7 [--dir DIR]

Simulates a company, loads it, and runs build → train → score as of 90 days
before the simulated window ends, so the last 90 days are an untouched future.
Prints one JSON document:

- churn ROC-AUC against who really churned in those 90 days (truth), and the
  out-of-time validation metrics the model was registered with;
- Spearman correlation of the churn probability with the true monthly hazard;
- Spearman correlation of predicted CLV with the true expected future value;
- health-score ROC-AUC against the same churners (when the health model exists).

The truth is read here only, never by the pipeline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from benchmarks._company import load_company, open_project, peak_rss_mb
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from tenure.models.pipeline import SCORES_TABLE, build, score, train


def _truth_frame(project: Any, root: Path, as_of: dt.datetime, horizon_days: int) -> pd.DataFrame:
    """Scores joined to the simulator's truth through the account's group id."""
    warehouse = project.warehouse
    scores = warehouse.table(SCORES_TABLE).to_pandas()
    accounts = warehouse.table("accounts").select("account_id", "group_ids").to_pandas()
    accounts = accounts.explode("group_ids").rename(columns={"group_ids": "sim_id"})
    scored = scores.merge(accounts, on="account_id", how="left")
    truth = pd.read_parquet(root / "simulation" / "truth" / "accounts.parquet")
    months = pd.read_parquet(root / "simulation" / "truth" / "account_months.parquet")
    month = pd.Timestamp(as_of.replace(day=1)).tz_localize(None)
    months["month"] = pd.to_datetime(months["month"])
    hazard = months[months["month"] == month][["account_id", "hazard"]]
    truth = truth.merge(hazard, on="account_id", how="left").rename(
        columns={"account_id": "sim_id"}
    )
    joined = scored.merge(truth, on="sim_id", how="inner")
    end = pd.Timestamp(as_of) + pd.Timedelta(days=horizon_days)
    joined["churned_in_horizon"] = (
        joined["churned_at"].notna()
        & (joined["churned_at"] >= pd.Timestamp(as_of))
        & (joined["churned_at"] < end)
    ).astype(int)
    return joined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--dir", type=Path, default=None, help="keep (and reuse) the project here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp) / "company"
        end, timings = load_company(
            root, accounts=args.accounts, months=args.months, seed=args.seed
        )
        as_of = end - dt.timedelta(days=args.horizon_days)
        result: dict[str, Any] = {
            "accounts": args.accounts,
            "months": args.months,
            "seed": args.seed,
            "as_of": as_of.isoformat(),
            **{k: round(v, 1) for k, v in timings.items()},
        }
        with open_project(root, end) as project:
            started = time.perf_counter()
            build(project, as_of=as_of)
            trained = train(project, as_of=as_of, promote=True, actor="benchmark")
            score(project, as_of=as_of)
            result["pipeline_s"] = round(time.perf_counter() - started, 1)
            joined = _truth_frame(project, root, as_of, args.horizon_days)
            validation = trained.validation
            result["out_of_time_validation"] = {
                k: round(v, 4) if isinstance(v, float) else v
                for k, v in validation.as_dict().items()
            }
            y, p = joined["churned_in_horizon"], joined["churn_probability"]
            result["scored_customers"] = len(joined)
            result["true_churners_in_horizon"] = int(y.sum())
            result["churn_auc_vs_truth"] = round(float(roc_auc_score(y, p)), 4)
            with_hazard = joined.dropna(subset=["hazard"])
            result["churn_spearman_vs_true_hazard"] = round(
                float(spearmanr(with_hazard["churn_probability"], with_hazard["hazard"]).statistic),
                4,
            )
            result["clv_spearman_vs_true_expected_future_value"] = round(
                float(
                    spearmanr(
                        joined["clv"], joined["expected_future_value_at_current_hazard"]
                    ).statistic
                ),
                4,
            )
            # renewal: customers whose renewal date falls inside the untouched future
            renewal_days = (
                project.warehouse.table("features_account")
                .select(account_id="entity_id", days_to_renewal="days_to_renewal")
                .to_pandas()
            )
            due = joined.merge(renewal_days, on="account_id")
            due = due[due["days_to_renewal"] <= args.horizon_days - 30]
            result["renewals_due"] = len(due)
            if due["churned_in_horizon"].nunique() == 2:
                result["renewal_auc_vs_truth"] = round(
                    float(roc_auc_score(1 - due["churned_in_horizon"], due["renewal_probability"])),
                    4,
                )
            result.update(_health(project, as_of, args.horizon_days, joined))
        result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, indent=2))


def _health(
    project: Any, as_of: dt.datetime, horizon_days: int, joined: pd.DataFrame
) -> dict[str, Any]:
    try:
        from tenure.models import health
    except ImportError:
        return {"health": "not built yet"}
    from tenure.features import feature_set

    report = health.health_auc(
        project.warehouse, project.config.health, cutoff=as_of, horizon_days=horizon_days
    )
    del feature_set, joined
    return {"health_auc_vs_churn": round(float(report.auc), 4), "health_n": report.n}


if __name__ == "__main__":
    main()
