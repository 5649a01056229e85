"""Group commit: one thread writes for many concurrent requests, many per transaction.

A busy server that commits each request on its own pays a synchronous commit
(an fsync on SQLite) and a turn at the write lock per request, and on SQLite
every turn is serialized anyway. :class:`GroupCommitter` is one thread with a
queue: it takes whatever requests have arrived while the last transaction ran,
hands them to one ``commit`` function inside one transaction under
:func:`write_lock`, and answers each request only after that transaction is
committed — so nothing is acknowledged before it is durable. *after* sees
each group's outcomes once settled (results committed, or errors), before any
request hears its own; an error in it is logged, and undoes nothing.

``commit`` returns one result per request; a request's own error (an
expected :class:`~tenure.errors.TenureError`, raised before it wrote
anything) is returned in its place and leaves the others' work standing. Any
other error rolls the whole transaction back, and then each request of the
group is committed alone, so one request's fault fails only that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine

from tenure.store._locks import write_lock

__all__ = ["GroupCommitter"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Request(Generic[T, R]):
    item: T
    done: Callable[[R | BaseException], None]


class GroupCommitter(Generic[T, R]):
    """Commits requests for concurrent callers, up to *most* per transaction."""

    def __init__(
        self,
        engine: Engine,
        commit: Callable[[Connection, Sequence[T]], Sequence[R | BaseException]],
        *,
        name: str,
        most: int = 256,
        after: Callable[[Sequence[R | BaseException]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._commit = commit
        self._after = after
        self._most = most
        self._queue: queue.Queue[_Request[T, R] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit_sync(self, item: T) -> R:
        """Commit *item* (from a worker thread or a test); returns once it is durable."""
        done = threading.Event()
        box: list[R | BaseException] = []

        def finish(result: R | BaseException) -> None:
            box.append(result)
            done.set()

        self._queue.put(_Request(item, finish))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    async def submit(self, item: T) -> R:
        """Commit *item*; returns (without blocking the loop) once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()

        def finish(result: R | BaseException) -> None:
            loop.call_soon_threadsafe(_settle, future, result)

        self._queue.put(_Request(item, finish))
        return await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._most:
                try:
                    request = self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    stop = True
                    break
                group.append(request)
            outcomes = self._outcomes(group)
            if self._after is not None:
                try:
                    self._after(outcomes)
                except Exception:  # committed all the same; the thread must go on
                    log.exception("after a group commit")
            for request, outcome in zip(group, outcomes, strict=True):
                # RuntimeError: its event loop has closed, nobody waits any more
                with contextlib.suppress(RuntimeError):
                    request.done(outcome)
            if stop:
                return

    def _outcomes(self, group: list[_Request[T, R]]) -> Sequence[R | BaseException]:
        try:
            return self._transaction([r.item for r in group])
        except Exception as error:
            if len(group) == 1:
                return [error]
        # one request's fault rolled back the group: each alone, so only it fails
        outcomes: list[R | BaseException] = []
        for request in group:
            try:
                outcomes.extend(self._transaction([request.item]))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    def _transaction(self, items: list[T]) -> Sequence[R | BaseException]:
        """One transaction for *items*; an error anywhere in it rolls it all back."""
        with write_lock(self._engine), self._engine.begin() as connection:
            outcomes = self._commit(connection, items)
            if len(outcomes) != len(items):
                raise AssertionError(f"{len(outcomes)} outcomes for {len(items)} requests")
        return outcomes


def _settle(future: asyncio.Future[R], result: R | BaseException) -> None:
    if future.done():  # the request was cancelled (client went away); its work is committed
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
