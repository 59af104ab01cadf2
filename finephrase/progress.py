"""Progress of one task: documents done, generated tokens/s, rejects and ETA.

On a terminal (and a single worker) one line is redrawn in place; otherwise a log line is printed every
`interval` seconds, so SLURM logs and CI output stay readable.

With a `snapshot_path`, the same numbers are also written (atomically, every few seconds, and at the end) to a
small JSON file, `DIR/.ledger/rank_RRRRR.progress.json`, for `finephrase status` to read while the run goes on.
It keeps the start and end of every session of the task, so time spent (GPU-hours) adds up across restarts,
and with an `InFlight` the requests in flight (recent and session means, stragglers: finephrase/occupancy.py).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import Counter, deque
from pathlib import Path

import orjson

from finephrase.formatting import duration
from finephrase.layout import durable_write
from finephrase.occupancy import InFlight, in_flight_line

SNAPSHOT_INTERVAL = 5.0


def prefill_line(prompt_tokens: int, cached_tokens: int) -> str:
    """How much of the prompts' prefill the engine served from its prefix cache (one wording everywhere)."""
    return (f"{cached_tokens:,} of {prompt_tokens:,} prompt tokens served from the engine's prefix cache "
            f"({cached_tokens / prompt_tokens:.0%})")


class Progress:
    def __init__(self, rank: int, world_size: int, prompts: int, interval: float = 30.0, tty: bool | None = None,
                 stream=None, start_docs: int = 0, start_frac: float = 0.0, snapshot_path: str | Path | None = None,
                 inflight: InFlight | None = None):
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
        self.window = deque()  # (time, output_tokens) for the recent rate
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
            "session": {"output_tokens": self.output_tokens, "rejects": dict(self.rejects),
                        "units_done": self.units_done, "elapsed_s": elapsed},
            "eta_s": self.eta(elapsed) if state == "running" else 0.0,
            "in_flight": occupancy,
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

    def line(self) -> str:
        now = time.monotonic()
        elapsed = max(now - self.t0, 1e-9)
        self.window.append((now, self.output_tokens))
        while len(self.window) > 2 and now - self.window[0][0] > 60:
            self.window.popleft()
        t_old, tok_old = self.window[0]
        recent = (self.output_tokens - tok_old) / (now - t_old) if now - t_old > 1 else self.output_tokens / elapsed
        done_docs = self.start_docs + self.units_done // self.prompts
        total = None
        span = self.pulled_frac - self.start_frac
        if span > 0:
            total = round(self.start_docs + self.pulled / span * (1 - self.start_frac))
        pct = f" ({100 * done_docs / total:.0f}%)" if total else ""
        rej = sum(self.rejects.values())
        busy = "" if self.inflight is None else \
            f" | {in_flight_line(self.inflight.recent_mean(), self.inflight.target)}"
        return (f"{self.label}{done_docs}/{total if total else '?'} docs{pct} | committed {self.committed_docs} | "
                f"{recent:.0f} tok/s{busy} | rejects {rej} | elapsed {duration(elapsed)} | "
                f"ETA {duration(self.eta(elapsed))}")

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
