"""A note when the engine runs far below the speed it can reach, and why that may be.

Two signs, each noted once in the task's log (and again only after it went away and came back):
- **slower than itself**: the generated tokens/s of the last minute fell under a third of the best minute this
  task has seen, for two minutes, while the engine had work (requests in flight at least half the limit);
- **a crowded CPU** (the embedded engine only): the machine's load average is above 1.5x its cores. llama.cpp's
  threads spin while they decode; a second engine (or any busy process) on the same cores slows both down many
  times over, from the first second, so "slower than itself" alone would never see it.
"""

from __future__ import annotations

import os
import time

SLOW_FACTOR = 3.0
SLOW_FOR_S = 120.0
WARM_UP_S = 60.0  # the first minute's rate (one prefill, few requests done) is not a reference
LOAD_FACTOR = 1.5


class SpeedWatch:
    def __init__(self, cpu_engine: bool, clock=time.monotonic, loadavg=os.getloadavg, cores: int | None = None):
        self.cpu_engine = cpu_engine
        self.clock, self.loadavg = clock, loadavg
        self.cores = cores or os.cpu_count() or 1
        self.t0 = clock()
        self.best = 0.0
        self.slow_since: float | None = None
        self.noted_slow = self.noted_load = False

    def check(self, rate: float | None, busy: bool) -> list[str]:
        """What to tell the user now (usually nothing). `rate`: generated tokens/s of the last minute; `busy`:
        whether the engine had enough requests to go at full speed meanwhile."""
        notes = []
        if note := self._slower_than_before(rate, busy):
            notes.append(note)
        if self.cpu_engine and (note := self._crowded_cpu(busy)):
            notes.append(note)
        return notes

    def _slower_than_before(self, rate: float | None, busy: bool) -> str | None:
        now = self.clock()
        if rate is None or not busy or now - self.t0 < WARM_UP_S:
            self.slow_since = None
            return None
        if rate * SLOW_FACTOR >= self.best:
            self.best = max(self.best, rate)
            self.slow_since, self.noted_slow = None, False
            return None
        self.slow_since = self.slow_since or now
        if self.noted_slow or now - self.slow_since < SLOW_FOR_S:
            return None
        self.noted_slow = True
        where = "CPU" if self.cpu_engine else "GPU"
        return (f"the engine generates {rate:.0f} tok/s, under a third of the {self.best:.0f} tok/s it reached "
                f"earlier in this task, with requests waiting: is another process using the {where}?")

    def _crowded_cpu(self, busy: bool) -> str | None:
        try:
            load = self.loadavg()[0]
        except OSError:
            return None
        if load <= LOAD_FACTOR * self.cores:
            self.noted_load = False
            return None
        if self.noted_load or not busy:
            return None
        self.noted_load = True
        return (f"load average {load:.1f} on {self.cores} cores: other processes compete with the embedded engine "
                f"for the CPU, and its tokens/s drop many times over (is another finephrase or llama.cpp server "
                f"running here?)")
