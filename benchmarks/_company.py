"""A simulated company loaded into a tenure project, shared by the model benchmarks.

The project is kept in ``--dir`` when given (a second run reuses it: nothing is
simulated or ingested again), else in a temporary directory.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from pathlib import Path

from tenure.collect import ingest
from tenure.identity import stitch
from tenure.project import Project, init_project
from tenure.simulate import SimulationConfig, simulate


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def progress(step: str, seconds: float) -> None:
    """A finished step on stderr at once: a long run that is stopped still tells where it got."""
    print(f"{step}: {seconds:,.1f} s, peak RSS {peak_rss_mb():,} MB", file=sys.stderr, flush=True)


def load_company(
    root: Path, *, accounts: int, months: int, seed: int
) -> tuple[dt.datetime, dict[str, float]]:
    """Simulate, ingest and stitch into *root* (once); returns the window's end and timings."""
    marker = root / ".loaded"
    timings: dict[str, float] = {}
    if marker.exists():
        end = dt.datetime.fromisoformat(marker.read_text().strip())
        return end, timings
    started = time.perf_counter()
    report = simulate(
        root / "simulation", SimulationConfig(accounts=accounts, months=months), seed=seed
    )
    timings["simulate_s"] = time.perf_counter() - started
    progress("simulate", timings["simulate_s"])
    end = dt.datetime.combine(report.end, dt.time(), tzinfo=dt.UTC)
    project = init_project(root, clock=lambda: end)
    try:
        started = time.perf_counter()
        ingest(project, [root / "simulation" / "events", root / "simulation" / "exports"])
        timings["ingest_s"] = time.perf_counter() - started
        progress("ingest", timings["ingest_s"])
        started = time.perf_counter()
        stitch(project)
        timings["stitch_s"] = time.perf_counter() - started
        progress("stitch", timings["stitch_s"])
    finally:
        project.close()
    marker.write_text(end.isoformat())
    return end, timings


def open_project(root: Path, end: dt.datetime) -> Project:
    return Project.open(root, clock=lambda: end)
