"""Simulator throughput: events/s and peak RSS for a given size.

    python -m benchmarks.simulate --accounts 100000 --months 24

Writes into a temporary directory (removed afterwards) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from tenure.simulate import EventFormat, SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-accounts", type=int, default=None, help="accounts per event block")
    parser.add_argument("--format", choices=[f.value for f in EventFormat], default="parquet")
    args = parser.parse_args()
    config = SimulationConfig(
        accounts=args.accounts, months=args.months, format=EventFormat(args.format)
    )
    if args.block_accounts is not None:
        config = config.model_copy(update={"event_block_accounts": args.block_accounts})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = simulate(Path(tmp), config, seed=args.seed)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "accounts": args.accounts,
                "months": args.months,
                "block_accounts": config.event_block_accounts,
                "events": report.events,
                "seconds": round(seconds, 1),
                "events_per_s": round(report.events / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "output_mb": round(size / 2**20, 1),
                "monthly_logo_churn": round(report.monthly_logo_churn, 4),
                "nrr": round(report.nrr, 3),
                "win_rate": round(report.win_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
