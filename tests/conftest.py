"""Shared fixtures: projects on SQLite always, and on PostgreSQL when one is configured.

Set TENURE_TEST_POSTGRES_URL (``.ci/run`` does when a server answers on
127.0.0.1:5432) to run every store test on PostgreSQL as well; each test then
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tenure.config import CONFIG_FILENAME, default_config_text
from tenure.project import Project, init_project
from tenure.store import create_store_engine

# The CLI's Rich consoles read a terminal width from COLUMNS once, when created; pytest-xdist
# workers start with COLUMNS=80 set, which would fix every table at 80 columns in them.
# Without it the width is read at each print, so tests that set COLUMNS get their width.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

POSTGRES_URL = os.environ.get("TENURE_TEST_POSTGRES_URL")

STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

FIXED_NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def fixed_clock(at: dt.datetime = FIXED_NOW) -> Callable[[], dt.datetime]:
    return lambda: at


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding slow tests run first (keeping each file's order): on several workers,
    each taking a file at a time, the longest then start at once instead of last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("TENURE_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def bare_store(store_url: str) -> Iterator[Engine]:
    """An engine on an empty store, not migrated: for tests that make their own tables."""
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


def make_project(root: Path, store: str, clock: Callable[[], dt.datetime] | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    config = default_config_text().replace("url: sqlite:///tenure.db", f"url: {store}")
    (root / CONFIG_FILENAME).write_text(config, encoding="utf-8")
    return init_project(root, clock=clock or fixed_clock())


@pytest.fixture
def project(tmp_path: Path, store_url: str) -> Iterator[Project]:
    """A migrated project with a fixed clock, on each store."""
    proj = make_project(tmp_path / "proj", store_url)
    yield proj
    proj.close()


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[Project]:
    """A project on the default SQLite store only (for tests not about the store)."""
    proj = make_project(tmp_path / "proj", f"sqlite:///{tmp_path / 'store.db'}")
    yield proj
    proj.close()
