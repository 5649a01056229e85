"""What a project holds: the stores, their tables and the last ingest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from tenure.project import Project
from tenure.store import IngestRun, current_revision, latest_run, metadata, quarantine_counts

__all__ = ["ProjectStatus", "project_status"]


@dataclass(frozen=True, slots=True)
class ProjectStatus:
    project: str
    store_url: str
    store_revision: str | None
    warehouse: str
    lake: str
    lake_events: int
    lake_files: int
    warehouse_tables: dict[str, int]
    store_tables: dict[str, int]
    last_ingest: IngestRun | None
    open_quarantine: dict[str, int]


def _safe_url(url: str) -> str:
    """The store URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def project_status(project: Project) -> ProjectStatus:
    with project.store.connect() as connection:
        store_tables = {
            name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in sorted(metadata.tables.items())
        }
        last = latest_run(connection)
        open_quarantine = quarantine_counts(connection)
    settings = project.config.warehouse
    where = settings.path if settings.path.is_absolute() else project.root / settings.path
    return ProjectStatus(
        project=str(project.root),
        store_url=_safe_url(project.store_url),
        store_revision=current_revision(project.store),
        warehouse=f"{settings.backend.value} {where}",
        lake=str(project.lake.root),
        lake_events=project.index.event_count(),
        lake_files=len(project.index.registered_files()),
        warehouse_tables=project.warehouse.table_counts(),
        store_tables=store_tables,
        last_ingest=last,
        open_quarantine=open_quarantine,
    )
