"""``tenure demo``: a project loaded with a company's data, stitched and reported.

By default the company is simulated (:mod:`tenure.simulate`, 2,000 accounts
over 24 months): its events and exports are written to ``simulation/`` in the
project, ingested as of the end of the simulated window, and stitched; the
ground truth stays in ``simulation/truth`` for evaluation; the project's
``measure.spend`` reads the simulated marketing spend for CAC payback and its
``lifecycle.onboarding_milestones`` names the simulated onboarding milestones.
Then the intelligence steps run as of that end: build features, train the churn,
survival and retention models, and score every customer. ``sample=True`` loads
the small bundled sample instead (eight accounts, hand-made exports with a
custom HubSpot property and deliberately broken records), which is also what
the tests use to check identity edge cases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import ibis

from tenure._demo_delivery import DeliveryDemo, decide_and_deliver
from tenure.collect import IngestReport, Progress, ingest
from tenure.config import CONFIG_FILENAME, default_config_text
from tenure.errors import ModelError
from tenure.identity import StitchReport, stitch
from tenure.models.pipeline import (
    AtRisk,
    BuildReport,
    ChurnTraining,
    ScoreReport,
    at_risk,
    build,
    score,
    train,
)
from tenure.project import Clock, Project, init_project
from tenure.simulate import SimulationReport, load_simulation_config, simulate

__all__ = ["DemoResult", "run_demo", "sample_dir"]

#: Where the simulator's acquisition spend lands in the demo project (``measure.spend``).
_SPEND = "simulation/finance/marketing_spend.csv"

_SOURCES = """sources:
  # the sample's HubSpot exports carry a custom "Product Account ID" property;
  # these mappings use it to join CRM companies to product accounts
  hubspot_companies:
    mapping: sample/mappings/hubspot_companies.yaml
    path: sample/hubspot_companies.csv
  hubspot_contacts:
    mapping: sample/mappings/hubspot_contacts.yaml
    path: sample/hubspot_contacts.csv
  hubspot_deals:
    mapping: sample/mappings/hubspot_deals.yaml
    path: sample/hubspot_deals.csv
"""


@dataclass(frozen=True, slots=True)
class DemoResult:
    project: str
    simulation: SimulationReport | None  # None when the bundled sample was loaded
    ingest: IngestReport
    stitch: StitchReport
    example_profile: str
    # the intelligence steps (None with the bundled sample: too few customers to learn from)
    build: BuildReport | None = None
    training: ChurnTraining | None = None
    scoring: ScoreReport | None = None
    at_risk: list[AtRisk] = field(default_factory=list)
    #: Why the models were not trained (too little history), if they were not.
    models_skipped: str | None = None
    #: The decision cycle and what the worker delivered to the demo's local sinks.
    delivery: DeliveryDemo | None = None


def sample_dir() -> Path:
    return Path(str(files("tenure") / "samples" / "saas"))


def _sample_config() -> str:
    text = default_config_text()
    return text[: text.index("sources: {}")] + _SOURCES


def _simulation_config(milestones: Sequence[str]) -> str:
    """The default project file, reading the simulated marketing spend for CAC payback
    and naming the simulated company's onboarding *milestones*."""
    text = default_config_text()
    for old, new in (
        ("  # spend: finance/marketing_spend.csv\n", f"  spend: {_SPEND}\n"),
        ("  onboarding_milestones: []", f"  onboarding_milestones: {json.dumps(list(milestones))}"),
    ):
        if text.count(old) != 1:
            raise AssertionError(f"the default project file no longer has {old.strip()!r}")
        text = text.replace(old, new)
    return text


def _busiest_user(project: Project) -> str:
    """A user id of the profile with the most events: a good first `tenure profile`."""
    profiles = project.warehouse.table("profiles")
    top = profiles.filter(profiles.user_ids.length() > 0).order_by(
        [ibis.desc("event_count"), "profile_id"]
    )
    rows = project.warehouse.backend.to_pyarrow(top.select("user_ids").limit(1)).to_pylist()
    return str(rows[0]["user_ids"][0]) if rows else ""


def run_demo(
    directory: Path,
    *,
    accounts: int = 2000,
    months: int = 24,
    seed: int = 42,
    sample: bool = False,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Create (or reuse) a project in *directory*, load a company into it, stitch identities.

    Running it again loads nothing new: every record is already in the lake.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if sample:
        if not (directory / CONFIG_FILENAME).exists():
            (directory / CONFIG_FILENAME).write_text(_sample_config(), encoding="utf-8")
        shutil.copytree(sample_dir(), directory / "sample", dirs_exist_ok=True)
        project = init_project(directory, clock=clock) if clock else init_project(directory)
        inputs, simulated = [directory / "sample"], None
    else:
        config = load_simulation_config(None, accounts=accounts, months=months)
        out = directory / "simulation"
        simulated = simulate(out, config, seed=seed, progress=_months(progress))
        # the company is loaded as of the end of its simulated window, at 14:00 UTC:
        # office hours in Europe and the Americas, so the demo's emails are not all
        # held back by quiet hours (Asia-Pacific customers' are)
        end = dt.datetime.combine(simulated.end, dt.time(14), tzinfo=dt.UTC)
        if not (directory / CONFIG_FILENAME).exists():
            (directory / CONFIG_FILENAME).write_text(
                _simulation_config(config.onboarding.milestones), encoding="utf-8"
            )
        project = init_project(directory, clock=clock or _fixed(end), examples=True)
        inputs = [out / "events", out / "exports"]
    try:
        report = ingest(project, inputs, progress=progress)
        stitched = stitch(project)
        example = "ada@acme.example" if sample else _busiest_user(project)
        result = DemoResult(str(project.root), simulated, report, stitched, example)
        if not sample:
            as_of = project.clock()
            built = build(project, as_of=as_of)
            result = dataclasses.replace(result, build=built)
            try:
                trained = train(project, as_of=as_of, actor="tenure demo")
            except ModelError as error:  # a tiny or short simulation: say why, keep the rest
                return dataclasses.replace(result, models_skipped=str(error))
            scored = score(project, as_of=as_of)
            result = dataclasses.replace(
                result, training=trained, scoring=scored, at_risk=at_risk(project, 10)
            )
            delivered = decide_and_deliver(project, as_of=as_of)
            result = dataclasses.replace(result, delivery=delivered)
    finally:
        project.close()
    return result


def _fixed(at: dt.datetime) -> Clock:
    return lambda: at


def _months(progress: Progress | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def advance(done: int, total: int) -> None:
        progress("simulating months", done, total)

    return advance
