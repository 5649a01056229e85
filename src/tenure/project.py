"""A tenure project: its directory, configuration and the two stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine

from tenure.config import CONFIG_FILENAME, ProjectConfig, default_config_text, load_config
from tenure.errors import TenureError
from tenure.store import create_store_engine, resolve_store_url, upgrade
from tenure.warehouse import Lake, LakeIndex, Warehouse, connect_backend

__all__ = ["Clock", "Project", "init_project", "utc_now"]

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Project:
    """Opened from a directory holding ``tenure.yaml``. Stores open lazily.

    *clock* is the time source every step uses; pass a fixed one for as-of
    runs, backtests and tests.
    """

    def __init__(
        self,
        root: Path,
        config: ProjectConfig | None = None,
        *,
        clock: Clock = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.config = config if config is not None else load_config(self.root, environ)
        self.clock = clock

    @classmethod
    def open(cls, root: Path, *, clock: Clock = utc_now) -> Project:
        return cls(root, clock=clock)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    def _path(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.config.store.url, self.root)

    @property
    def lake(self) -> Lake:
        return Lake(self._path(self.config.lake.path))

    @cached_property
    def store(self) -> Engine:
        return create_store_engine(self.store_url)

    @cached_property
    def index(self) -> LakeIndex:
        """The lake's index and loading connection (a DuckDB file beside the lake)."""
        settings = self.config.warehouse
        return LakeIndex(
            self.lake, threads=settings.threads, memory_limit=settings.duckdb_memory_limit()
        )

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(connect_backend(self.config.warehouse, self.root), self.lake, self.index)

    def close(self) -> None:
        if "warehouse" in self.__dict__:
            self.warehouse.close()
            del self.__dict__["warehouse"]
        if "index" in self.__dict__:
            self.index.close()
            del self.__dict__["index"]
        if "store" in self.__dict__:
            self.store.dispose()
            del self.__dict__["store"]

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def init_project(
    root: Path, *, clock: Clock = utc_now, force: bool = False, examples: bool = False
) -> Project:
    """Create ``tenure.yaml`` with commented defaults (unless present) and migrate the store.

    With *examples*, an example policy, journey and their templates are written
    into the project's folders for them when those do not exist yet.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / CONFIG_FILENAME
    if path.exists() and force:
        path.unlink()
    if not path.exists():
        path.write_text(default_config_text(), encoding="utf-8")
    project = Project(root, clock=clock)
    if examples:
        _write_examples(project)
    project.lake.root.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(project.store)
    except Exception as error:
        raise TenureError(
            f"could not migrate the operational store at {project.store_url}: {error}",
            hint="check store.url in tenure.yaml (or TENURE_STORE_URL) and that the database is up",
        ) from error
    return project


def _write_examples(project: Project) -> None:
    samples = resources.files("tenure") / "samples" / "decide"
    settings = project.config.decide
    for kind, folder in (
        ("policies", settings.policies_dir),
        ("templates", settings.templates_dir),
        ("journeys", settings.journeys_dir),
    ):
        target = project.root / folder
        if target.exists():
            continue
        target.mkdir(parents=True)
        for item in sorted(samples.joinpath(kind).iterdir(), key=lambda i: i.name):
            if item.name.endswith(".yaml"):
                (target / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
