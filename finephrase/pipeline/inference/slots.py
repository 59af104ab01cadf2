"""Request slots handed out oldest chunk first.

`RequestSlots` is a semaphore of `max_concurrency` slots whose waiters are served by priority instead of arrival:
the request loop asks with `(chunk index, document's reading position)`, so when a slot frees up it goes to the
next prompt of the oldest open chunk, and a new document (always of the newest chunk) starts only when no older
request waits. Every free slot is still given at once to whoever waits, so the number of requests in flight is
what it was with a plain FIFO semaphore; only their order changes, and chunks complete (and commit) in reading
order whenever their requests take about the same time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class RequestSlots:
    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.free = slots
        self._waiters: list[tuple[tuple, int, asyncio.Future]] = []
        self._order = itertools.count()  # ties (same priority) in arrival order

    async def acquire(self, priority: tuple = ()) -> None:
        """Take a slot; while none is free, wait behind every waiter of a lower `priority` (compared as tuples)."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._order), future)
        heapq.heappush(self._waiters, entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: hand the slot on
                self.release()
            elif entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        """Give the slot to the most urgent waiter, or put it back."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1

    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())
