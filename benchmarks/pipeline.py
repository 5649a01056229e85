"""Build + train + score at scale: wall time and peak RSS per step, against a floor.

    python -m benchmarks.pipeline --accounts 100000 --months 24 [--dir DIR]
    python -m benchmarks.pipeline --accounts 1000000 --months 24 --dir /big/disk/co

Loads a simulated company once (kept in --dir for later runs), then times each
intelligence step as of the end of the window. The floor is one plain grouped
scan of the same events in DuckDB (10 aggregates per account over the lake,
without identity attribution or windows): the feature build is reported as a
multiple of it. Peak RSS is the process's high-water mark after each step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from benchmarks._company import load_company, open_project, peak_rss_mb, progress

from tenure.models.pipeline import build, score, train


def floor_scan_seconds(lake: Path) -> tuple[float, int]:
    """One grouped aggregate over every event into accounts (the floor)."""
    connection = duckdb.connect()
    started = time.perf_counter()
    rows = connection.sql(
        f"""
        SELECT group_id, count(*), count(DISTINCT user_id), min(timestamp), max(timestamp),
               count(*) FILTER (WHERE event = 'Signed In'),
               count(*) FILTER (WHERE event = 'Feature Used'),
               count(*) FILTER (WHERE event = 'Ticket Created'),
               count(*) FILTER (WHERE event = 'Payment Failed'),
               max(timestamp) FILTER (WHERE event = 'Signed In'),
               count(*) FILTER (WHERE type = 'track')
        FROM read_parquet('{lake}/events/*/*.parquet', hive_partitioning = false)
        GROUP BY group_id
        """
    ).fetchall()
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=None, help="keep (and reuse) the project here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp) / "company"
        end, timings = load_company(
            root, accounts=args.accounts, months=args.months, seed=args.seed
        )
        result: dict[str, Any] = {
            "accounts": args.accounts,
            "months": args.months,
            "load": {k: round(v, 1) for k, v in timings.items()},
            "rss_after_load_mb": peak_rss_mb(),
        }
        with open_project(root, end) as project:
            result["events"] = project.warehouse.event_count()
            steps: dict[str, dict[str, float]] = {}
            started = time.perf_counter()
            built = build(project, as_of=end)
            progress("build", time.perf_counter() - started)
            steps["build"] = {
                "seconds": round(time.perf_counter() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
            }
            steps["build"].update({f"{k}_s": round(v, 1) for k, v in built.seconds.items()})
            started = time.perf_counter()
            trained = train(project, as_of=end, promote=True, actor="benchmark")
            progress("train", time.perf_counter() - started)
            steps["train"] = {
                "seconds": round(time.perf_counter() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
                "rows": trained.rows,
                **{f"{k}_s": round(v, 1) for k, v in trained.seconds.items()},
            }
            started = time.perf_counter()
            scored = score(project, as_of=end)
            progress("score", time.perf_counter() - started)
            steps["score"] = {
                "seconds": round(time.perf_counter() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
                "customers": scored.rows,
                **{f"{k}_s": round(v, 1) for k, v in scored.seconds.items()},
            }
            result["steps"] = steps
            floor, groups = floor_scan_seconds(project.lake.root)
        result["floor_grouped_scan_s"] = round(floor, 2)
        result["floor_groups"] = groups
        features_s = sum(v for k, v in built.seconds.items() if k.startswith("features_"))
        result["feature_build_over_floor"] = round(features_s / floor, 1)
        result["auc_out_of_time"] = round(trained.validation.roc_auc, 4)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
