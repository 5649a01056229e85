"""An acknowledged event survives the server being killed, and a resent batch is not doubled.

``tenure serve`` runs as a real process; clients stream batches at it and note
which were acknowledged; the process is SIGKILLed mid-stream (no shutdown, no
flush), then started again on the same project.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from tenure.govern.keys import Role, create_key
from tenure.store._tables import inbox
from tests.conftest import make_project

pytestmark = pytest.mark.slow

_BATCH = 100
_STREAMS = 4
_KILL_AFTER = 40  # acknowledged batches, over all streams


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    url: str


def _start(project_dir: Path, log: Path) -> _Server:
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "from tenure.cli import main; main()",
        "serve",
        "--no-loader",
        "--port",
        str(port),
        "--project",
        str(project_dir),
    ]
    env = {**os.environ, "TENURE_SERVE_ACCESS_LOG": "false"}
    with log.open("ab") as stderr:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(command, env=env, stdout=stderr, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tenure serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return _Server(process, url)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("tenure serve did not answer /healthz within 20 s")


def _stop(server: _Server) -> None:
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(timeout=10)


@pytest.fixture
def crash_project(tmp_path: Path, store_url: str) -> tuple[Path, str, str]:
    """A project directory, its store URL, and an ingest key (made before any server runs)."""
    project = make_project(tmp_path / "proj", store_url)
    with project.store.begin() as connection:
        key = create_key(
            connection, name="crash", role=Role.INGEST, at=project.clock(), actor="test"
        ).secret
    project.close()
    return tmp_path / "proj", store_url, key


def _batch(stream: int, number: int) -> dict[str, list[dict[str, object]]]:
    return {
        "batch": [
            {
                "type": "track",
                "userId": f"u{stream}-{i % 7}",
                "event": "Report Exported",
                "messageId": f"crash-{stream}-{number}-{i}",
                "timestamp": "2024-05-30T10:00:00Z",
                "properties": {"format": "csv", "n": i},
            }
            for i in range(_BATCH)
        ]
    }


@dataclass
class _Stream:
    """One client connection sending batch after batch until the server goes away."""

    number: int
    url: str
    key: str
    acknowledged: list[int] = field(default_factory=list)
    unanswered: int | None = None  # the batch in flight when the server died
    unexpected: list[str] = field(default_factory=list)

    def run(self, progress: threading.Semaphore) -> None:
        with httpx.Client(base_url=self.url, auth=(self.key, ""), timeout=10) as client:
            for batch in range(1_000_000):
                try:
                    response = client.post("/v1/batch", json=_batch(self.number, batch))
                except httpx.TransportError:
                    self.unanswered = batch
                    return
                if response.status_code != 200:
                    self.unexpected.append(f"{response.status_code} {response.text}")
                    return
                self.acknowledged.append(batch)
                progress.release()


def _stored(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(select(inbox.c.message_id)).scalars())
    finally:
        engine.dispose()


def test_every_acknowledged_event_survives_sigkill_and_a_resent_batch_is_deduplicated(
    crash_project: tuple[Path, str, str],
) -> None:
    project_dir, store_url, key = crash_project
    server = _start(project_dir, project_dir.parent / "serve.log")
    try:
        streams = [_Stream(n, server.url, key) for n in range(_STREAMS)]
        progress = threading.Semaphore(0)
        threads = [threading.Thread(target=s.run, args=(progress,)) for s in streams]
        for thread in threads:
            thread.start()
        for _ in range(_KILL_AFTER):
            assert progress.acquire(timeout=20), "the server stopped acknowledging batches"
        os.kill(server.process.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=20)
    finally:
        _stop(server)

    assert [s.unexpected for s in streams] == [[]] * _STREAMS
    assert all(s.unanswered is not None for s in streams)  # each was cut off mid-stream
    acknowledged = {
        f"crash-{s.number}-{b}-{i}" for s in streams for b in s.acknowledged for i in range(_BATCH)
    }
    assert len(acknowledged) >= _KILL_AFTER * _BATCH

    server = _start(project_dir, project_dir.parent / "serve.log")
    try:
        stored = _stored(store_url)
        assert acknowledged <= stored  # nothing acknowledged was lost
        with httpx.Client(base_url=server.url, auth=(key, ""), timeout=10) as client:
            for stream in streams:
                assert stream.unanswered is not None
                batch = _batch(stream.number, stream.unanswered)
                ids = {str(e["messageId"]) for e in batch["batch"]}
                already = len(ids & stored)
                assert already in (0, _BATCH)  # a batch is committed whole or not at all
                response = client.post("/v1/batch", json=batch)
                assert response.status_code == 200, response.text
                assert response.json() == {
                    "success": True,
                    "accepted": _BATCH - already,
                    "duplicates": already,
                }
                # and once more: a second retry is a no-op
                assert client.post("/v1/batch", json=batch).json()["duplicates"] == _BATCH
    finally:
        _stop(server)

    in_flight = {f"crash-{s.number}-{s.unanswered}-{i}" for s in streams for i in range(_BATCH)}
    # exactly what was acknowledged or resent: no batch stored twice, or in part
    assert _stored(store_url) == acknowledged | in_flight
