"""``tenure serve --workers 2``: several processes, one inbox, each event loaded once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tenure.govern.keys import Role, create_key
from tenure.store._tables import inbox
from tests.conftest import make_project

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_worker_processes_share_the_inbox_and_load_each_event_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", f"sqlite:///{tmp_path / 'store.db'}")
    with project.store.begin() as connection:
        key = create_key(
            connection, name="w", role=Role.INGEST, at=project.clock(), actor="test"
        ).secret
    port = _free_port()
    env = {
        **os.environ,
        "TENURE_SERVE_ACCESS_LOG": "false",
        "TENURE_SERVE_LOADER_INTERVAL": "1s",
    }
    command = [sys.executable, "-c", "from tenure.cli import main; main()", "serve"]
    command += ["--workers", "2", "--port", str(port), "--project", str(project.root)]
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        sent = 0
        with httpx.Client(base_url=url, auth=(key, ""), timeout=30) as client:
            for b in range(30):
                batch = [
                    {
                        "type": "track",
                        "userId": f"u{i}",
                        "event": "Report Exported",
                        "messageId": f"w-{b}-{i}",
                        "timestamp": "2024-05-30T10:00:00Z",
                    }
                    for i in range(50)
                ]
                answer = client.post("/v1/batch", json={"batch": batch})
                assert answer.status_code == 200, answer.text
                sent += answer.json()["accepted"]
        assert sent == 1500
        deadline = time.monotonic() + 60
        while True:
            with project.store.connect() as connection:
                waiting = connection.execute(
                    select(func.count()).select_from(inbox).where(inbox.c.loaded_at.is_(None))
                ).scalar_one()
            if waiting == 0:
                break
            assert time.monotonic() < deadline, f"{waiting} events still waiting"
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    project.close()  # the lake index is free again now that the server is gone
    assert project.index.event_count() == 1500
    assert "Traceback" not in log.read_text()
