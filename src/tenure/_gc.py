"""How often Python's cyclic garbage collector runs in tenure's processes.

The default thresholds (700, 10, 10) run a young collection every 700 net
container allocations. Deciding, serving and loading allocate millions of
short-lived dicts and tuples whose memory reference counting already frees;
the collections mostly walk objects that are still alive. On the decision
cycle benchmark they were a third of the time (20,000 customers: 3.5 s with
the defaults, 2.4 s with :data:`THRESHOLDS`). Raising the thresholds only
delays freeing reference cycles, which these paths rarely make.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["THRESHOLDS", "fewer_collections", "use_throughput_thresholds"]

#: Young collections every 50,000 allocations; the older generations as before, relatively.
THRESHOLDS = (50_000, 20, 100)


def use_throughput_thresholds() -> None:
    """For the rest of this process (a ``tenure`` command, a server process)."""
    gc.set_threshold(*THRESHOLDS)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """:data:`THRESHOLDS` for the duration of the block (a library call in any process).

    A caller that set higher thresholds keeps them; the previous ones come back after.
    """
    previous = gc.get_threshold()
    if previous[0] >= THRESHOLDS[0]:
        yield
        return
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
