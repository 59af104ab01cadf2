"""One task of a run for `finephrase status`: its counts from its ledger, its state, sessions (active time and
GPU time), total, throughput and ETA, from its ledger and progress snapshot."""

from __future__ import annotations

from finephrase.monitor.status.data import _process_alive

STALE_AFTER_S = 120.0  # a "running" snapshot older than this: the task is probably dead (killed, node lost)

STATES = ("running", "stale", "failed", "interrupted", "pending", "finished")


def _default_gpus(manifest: dict) -> int:
    return 1 if manifest["config"].get("backend") == "vllm" else 0


def _gpus_for(rank: int, started_at: float, manifest_sessions: list[tuple[float, int, int | None]],
              default: int) -> int:
    """gpus_per_task of the manifest session (a start of the command) that this task session belongs to: the
    last one of this task (or of all tasks) started before it (the manifest stores whole seconds, rounded down)."""
    mine = [(t, g) for t, g, r in manifest_sessions if r is None or r == rank]
    gpus = None
    for t, g in mine:
        if t <= started_at + 1.0:
            gpus = g
    if gpus is None:
        gpus = mine[0][1] if mine else default
    return gpus


def _sum_entries(entries: list[dict]) -> tuple[dict, dict, dict, int, int, int, int]:
    """Rows, rejects and filtered documents per key, and input, output, prompt and cached tokens, over the
    ledger's committed chunks."""
    rows, rejects, filtered = {}, {}, {}
    in_tok = out_tok = prompt_tok = cached_tok = 0
    for e in entries:
        for k, v in (e.get("rows") or {}).items():
            rows[k] = rows.get(k, 0) + v
        for k, v in (e.get("rejects") or {}).items():
            rejects[k] = rejects.get(k, 0) + v
        for k, v in (e.get("filtered") or {}).items():
            filtered[k] = filtered.get(k, 0) + v
        in_tok += e.get("input_tokens", 0) or 0
        out_tok += e.get("output_tokens", 0) or 0
        prompt_tok += e.get("prompt_tokens", 0) or 0
        cached_tok += e.get("cached_tokens", 0) or 0
    return rows, rejects, filtered, in_tok, out_tok, prompt_tok, cached_tok


def _regeneration(entries: list[dict]) -> dict:
    """Attempts discarded for a new one and published rows' attempts, per prompt, and the discarded tokens."""
    retries, attempts, tokens = {}, {}, 0
    for e in entries:
        for k, v in (e.get("retries") or {}).items():
            retries[k] = retries.get(k, 0) + v
        for k, v in (e.get("published_attempts") or {}).items():
            attempts[k] = attempts.get(k, 0) + v
        tokens += e.get("retry_tokens", 0) or 0
    return {"retries": retries, "published_attempts": attempts, "retry_tokens": tokens}


def _task_state(finished: bool, snap: dict | None, entries: list[dict], now: float) -> str:
    """One of STATES: the ledger's `finished` line is the authority; the snapshot tells the rest."""
    snap_state = snap.get("state") if snap else None
    updated_at = snap.get("updated_at") if snap else None
    if finished:
        state = "finished"
    elif snap_state == "running":
        alive = _process_alive((snap.get("sessions") or [{}])[-1])
        if alive is False:
            state = "interrupted"  # killed on this very machine: no need to wait until it looks stale
        elif alive is None and (updated_at is None or now - updated_at > STALE_AFTER_S):
            state = "stale"  # on another machine (SLURM): silent for too long
        else:
            state = "running"
    elif snap_state == "failed":
        state = "failed"
    elif snap or entries:  # interrupted, drained (SLURM's warning signal), or "finished" in the snapshot but
        # no finished line (killed in between): resumable, not finished
        state = "interrupted"
    else:
        state = "pending"
    return state


def _session_times(rank: int, sessions: list[dict], state: str, updated_at: float | None, manifest_sessions,
                   default_gpus: int, gpus_override: int | None, now: float):
    """The task's sessions: (active seconds, GPU seconds, [(start, end)], {gpus_per_task seen})."""
    active_s = gpu_s = 0.0
    intervals = []
    gpu_counts: set[int] = set()
    for i, s in enumerate(sessions):
        start = s.get("started_at")
        if start is None:
            continue
        end = s.get("ended_at")
        if end is None:
            last = i == len(sessions) - 1
            end = now if last and state == "running" else (updated_at if last and updated_at else start)
        dur = max(end - start, 0.0)
        gpus = gpus_override if gpus_override is not None else _gpus_for(rank, start, manifest_sessions, default_gpus)
        active_s += dur
        gpu_s += dur * gpus
        gpu_counts.add(gpus)
        intervals.append((start, end))
    return active_s, gpu_s, intervals, gpu_counts


def _task_total(finished: bool, docs: int, exact_total: int | None, snap: dict | None) -> tuple[int | None, str]:
    """(documents the task will read, "exact" / "estimate" / "unknown")."""
    if finished:
        total, kind = docs, "exact"
    elif exact_total is not None:
        total, kind = exact_total, "exact"
    elif snap and snap.get("total_docs_estimate") is not None:
        total, kind = max(int(snap["total_docs_estimate"]), docs), "estimate"
    else:
        total, kind = None, "unknown"
    return total, kind


def _task_recent(entries: list[dict], commits: list[float], intervals: list, state: str, now: float,
                 recent_s: float) -> float | None:
    """Output tokens/s committed in the last recent_s seconds (up to now while running, else the last commit)."""
    recent = None
    if state == "running" or commits:
        end = now if state == "running" else max(commits)
        first = min((a for a, _ in intervals), default=min(commits) if commits else end)
        start = max(end - recent_s, first)
        if end - start > 0:
            recent = sum(e.get("output_tokens", 0) or 0 for e in entries
                         if start < (e.get("committed_at") or 0) <= end) / (end - start)
    return recent


def _task_eta(state: str, snap: dict | None, updated_at: float | None, remaining: int | None,
              doc_rate: float | None, now: float) -> float | None:
    """The task's own ETA while it runs (aged by the time since it was written), else remaining / lifetime rate."""
    eta = None
    if state == "finished":
        eta = 0.0
    elif state == "running" and snap.get("eta_s") is not None:
        eta = max(snap["eta_s"] - (now - updated_at), 0.0)
    elif remaining is not None and doc_rate:
        eta = remaining / doc_rate
    return eta


def _task(rank: int, ledger, snap: dict | None, manifest_sessions, default_gpus: int, gpus_override: int | None,
          exact_total: int | None, now: float, recent_s: float) -> dict:
    entries = ledger.entries if ledger else []
    finished = bool(ledger and ledger.finished)
    docs = sum(e.get("docs", 0) for e in entries)
    rows, rejects, filtered, in_tok, out_tok, prompt_tok, cached_tok = _sum_entries(entries)
    snap_state = snap.get("state") if snap else None
    updated_at = snap.get("updated_at") if snap else None
    state = _task_state(finished, snap, entries, now)
    sessions = (snap or {}).get("sessions") or []
    active_s, gpu_s, intervals, gpu_counts = _session_times(rank, sessions, state, updated_at, manifest_sessions,
                                                            default_gpus, gpus_override, now)
    total, kind = _task_total(finished, docs, exact_total, snap)

    # throughput
    tok_s = out_tok / active_s if active_s > 0 else None
    doc_rate = docs / active_s if active_s > 0 and docs else None
    commits = [e["committed_at"] for e in entries if e.get("committed_at")]
    recent = _task_recent(entries, commits, intervals, state, now, recent_s)

    remaining = max(total - docs, 0) if total is not None else None
    eta = _task_eta(state, snap, updated_at, remaining, doc_rate, now)
    hosts = sorted({s.get("host") for s in sessions if s.get("host")})
    occupancy = (snap or {}).get("in_flight") or {}
    return {
        "rank": rank, "state": state, "snapshot_state": snap_state, "docs_done": docs, "docs_total": total,
        "docs_total_kind": kind,
        "docs_processed": max(docs, snap.get("done_docs") or 0) if state == "running" else docs,
        "rows": rows, "rejects": dict(sorted(rejects.items())), "rejects_total": sum(rejects.values()),
        "filtered": filtered, "filtered_total": sum(filtered.values()),
        "input_tokens": in_tok, "output_tokens": out_tok, "prompt_tokens": prompt_tok, "cached_tokens": cached_tok,
        **_regeneration(entries),
        "output_tok_s": tok_s, "output_tok_s_recent": recent, "docs_per_s": doc_rate, "eta_s": eta,
        "active_s": active_s, "gpu_hours": gpu_s / 3600, "sessions": len(sessions), "chunks": len(entries),
        "updated_at": updated_at, "last_commit_at": max(commits) if commits else None, "hosts": hosts,
        "gpus_per_task": sorted(gpu_counts), "_intervals": intervals,
        # requests in flight: the recent mean while it runs, else its last session's mean
        # (finephrase/monitor/occupancy.py)
        "in_flight": occupancy.get("recent_mean" if state == "running" else "session_mean"),
        "in_flight_target": occupancy.get("target"),
        "stragglers": occupancy.get("stragglers", []) if state == "running" else [],
        # a drain (SIGTERM, SLURM's warning signal) under way: the requests it still waits for (ETA: the drain's)
        "draining": ((snap or {}).get("draining") or {}).get("requests_left") if state == "running" else None,
    }
