"""One queue for SQLite's single writer, shared by threads and processes.

SQLite lets one transaction write at a time; a second writer waits in its busy
handler, which sleeps in growing steps (1, 2, 5 … 100 ms) and polls. Under
load that turns a millisecond of waiting into tens. Writers that take
:func:`write_lock` first queue instead on a thread lock and an ``flock`` on a
file beside the database, and the kernel wakes the next one the moment the
lock is free — across every process of ``tenure serve --workers`` too.
PostgreSQL needs nothing of the kind: the context does nothing there.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine

__all__ = ["write_lock"]

_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _lock_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(f"{database}.write-lock")


@contextlib.contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold the store's write queue (SQLite files only) for the duration of the block."""
    path = _lock_path(engine)
    if path is None:
        yield
        return
    with _guard:
        local = _locks.setdefault(str(path), threading.Lock())
    with local, path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
