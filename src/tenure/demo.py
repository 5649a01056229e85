"""``tenure demo``: a project with the bundled sample company, loaded and stitched.

The sample (``tenure/samples/saas``) is small and static: six months of
Segment events of eight accounts plus the same company's Stripe, HubSpot and
Zendesk exports, with a few deliberately broken records so the quarantine has
something to show. It is copied into the project (``sample/``) so the files and
the project's own mappings for its HubSpot exports can be read and edited.
The Simulator replaces it with a generated company.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from tenure.collect import IngestReport, Progress, ingest
from tenure.config import CONFIG_FILENAME, default_config_text
from tenure.identity import StitchReport, stitch
from tenure.project import Clock, init_project, utc_now

__all__ = ["DemoResult", "run_demo", "sample_dir"]

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
    ingest: IngestReport
    stitch: StitchReport
    example_profile: str


def sample_dir() -> Path:
    return Path(str(files("tenure") / "samples" / "saas"))


def _demo_config() -> str:
    text = default_config_text()
    start = text.index("sources: {}")
    return text[:start] + _SOURCES


def run_demo(
    directory: Path, *, clock: Clock = utc_now, progress: Progress | None = None
) -> DemoResult:
    """Create (or reuse) a project in *directory*, ingest the sample, stitch identities.

    Running it again loads nothing new: every record is already in the lake.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / CONFIG_FILENAME).exists():
        (directory / CONFIG_FILENAME).write_text(_demo_config(), encoding="utf-8")
    sample = directory / "sample"
    shutil.copytree(sample_dir(), sample, dirs_exist_ok=True)
    project = init_project(directory, clock=clock)
    try:
        report = ingest(project, [sample], progress=progress)
        stitched = stitch(project)
    finally:
        project.close()
    return DemoResult(str(project.root), report, stitched, "ada@acme.example")
