"""Group commit: many requests per transaction, each answered only once committed,
and one request's fault failing only that request (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, insert, select

from tenure.errors import NotFoundError, TenureError
from tenure.store._group import GroupCommitter

_rows = Table("group_commit_rows", MetaData(), Column("n", Integer, primary_key=True))


@pytest.fixture
def engine(bare_store: Engine) -> Engine:
    _rows.create(bare_store)
    return bare_store


def _stored(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(_rows.c.n)).scalars())


class _Recorder:
    """A commit function that inserts each n, remembering each group's items.

    n < 0 is a request's own error (answered, the others go on); n == 13 is a
    fault that breaks the whole transaction. The first group can be held open
    until :attr:`release` is set, so that later requests queue behind it.
    """

    def __init__(self, hold_first: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, connection: Connection, items: Sequence[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        self.started.set()
        self.release.wait(10)
        outcomes: list[int | BaseException] = []
        for n in items:
            if n < 0:
                outcomes.append(NotFoundError(f"no {n}"))
                continue
            connection.execute(insert(_rows), {"n": n})
            if n == 13:
                raise RuntimeError("thirteen breaks the transaction")
            outcomes.append(n * 10)
        return outcomes


def _submit_all(committer: GroupCommitter[int, int], items: list[int]) -> dict[int, object]:
    answers: dict[int, object] = {}

    def one(n: int) -> None:
        try:
            answers[n] = committer.submit_sync(n)
        except Exception as error:
            answers[n] = error

    threads = [threading.Thread(target=one, args=(n,)) for n in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def _queued_behind_a_held_group(
    engine: Engine, items: list[int]
) -> tuple[_Recorder, dict[int, object]]:
    """Request 1 alone, its transaction held open while *items* queue behind it."""
    commit = _Recorder(hold_first=True)
    committer = GroupCommitter(engine, commit, name="test-group")
    answers: dict[int, object] = {}
    try:
        first = threading.Thread(target=committer.submit_sync, args=(1,))
        first.start()
        assert commit.started.wait(10)
        waiting = threading.Thread(target=lambda: answers.update(_submit_all(committer, items)))
        waiting.start()
        while committer._queue.qsize() < len(items):  # all queued behind the first
            threading.Event().wait(0.01)
        commit.release.set()
        first.join(10)
        waiting.join(10)
    finally:
        committer.close()
    return commit, answers


def test_requests_waiting_meanwhile_share_one_transaction(engine: Engine) -> None:
    commit, answers = _queued_behind_a_held_group(engine, [2, 3, 4, 5, 6])
    assert commit.groups == [[1], [2, 3, 4, 5, 6]]
    assert answers == {n: n * 10 for n in (2, 3, 4, 5, 6)}
    assert _stored(engine) == [1, 2, 3, 4, 5, 6]


def test_each_request_hears_its_own_result_or_its_own_error(engine: Engine) -> None:
    committer = GroupCommitter(engine, _Recorder(), name="test-group")
    try:
        answers = _submit_all(committer, [1, -2, 3])
    finally:
        committer.close()
    assert (answers[1], answers[3]) == (10, 30)
    assert isinstance(answers[-2], NotFoundError)
    assert isinstance(answers[-2], TenureError)
    assert _stored(engine) == [1, 3]


def test_a_fault_rolls_the_group_back_and_fails_only_its_own_request(engine: Engine) -> None:
    commit, answers = _queued_behind_a_held_group(engine, [12, 13, 14])
    # the group of three failed together, then each went alone
    assert sorted(commit.groups[1]) == [12, 13, 14]
    assert sorted(len(g) for g in commit.groups[2:]) == [1, 1, 1]
    assert (answers[12], answers[14]) == (120, 140)
    assert isinstance(answers[13], RuntimeError)
    assert _stored(engine) == [1, 12, 14]


def test_an_async_caller_is_answered_after_the_commit(engine: Engine) -> None:
    committer = GroupCommitter(engine, _Recorder(), name="test-group")

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(
            *(committer.submit(n) for n in (7, 8, -9)), return_exceptions=True
        )

    try:
        answers = asyncio.run(main())
    finally:
        committer.close()
    assert answers[:2] == [70, 80]
    assert isinstance(answers[2], NotFoundError)
    assert _stored(engine) == [7, 8]


def test_after_sees_each_settled_group_before_its_callers_hear(engine: Engine) -> None:
    seen: list[list[int | BaseException]] = []
    committer = GroupCommitter(engine, _Recorder(), name="test-group", after=seen.append)
    try:
        assert committer.submit_sync(5) == 50
        assert seen == [[50]]  # already when the caller is answered
        with pytest.raises(RuntimeError):
            committer.submit_sync(13)
    finally:
        committer.close()
    assert seen[0] == [50]
    assert [type(o) for o in seen[1]] == [RuntimeError]  # rolled back: an error, not a result
    assert _stored(engine) == [5]


def test_a_failing_after_neither_undoes_nor_repeats_a_commit(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    commit = _Recorder()

    def after(outcomes: Sequence[int | BaseException]) -> None:
        raise RuntimeError("after broke")

    committer = GroupCommitter(engine, commit, name="test-group", after=after)
    try:
        assert committer.submit_sync(5) == 50
        assert committer.submit_sync(6) == 60  # the thread is still there
    finally:
        committer.close()
    assert commit.groups == [[5], [6]]  # each committed once, never run again alone
    assert _stored(engine) == [5, 6]
    assert "after a group commit" in caplog.text


def test_a_commit_function_that_answers_the_wrong_number_is_rolled_back(engine: Engine) -> None:
    def short(connection: Connection, items: Sequence[int]) -> list[int | BaseException]:
        for n in items:
            connection.execute(insert(_rows), {"n": n})
        return []

    committer = GroupCommitter(engine, short, name="test-group")
    try:
        with pytest.raises(AssertionError, match="0 outcomes for 1 requests"):
            committer.submit_sync(8)
    finally:
        committer.close()
    assert _stored(engine) == []
