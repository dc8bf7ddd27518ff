"""Worker threads for calls on every host, kept for the whole command.

A release calls on every host several times (connect, lock, prepare, switch, records): a
new pool each time started a thread per host each time, ~2 ms each on a busy machine,
which for 20 hosts was a tenth of a warm rollback. Pools are kept by size for calls from
the main thread. A call from a worker thread gets a pool of its own, as before: waiting
on the pool it runs in could wait forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

_KEPT: dict[int, ThreadPoolExecutor] = {}  # only the main thread reads or adds to it


class Borrowed:
    """A kept pool lent to one block: the block ends once everything it submitted has
    ended, however it ends (as leaving a `with ThreadPoolExecutor()` does), so no task of
    one call still runs on a host's connection when the next call starts."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        f = self.pool.submit(fn, *args)
        self.futures.append(f)
        return f

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        fs = [self.submit(fn, x) for x in items]
        return (f.result() for f in fs)


@contextmanager
def borrow(n: int, limit: int) -> Iterator[Borrowed]:
    """A pool of min(n, limit) threads (at least one) for one block."""
    workers = max(1, min(n, limit))
    if threading.current_thread() is not threading.main_thread():
        with ThreadPoolExecutor(max_workers=workers) as own:
            b = Borrowed(own)
            yield b
        return
    pool = _KEPT.get(workers)
    if pool is None:
        pool = _KEPT[workers] = ThreadPoolExecutor(max_workers=workers,
                                                   thread_name_prefix="goship-hosts")
    b = Borrowed(pool)
    try:
        yield b
    finally:
        wait(b.futures)
