"""Request slots handed out oldest chunk first.

`RequestSlots` is a semaphore of `max_concurrency` slots whose waiters are served by priority instead of arrival:
the request loop asks with `(chunk index, document's reading position)`, so when a slot frees up it goes to the
next prompt of the oldest open chunk, and a new document (always of the newest chunk) starts only when no older
request waits. Every free slot is still given at once to whoever waits, so the number of requests in flight is
what it was with a plain FIFO semaphore; only their order changes, and chunks complete (and commit) in reading
order whenever their requests take about the same time.

Each slot has a number (0 .. slots - 1): `acquire` returns the one it takes and `release` gives it back. The
embedded engine has as many sequences as the loop has slots, so a request can name the engine's sequence it runs
on (`id_slot`) and find its document's prefix there (see RequestLoop._document).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class RequestSlots:
    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self._free_ids = list(range(slots))  # a heap: the lowest free number first
        self._waiters: list[tuple[tuple, int, asyncio.Future]] = []
        self._order = itertools.count()  # ties (same priority) in arrival order

    @property
    def free(self) -> int:
        return len(self._free_ids)

    async def acquire(self, priority: tuple = ()) -> int:
        """Take a slot and return its number; while none is free, wait behind every waiter of a lower `priority`
        (compared as tuples)."""
        if self._free_ids and not self._waiters:
            return heapq.heappop(self._free_ids)
        future = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._order), future)
        heapq.heappush(self._waiters, entry)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: hand the slot on
                self.release(future.result())
            elif entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def release(self, slot: int) -> None:
        """Give slot number `slot` to the most urgent waiter, or put it back."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(slot)
                return
        heapq.heappush(self._free_ids, slot)

    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())
