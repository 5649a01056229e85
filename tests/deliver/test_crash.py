"""The acceptance test of the outbox: workers killed mid-send lose nothing.

Worker processes are SIGKILLed at random (seeded) moments while they send to a
real SMTP server, then restarted, until the outbox is drained. Every message
must arrive; a message may arrive twice only if its row records a resend, and
both copies carry the same Message-ID so a mail system can drop one. SQLite
runs one worker; PostgreSQL runs two that share the queue.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

import tenure
from tenure.deliver import enqueue
from tenure.project import utc_now
from tenure.store._tables import outbox
from tests.conftest import make_project
from tests.deliver.conftest import Mailbox, email_payload, start_smtp

N = 60
SEED = 20240601
# `tenure worker` as a separate process, from the same tenure the test imports.
WORKER = "from tenure.cli import main; main()"


def _start(
    project_dir: Path, worker_id: str, logs: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = (logs / f"{worker_id}.log").open("ab")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                "worker",
                "--project",
                str(project_dir),
                "--worker-id",
                worker_id,
                "--poll",
                "0.05",
                "--batch",
                "5",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()


def _statuses(url: str) -> collections.Counter[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return collections.Counter(connection.execute(select(outbox.c.status)).scalars())
    finally:
        engine.dispose()


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_killed_workers_lose_no_message(tmp_path: Path, store_url: str) -> None:
    started = time.monotonic()
    postgres = store_url.startswith("postgresql")
    worker_ids = ["w1", "w2"] if postgres else ["w1"]
    kills_wanted = 8 if postgres else 6
    rng = random.Random(SEED)

    # a slow 250: a worker killed in that window never learns its message went out
    controller, smtp = start_smtp(Mailbox(delay=0.03))
    project = make_project(tmp_path / "proj", store_url, clock=utc_now)
    # a short lease so killed sends are picked up again quickly (the delivery section
    # has no TENURE_DELIVERY_* environment overrides, so the file says it)
    config = project.config_path.read_text(encoding="utf-8")
    for old, new in [
        ("    port: 25\n", f"    port: {smtp.port}\n"),
        ("  lease_seconds: 120\n", "  lease_seconds: 2\n"),
        ("  max_attempts: 6\n", "  max_attempts: 50\n"),
        ("  backoff_base_seconds: 30\n", "  backoff_base_seconds: 0.2\n"),
        ("  backoff_max_seconds: 3600\n", "  backoff_max_seconds: 1\n"),
    ]:
        assert old in config, old
        config = config.replace(old, new)
    project.config_path.write_text(config, encoding="utf-8")
    with project.store.begin() as connection:
        for n in range(N):
            enqueue(
                connection,
                idempotency_key=f"crash-{n:03d}",
                account_id=f"acct{n % 7}",
                channel="email",
                recipient=f"user{n}@acme.com",
                payload=email_payload(f"user{n}@acme.com", n),
                now=utc_now(),
            )
    url = project.store_url
    project.close()

    # the workers import the very tenure under test, whatever is installed
    source = str(Path(tenure.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = {wid: _start(project.root, wid, logs, env) for wid in worker_ids}
    starts = dict.fromkeys(worker_ids, 1)
    kills = 0

    def drained() -> bool:
        return _statuses(url) == collections.Counter({"sent": N})

    try:
        while kills < kills_wanted and not drained():
            victim = rng.choice(worker_ids)
            received = len(smtp.mailbox.message_ids())
            # kill while sending: wait for the next message to arrive, then a random moment
            if not _wait(lambda before=received: len(smtp.mailbox.message_ids()) > before, 20):
                break
            time.sleep(rng.uniform(0.0, 0.25))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(timeout=10)
            kills += 1
            workers[victim] = _start(project.root, victim, logs, env)
            starts[victim] += 1
        assert _wait(drained, 40), f"not drained: {_statuses(url)}"
    finally:
        # a worker restarted moments ago may still be starting: SIGTERM would end it
        # before its handler is in place, which is no graceful stop to test
        for wid in workers:
            log = logs / f"{wid}.log"
            _wait(lambda log=log, n=starts[wid]: log.read_text().count("worker started") >= n, 30)
        for process in workers.values():
            process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        controller.stop()

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = {r.idempotency_key: r for r in connection.execute(select(outbox))}
    finally:
        engine.dispose()
    received = collections.Counter(smtp.mailbox.message_ids())
    expected = {f"<crash-{n:03d}@tenure>" for n in range(N)}
    duplicated = {mid for mid, count in received.items() if count > 1}
    resent = {f"<{key}@tenure>" for key, row in rows.items() if row.resends > 0}
    print(
        f"\n{'postgresql' if postgres else 'sqlite'}: {len(worker_ids)} worker(s), {kills} kills, "
        f"N={N}, received {sum(received.values())}, distinct Message-IDs {len(received)}, "
        f"duplicated {len(duplicated)} ({sum(received[m] - 1 for m in duplicated)} extra copies), "
        f"rows with resends {len(resent)} (resends {sum(r.resends for r in rows.values())}), "
        f"{time.monotonic() - started:.1f}s"
    )
    assert kills == kills_wanted
    assert set(received) == expected  # every message arrived
    assert len(received) == N
    assert duplicated <= resent  # a copy only where a lost worker may have sent it
    assert all(row.status == "sent" and row.sent_at is not None for row in rows.values())
    for wid, process in workers.items():
        assert process.returncode == 0, (logs / f"{wid}.log").read_text()
