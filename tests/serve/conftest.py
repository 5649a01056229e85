"""Fixtures of the service tests: a project, one key per role, and the app on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenure.api import create_app
from tenure.govern.keys import Role, create_key
from tenure.project import Project
from tests.conftest import make_project
from tests.serve._live import running


def make_keys(project: Project) -> dict[Role, str]:
    """A key for every role, by role (the whole key, as a client presents it)."""
    with project.store.begin() as connection:
        return {
            role: create_key(
                connection, name=f"test {role.value}", role=role, at=project.clock(), actor="test"
            ).secret
            for role in Role
        }


@pytest.fixture
def api_project(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A migrated project on each store, its API quiet and keys never cached."""
    monkeypatch.setenv("TENURE_SERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("TENURE_SERVE_KEY_CACHE_SECONDS", "0")
    project = make_project(tmp_path / "proj", store_url)
    yield project
    project.close()


@pytest.fixture
def keys(api_project: Project) -> dict[Role, str]:
    return make_keys(api_project)


@pytest.fixture
def base_url(api_project: Project) -> Iterator[str]:
    """The app of *api_project* on a real server (no background loader: tests load by hand)."""
    with running(create_app(api_project, loader=False)) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client
