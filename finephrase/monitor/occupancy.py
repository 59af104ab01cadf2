"""Requests in flight: how full a task keeps the engine's queue, and which requests keep it waiting.

The rephrase step registers every request it sends (`InFlight.begin` / `end`). Once a second the task samples the
count (`sample`), which gives
- the recent mean (the last `RECENT_S` seconds) for the progress line and `finephrase status`;
- the session's mean, recorded in the progress snapshot and, per session, in the manifest;
- the mean since the task's previous commit, recorded in each ledger line (`in_flight`), which `finephrase
  report` plots over time.

A straggler is a request in flight for longer than `STRAGGLER_FACTOR` times the median latency of the recent
finished requests (and at least `STRAGGLER_MIN_S`): it keeps its chunk from committing. The snapshot names the
oldest ones still in flight, and the session's slowest, with their document ids.
"""

from __future__ import annotations

import statistics
import time
from collections import deque

RECENT_S = 30.0
STRAGGLER_FACTOR = 5.0
STRAGGLER_MIN_S = 1.0
LATENCY_WINDOW = 2000  # finished requests the median latency is taken over
SHOWN = 10  # stragglers named in the snapshot


class InFlight:
    def __init__(self, target: int, clock=time.monotonic):
        self.target = target  # --max-concurrency
        self.clock = clock
        self.open: dict[int, tuple[str, str, int, float]] = {}  # key -> (document id, prompt, chunk, start)
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.recent: deque[tuple[float, int]] = deque()
        self.session_sum = self.session_n = 0
        self.commit_sum = self.commit_n = 0
        self.slowest: list[dict] = []  # the session's slowest finished stragglers
        self._next_key = 0
        self._threshold: float | None = None  # recomputed once a second, in sample()

    # -- requests -----------------------------------------------------------------------------------------------

    def begin(self, doc_id: str, prompt: str, chunk: int) -> int:
        key = self._next_key
        self._next_key += 1
        self.open[key] = (doc_id, prompt, chunk, self.clock())
        return key

    def end(self, key: int, ok: bool = True):
        doc_id, prompt, chunk, start = self.open.pop(key)
        took = self.clock() - start
        if ok:
            self.latencies.append(took)
        if self._threshold is not None and took > self._threshold:
            self.slowest.append({"id": doc_id, "prompt": prompt, "chunk": chunk, "seconds": round(took, 2)})
            self.slowest = sorted(self.slowest, key=lambda s: -s["seconds"])[:SHOWN]

    def __len__(self) -> int:
        return len(self.open)

    # -- occupancy ----------------------------------------------------------------------------------------------

    def sample(self):
        now, n = self.clock(), len(self.open)
        self.recent.append((now, n))
        while self.recent and now - self.recent[0][0] > RECENT_S:
            self.recent.popleft()
        self.session_sum += n
        self.session_n += 1
        self.commit_sum += n
        self.commit_n += 1
        self._threshold = self.threshold()

    def recent_mean(self) -> float | None:
        return sum(n for _, n in self.recent) / len(self.recent) if self.recent else None

    def session_mean(self) -> float | None:
        return self.session_sum / self.session_n if self.session_n else None

    def take_since_commit(self) -> float | None:
        """The mean since the previous call (one per commit), and start over; when no sample was taken since
        (commits less than a second apart), the latest sample; None before the first."""
        mean = self.commit_sum / self.commit_n if self.commit_n else (self.recent[-1][1] if self.recent else None)
        self.commit_sum = self.commit_n = 0
        return None if mean is None else round(mean, 1)

    # -- stragglers ---------------------------------------------------------------------------------------------

    def median_latency(self) -> float | None:
        return statistics.median(self.latencies) if len(self.latencies) >= 20 else None

    def threshold(self) -> float | None:
        median = self.median_latency()
        return None if median is None else max(STRAGGLER_FACTOR * median, STRAGGLER_MIN_S)

    def stragglers(self) -> list[dict]:
        """The oldest requests in flight past the threshold, oldest first."""
        threshold = self._threshold
        if threshold is None:
            return []
        now = self.clock()
        late = [(now - start, doc_id, prompt, chunk) for doc_id, prompt, chunk, start in self.open.values()
                if now - start > threshold]
        late.sort(reverse=True)
        return [{"id": d, "prompt": p, "chunk": c, "seconds": round(age, 2)} for age, d, p, c in late[:SHOWN]]

    def snapshot(self) -> dict:
        median = self.median_latency()
        return {"target": self.target, "now": len(self.open),
                "recent_mean": _round(self.recent_mean()), "session_mean": _round(self.session_mean()),
                "median_latency_s": _round(median, 3), "straggler_after_s": _round(self._threshold, 3),
                "stragglers": self.stragglers(), "slowest": self.slowest}


def _round(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def in_flight_line(recent_mean: float | None, target: int) -> str:
    """`in flight 1,987/2,048 (97%)`: the recent mean of requests in flight against --max-concurrency."""
    if recent_mean is None or not target:
        return f"in flight ?/{target:,}"
    return f"in flight {recent_mean:,.0f}/{target:,} ({recent_mean / target:.0%})"


def session_occupancy(run_dir, ranks, since: float, host: str) -> dict | None:
    """Requests in flight over one session of the run (one `finephrase rephrase` invocation): the sum over its
    tasks of each task's session mean, against the sum of their --max-concurrency, from the progress snapshots
    (`ranks`: the tasks it ran; `since`: when it started, epoch seconds)."""
    from pathlib import Path

    import orjson

    from finephrase.store.ledger import LEDGER_DIR

    mean = target = 0.0
    found = False
    for rank in ranks:
        path = Path(run_dir) / LEDGER_DIR / f"rank_{rank:05d}.progress.json"
        try:
            sessions = orjson.loads(path.read_bytes()).get("sessions", [])
        except (OSError, orjson.JSONDecodeError):
            continue
        mine = [s for s in sessions if s.get("host") == host and (s.get("started_at") or 0) >= since
                and s.get("in_flight_mean") is not None]
        if mine:
            found = True
            mean += mine[-1]["in_flight_mean"]
            target += mine[-1].get("max_concurrency") or 0
    if not found:
        return None
    return {"mean": round(mean, 1), "target": int(target), "share": round(mean / target, 3) if target else None}
