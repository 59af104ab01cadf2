"""Progress of one task: documents done, generated tokens/s, rejects and ETA, and while a drain finishes the
requests in flight, how many are left and when they should be done.

Tokens/s is the engine's own count, read while requests run (finephrase/serving/counters.py: llama.cpp and
vLLM), or, where the engine gives none, the tokens of finished requests. A `SpeedWatch` notes in the log when the
engine runs far below the speed it can reach (finephrase/monitor/engine_speed.py).

On a terminal (and a single worker) one line is redrawn in place; otherwise a log line is printed every
`interval` seconds, so SLURM logs and CI output stay readable.

With a `snapshot_path`, the same numbers are also written (atomically, every few seconds, and at the end) to a
small JSON file, `DIR/.ledger/rank_RRRRR.progress.json`, for `finephrase status` to read while the run goes on.
It keeps the start and end of every session of the task, so time spent (GPU-hours) adds up across restarts,
and with an `InFlight` the requests in flight (recent and session means, stragglers: finephrase/monitor/occupancy.py).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import Counter, deque
from pathlib import Path

import orjson

from finephrase.formatting import duration, plural
from finephrase.monitor.engine_speed import SpeedWatch
from finephrase.monitor.occupancy import InFlight, in_flight_line
from finephrase.store.layout import durable_write

SNAPSHOT_INTERVAL = 5.0
RATE_WINDOW_S = 60.0  # the rates of the progress line: the last minute


def prefill_line(prompt_tokens: int, cached_tokens: int) -> str:
    """How much of the prompts' prefill the engine served from its prefix cache (one wording everywhere)."""
    return (f"{cached_tokens:,} of {prompt_tokens:,} prompt tokens served from the engine's prefix cache "
            f"({cached_tokens / prompt_tokens:.0%})")


class Progress:
    def __init__(self, rank: int, world_size: int, prompts: int, interval: float = 30.0, tty: bool | None = None,
                 stream=None, start_docs: int = 0, start_frac: float = 0.0, snapshot_path: str | Path | None = None,
                 inflight: InFlight | None = None, cpu_engine: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = 0.5 if self.tty else interval
        self.label = f"task {rank} (of {world_size}): " if world_size > 1 else ""
        self.prompts = max(prompts, 1)
        self.t0 = time.monotonic()
        self.last_print = 0.0
        self.start_docs = start_docs  # committed before this session
        self.start_frac = start_frac
        self.pulled = 0
        self.pulled_frac = start_frac
        self.units_done = 0  # finished (document, prompt) pairs this session
        self.output_tokens = 0
        self.rejects = Counter()
        self.filtered = 0
        self.committed_docs = start_docs
        self.window = deque()  # (time, generated tokens, units done) for the recent rates
        self.engine_tokens: int | None = None  # generated this session as the engine counts them (None: unknown)
        self._engine_offset = 0
        self._engine_last: int | None = None
        self.drain_left: int | None = None  # requests a drain waits for (None: not draining)
        self.speed = SpeedWatch(cpu_engine)
        self.rank, self.world_size = rank, world_size
        self.inflight = inflight
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self.last_snapshot = 0.0
        self.started_at = time.time()
        self.sessions = []
        if self.snapshot_path and self.snapshot_path.exists():
            try:
                old = orjson.loads(self.snapshot_path.read_bytes())
                self.sessions = [s for s in old.get("sessions", []) if s.get("started_at")]
                if self.sessions and self.sessions[-1].get("ended_at") is None:  # killed: last sign of life
                    self.sessions[-1]["ended_at"] = old.get("updated_at")
            except (OSError, orjson.JSONDecodeError):
                self.sessions = []
        self.sessions.append({"started_at": self.started_at, "ended_at": None, "host": socket.gethostname(),
                              "pid": os.getpid()})
        self.write_snapshot("running")

    def pulled_doc(self, frac: float):
        self.pulled += 1
        self.pulled_frac = frac

    def finished_unit(self, output_tokens: int = 0, reject: str | None = None, units: int = 1):
        self.units_done += units
        self.output_tokens += output_tokens
        if reject:
            self.rejects[reject] += 1
        self.maybe_print()

    def engine_count(self, total: int | None):
        """The engine's running total of generated tokens (None: it cannot say; back to finished requests). A
        total that went down is a restarted engine: the count goes on from where it was."""
        if total is None:
            if self.engine_tokens is not None:
                self.engine_tokens, self._engine_last = None, None
                self.window.clear()
            return
        if self._engine_last is None:  # the first reading (or the first since the engine could not say)
            self.window.clear()  # the rate's source changes
            self._engine_offset = (self.engine_tokens or 0) - total
        elif total < self._engine_last:  # a new engine, counting from 0
            self._engine_offset = self.engine_tokens
        self._engine_last = total
        self.engine_tokens = total + self._engine_offset

    def draining(self, requests_left: int):
        """A drain is on: `requests_left` requests in flight (or about to be sent for documents in hand)."""
        started, self.drain_left = self.drain_left is None, requests_left
        if started:
            self.write_snapshot("running")  # `finephrase status` says so at once

    def note(self, message: str):
        self.stream.write(("\n" if self.tty else "") + f"[finephrase] {self.label}{message}\n")
        self.stream.flush()

    def committed(self, docs: int, reject_reasons=()):
        """A chunk of `docs` documents was committed; `reject_reasons`: its refused generations' reasons (known
        only once its gate steps ran)."""
        self.committed_docs += docs
        self.rejects.update(reject_reasons)
        self.maybe_print()
        self.write_snapshot("running")

    def write_snapshot(self, state: str):
        if not self.snapshot_path:
            return
        now = time.time()
        self.last_snapshot = time.monotonic()
        if state != "running":
            self.sessions[-1]["ended_at"] = now
        occupancy = self.inflight.snapshot() if self.inflight is not None else None
        if occupancy:
            self.sessions[-1]["in_flight_mean"] = occupancy["session_mean"]
            self.sessions[-1]["max_concurrency"] = occupancy["target"]
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        span = self.pulled_frac - self.start_frac
        data = {
            "rank": self.rank, "world_size": self.world_size, "state": state, "updated_at": now,
            "sessions": self.sessions,
            "committed_docs": self.committed_docs,
            "done_docs": self.start_docs + self.units_done // self.prompts,
            "total_docs_estimate": round(self.start_docs + self.pulled / span * (1 - self.start_frac)) if span > 0
            else None,
            "input_fraction": self.pulled_frac,
            "session": {"output_tokens": self.output_tokens, "generated_tokens": self.generated(),
                        "tokens_counted_by": "finished requests" if self.engine_tokens is None else "engine",
                        "rejects": dict(self.rejects), "units_done": self.units_done, "elapsed_s": elapsed},
            "eta_s": (self.drain_eta() if self.drain_left is not None else self.eta(elapsed))
            if state == "running" else 0.0,
            "in_flight": occupancy,
            "draining": None if self.drain_left is None else {"requests_left": self.drain_left},
        }
        durable_write(self.snapshot_path, orjson.dumps(data))

    def eta(self, elapsed: float) -> float | None:
        span = self.pulled_frac - self.start_frac
        if span <= 0 or self.units_done == 0:
            return None
        remaining_docs_at_start = self.pulled / span * (1 - self.start_frac)
        done_docs = self.units_done / self.prompts
        rate = done_docs / elapsed
        return max(remaining_docs_at_start - done_docs, 0) / rate if rate > 0 else None

    def generated(self) -> int:
        """Tokens generated this session: the engine's count, or the finished requests' where it has none."""
        return self.output_tokens if self.engine_tokens is None else self.engine_tokens

    def sample(self):
        """Once a second (the request loop's ticker): one point of the recent rates, and the speed watch."""
        now = time.monotonic()
        self.window.append((now, self.generated(), self.units_done))
        while len(self.window) > 2 and now - self.window[0][0] > RATE_WINDOW_S:
            self.window.popleft()
        busy = self.inflight is None or (self.inflight.recent_mean() or 0) >= self.inflight.target / 2
        for message in self.speed.check(self.rates()[0] if now - self.t0 >= RATE_WINDOW_S else None, busy):
            self.note(message)
        self.maybe_print()

    def rates(self) -> tuple[float, float]:
        """(generated tokens/s, finished requests/s) over the last minute (the session so far, if shorter)."""
        now = time.monotonic()
        if self.window and now - self.window[0][0] > 1:
            t_old, tok_old, units_old = self.window[0]
            span = now - t_old
            return (self.generated() - tok_old) / span, (self.units_done - units_old) / span
        elapsed = max(now - self.t0, 1e-9)
        return self.generated() / elapsed, self.units_done / elapsed

    def drain_eta(self) -> float | None:
        per_s = self.rates()[1]
        return 0.0 if not self.drain_left else (self.drain_left / per_s if per_s > 0 else None)

    def line(self) -> str:
        now = time.monotonic()
        elapsed = max(now - self.t0, 1e-9)
        recent = self.rates()[0]
        done_docs = self.start_docs + self.units_done // self.prompts
        total = None
        span = self.pulled_frac - self.start_frac
        if span > 0:
            total = round(self.start_docs + self.pulled / span * (1 - self.start_frac))
        pct = f" ({100 * done_docs / total:.0f}%)" if total else ""
        rej = sum(self.rejects.values())
        busy = "" if self.inflight is None else \
            f" | {in_flight_line(self.inflight.recent_mean(), self.inflight.target)}"
        head = "" if self.drain_left is None else \
            f"DRAINING ({plural(self.drain_left, 'request')} left, ETA {duration(self.drain_eta())}) | "
        eta = "" if self.drain_left is not None else f" | ETA {duration(self.eta(elapsed))}"
        return (f"{self.label}{head}{done_docs}/{total if total else '?'} docs{pct} | "
                f"committed {self.committed_docs} | {recent:.0f} tok/s{busy} | rejects {rej} | "
                f"elapsed {duration(elapsed)}{eta}")

    def maybe_print(self, force: bool = False):
        now = time.monotonic()
        if self.snapshot_path and now - self.last_snapshot >= SNAPSHOT_INTERVAL:
            self.write_snapshot("running")
        if not force and now - self.last_print < self.interval:
            return
        self.last_print = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
        else:
            self.stream.write("[finephrase] " + self.line() + "\n")
        self.stream.flush()

    def close(self, state: str = "stopped"):
        self.write_snapshot(state)
        self.maybe_print(force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
