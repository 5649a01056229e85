"""Ingest throughput: N Segment events from Parquet and from JSON lines.

    python -m benchmarks.ingest --events 10000000

Generates the inputs once (DuckDB, outside the timing), then ingests each
into a fresh project in a fresh process and prints events/s and peak RSS.
A second pass over the same file measures the dedupe path (all duplicates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

_EVENTS_SQL = """
SELECT
    'msg-' || i AS messageId,
    CASE WHEN i % 20 = 0 THEN 'identify' WHEN i % 50 = 1 THEN 'page' ELSE 'track' END AS type,
    CASE WHEN i % 20 = 0 THEN NULL WHEN i % 50 = 1 THEN 'Dashboard'
         ELSE ['Signed In', 'Feature Used', 'Report Exported', 'Invite Sent'][1 + i % 4]
         END AS event,
    'user-' || (i % {users}) AS userId,
    'anon-' || (i % {anons}) AS anonymousId,
    strftime(TIMESTAMP '2023-01-01' + to_seconds((i * 7919) % (365 * 86400)),
             '%Y-%m-%dT%H:%M:%S.000Z') AS timestamp,
    {{'groupId': 'acct-' || (i % {accounts}),
      'library': {{'name': 'analytics-python', 'version': '2.3.3'}},
      'ip': '10.0.' || (i % 250) || '.' || (i % 200)}} AS context,
    CASE WHEN i % 20 = 0 THEN {{'email': 'user' || (i % {users}) || '@example.com',
                               'plan': 'pro', 'seats': i % 40}} END AS traits,
    {{'feature': ['reports', 'dashboards', 'alerts', 'api'][1 + i % 4],
      'duration_ms': (i * 31) % 5000, 'plan': 'pro'}} AS properties
FROM range({n}) t(i)
"""


def generate(n: int, out: Path) -> tuple[Path, Path]:
    parquet, jsonl = out / "events.parquet", out / "events.jsonl"
    sql = _EVENTS_SQL.format(
        n=n, users=max(n // 50, 1), anons=max(n // 30, 1), accounts=max(n // 2000, 1)
    )
    con = duckdb.connect()
    if not parquet.exists():
        con.execute(f"COPY ({sql}) TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
    if not jsonl.exists():
        con.execute(f"COPY (SELECT * FROM '{parquet}') TO '{jsonl}' (FORMAT json)")
    con.close()
    return parquet, jsonl


def measure(path: Path, project_dir: Path) -> None:
    """Child process: ingest *path* twice into *project_dir* and print a JSON line."""
    from tenure.collect import ingest
    from tenure.project import init_project

    project = init_project(project_dir)
    start = time.perf_counter()
    first = ingest(project, [path])
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = ingest(project, [path])
    second_s = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "loaded": first.loaded,
                "quarantined": first.quarantined,
                "seconds": first_s,
                "events_per_s": (first.loaded + first.quarantined) / first_s,
                "rerun_duplicates": second.duplicates,
                "rerun_seconds": second_s,
                "rerun_events_per_s": second.duplicates / second_s if second_s else 0,
                "peak_rss_mb": rss_mb,
            }
        )
    )
    project.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, help="where to keep generated inputs (reused)")
    parser.add_argument("--format", choices=["parquet", "jsonl", "both"], default="both")
    parser.add_argument("--child", nargs=2, metavar=("INPUT", "PROJECT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(Path(args.child[0]), Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory(prefix="tenure-bench-") as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        parquet, jsonl = generate(args.events, data)
        print(
            f"generated {args.events:,} events in {time.perf_counter() - started:.1f}s "
            f"(parquet {parquet.stat().st_size / 2**20:,.0f} MiB, "
            f"jsonl {jsonl.stat().st_size / 2**20:,.0f} MiB)"
        )
        inputs = {"parquet": parquet, "jsonl": jsonl}
        chosen = ["parquet", "jsonl"] if args.format == "both" else [args.format]
        print(
            f"{'input':<8} {'events':>12} {'seconds':>8} {'events/s':>11} "
            f"{'rerun ev/s':>11} {'peak RSS':>9}"
        )
        for name in chosen:
            project = Path(tmp) / f"project-{name}"
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(inputs[name]), str(project)],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{name:<8} {r['loaded']:>12,} {r['seconds']:>8.1f} {r['events_per_s']:>11,.0f} "
                f"{r['rerun_events_per_s']:>11,.0f} {r['peak_rss_mb']:>7,.0f} MB"
            )
        print(f"machine: {dt.datetime.now(dt.UTC):%Y-%m-%d}, {__import__('os').cpu_count()} cores")


if __name__ == "__main__":
    main()
