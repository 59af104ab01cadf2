"""Timing of a run for `finephrase report`: task sessions, chunk intervals and throughput, from the ledgers, the
per-task progress snapshots (session start and end times) and the manifest's sessions."""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from finephrase.monitor.report.data import RunData

THROUGHPUT_BINS = 60


def _iso_to_epoch(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return float(calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@dataclass
class Timing:
    # rank -> per chunk (start, commit, output tokens of its rows, output tokens of its rejected generations)
    intervals: dict[int, list[tuple[float, float, int, int]]]
    untimed_tokens: int  # tokens of chunks whose start is unknown (no session information)
    commits: dict[int, list[float]]
    periods: list[tuple[float, float]]  # merged spans when at least one task was running
    sessions: int  # most sessions of one task
    session_starts: list[float]  # starts of second and later sessions (resumptions), all tasks
    rank_active: dict[int, float] = field(default_factory=dict)  # rank -> seconds its sessions lasted

    @property
    def active_s(self) -> float:
        return sum(b - a for a, b in self.periods)

    @property
    def timed_tokens(self) -> int:
        return sum(iv[2] for ivs in self.intervals.values() for iv in ivs)

    @property
    def timed_rejected_tokens(self) -> int:
        return sum(iv[3] for ivs in self.intervals.values() for iv in ivs)

    @property
    def lifetime(self) -> float:
        return self.timed_tokens / self.active_s if self.active_s > 0 else 0.0

    @property
    def first(self) -> float | None:
        return self.periods[0][0] if self.periods else None

    @property
    def idle_s(self) -> float:
        return (self.periods[-1][1] - self.periods[0][0] - self.active_s) if self.periods else 0.0


def _rank_sessions(root: Path, rank: int, manifest: dict, commits: list[float]) -> list[list[float | None]]:
    """[start, end] of each session of a task: from its progress snapshot, else from the manifest's sessions."""
    import orjson

    from finephrase.store.ledger import LEDGER_DIR

    spans: list[list[float | None]] = []
    snap = root / LEDGER_DIR / f"rank_{rank:05d}.progress.json"
    if snap.is_file():
        try:
            data = orjson.loads(snap.read_bytes())
            sessions = [s for s in data.get("sessions", []) if s.get("started_at")]
            for i, s in enumerate(sessions):
                end = s.get("ended_at")
                if end is None and i == len(sessions) - 1:
                    end = data.get("updated_at")
                spans.append([float(s["started_at"]), float(end) if end else None])
        except (OSError, orjson.JSONDecodeError, TypeError, ValueError):
            spans = []
    if not spans:  # older runs: the manifest's sessions (whole command, 1 s resolution)
        starts = [t for t in (_iso_to_epoch(s.get("started_at")) for s in manifest.get("sessions", [])) if t]
        if not starts and _iso_to_epoch(manifest.get("created_at")):  # oldest manifests: no sessions
            starts = [_iso_to_epoch(manifest["created_at"])]
        spans = [[t, None] for t in sorted(starts)]
        updated = _iso_to_epoch(manifest.get("updated_at"))
        if spans and updated and updated >= spans[-1][0]:
            spans[-1][1] = updated
    spans.sort(key=lambda s: s[0])
    for i, span in enumerate(spans):  # an open end: the last commit of the session; and cover every commit
        nxt = spans[i + 1][0] if i + 1 < len(spans) else math.inf
        inside = [c for c in commits if span[0] <= c < nxt]
        last = max(inside) if inside else span[0]
        span[1] = max(span[1] if span[1] is not None else last, last)
        if i + 1 < len(spans):
            span[1] = min(span[1], nxt)
    return spans


def _smooth(intervals: list[tuple], spans: list) -> list[tuple]:
    """Chunks are committed in order, so a chunk that completed while an earlier one was still open is committed
    right after it: a burst of commits a moment apart, which taken literally is a spike of tokens/s. Such a
    chunk was in flight alongside the earlier ones: spread it over the task's typical chunk duration instead
    (the median time between commits), not before the start of its session."""
    import statistics

    gaps = [t1 - t0 for t0, t1, *_ in intervals if t1 > t0]
    if len(gaps) < 3:
        return intervals
    typical = statistics.median(gaps)
    out = []
    for t0, t1, *rest in intervals:
        if t1 - t0 < typical:
            start = max((s[0] for s in spans if s[0] <= t1), default=t0)
            t0 = max(min(t0, t1 - typical), start)
        out.append((t0, t1, *rest))
    return out


def timing(run: RunData) -> Timing:
    intervals, commits, all_spans, untimed = {}, {}, [], 0
    sessions, resumptions, rank_active = 0, [], {}
    for rank, state in sorted(run.ledgers.items()):
        entries = sorted(state.entries, key=lambda e: e.get("committed_at", 0))
        times = [float(e["committed_at"]) for e in entries if e.get("committed_at")]
        spans = _rank_sessions(run.root, rank, run.manifest, times)
        sessions = max(sessions, len(spans))
        resumptions += [s[0] for s in spans[1:]]
        all_spans += [(s[0], s[1]) for s in spans]
        commits[rank] = times
        out, prev = [], None
        for e in entries:
            t1, tok = e.get("committed_at"), int(e.get("output_tokens", 0))
            rejected = sum(run.rejected_tokens.get(f, 0) for f in e.get("files", []))
            if not t1:
                untimed += tok
                continue
            start = max((s[0] for s in spans if s[0] <= t1), default=None)
            t0 = prev if prev is not None and (start is None or prev >= start) else start
            if t0 is None:
                untimed += tok
            else:
                out.append((t0, float(t1), tok, rejected))
            prev = float(t1)
        intervals[rank] = _smooth(out, spans)
        if not spans and out:
            all_spans.append((out[0][0], out[-1][1]))
        rank_active[rank] = sum(b - a for a, b in spans) if spans else (out[-1][1] - out[0][0] if out else 0.0)
    periods = []
    for a, b in sorted(all_spans):
        if periods and a <= periods[-1][1]:
            periods[-1] = (periods[-1][0], max(periods[-1][1], b))
        else:
            periods.append((a, b))
    return Timing(intervals, untimed, commits, periods, sessions, sorted(resumptions), rank_active)


def _spread(intervals, edges, key):
    """Tokens per bin: each chunk's tokens (`key(interval)`) spread evenly over its interval."""
    import numpy as np

    n = len(edges) - 1
    tokens = np.zeros(n)
    for iv in intervals:
        t0, t1, tok = iv[0], iv[1], key(iv)
        if not tok or t1 < edges[0] or t0 > edges[-1]:
            continue
        if t1 > t0:
            overlap = np.clip(np.minimum(t1, edges[1:]) - np.maximum(t0, edges[:-1]), 0, None)
            tokens += tok * overlap / (t1 - t0)
        else:
            tokens[min(np.searchsorted(edges, t1, side="right") - 1, n - 1)] += tok
    return tokens


def binned_rates(tm: Timing):
    """Per period of activity: bin edges, tokens/s of published rows per rank in each bin, and tokens/s of all
    generations (rows and rejected generations) of all ranks."""
    import numpy as np

    active = tm.active_s
    if active <= 0:
        return []
    width = active / THROUGHPUT_BINS
    every = [iv for ivs in tm.intervals.values() for iv in ivs]
    out = []
    for a, b in tm.periods:
        n = max(1, math.ceil((b - a) / width - 1e-9)) if b > a else 1
        edges = np.linspace(a, b if b > a else a + width, n + 1)
        widths = np.diff(edges)
        per_rank = {rank: _spread(ivs, edges, lambda iv: iv[2]) / widths for rank, ivs in tm.intervals.items()}
        out.append((edges, per_rank, _spread(every, edges, lambda iv: iv[2] + iv[3]) / widths))
    return out
