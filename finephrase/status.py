"""`finephrase status DIR`: where a run stands, per task and in total, while it runs and after.

It only reads files in DIR (and, for exact totals, the parquet footers of the run's inputs), so it works from
any machine that sees the output folder, e.g. a SLURM login node while the tasks run on compute nodes:

- `DIR/manifest.json`: the run's settings (inputs, prompts, tasks) and its sessions (`gpus_per_task`);
- `DIR/.ledger/rank_RRRRR.jsonl`: the committed chunks (documents, rows, rejects, filtered, tokens, commit time)
  and whether the task finished; every count shown comes from here, so it matches the parquet files;
- `DIR/.ledger/rank_RRRRR.progress.json`: the task's snapshot (state, sessions with start and end times, ETA,
  estimated total), rewritten every few seconds while the task works.

Numbers (see docs/monitoring.md):

- documents done: committed documents (bad and filtered ones included); total: the row count of the task's
  parquet inputs from their footers with `--limit` applied per task (exact), the documents read by a finished
  task (exact), else the snapshot's extrapolation from the input fraction read (estimate);
- output tokens/s, lifetime: committed output tokens / seconds the task's sessions were active; recent: output
  tokens committed in the last N minutes / N minutes (up to now while running, up to the last commit otherwise);
- GPU-hours: sum over the tasks' sessions of duration x gpus_per_task (a running session counts until now, a
  session that stopped without a word until its last snapshot).
"""

from __future__ import annotations

import calendar
import os
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from finephrase.argtypes import non_negative_float, non_negative_int, positive_float
from finephrase.errors import UsageError
from finephrase.formatting import duration
from finephrase.layout import LEDGER_DIR, MANIFEST
from finephrase.occupancy import in_flight_line
from finephrase.progress import prefill_line

STALE_AFTER_S = 120.0  # a "running" snapshot older than this: the task is probably dead (killed, node lost)
DEFAULT_RECENT_MINUTES = 10.0
MAX_TASK_LINES = 20  # above this, per-task lines collapse into a summary

STATES = ("running", "stale", "failed", "interrupted", "pending", "finished")


# -- reading DIR ----------------------------------------------------------------------------------------------


MIX_FILE = "mix.json"  # finephrase.mix.MIX_FILE: a mix folder has it and no manifest.json
KINDS = ("run", "dedup", "mix", "unfinished dedup", "unfinished mix", "other")


def _check_folder(root: Path):
    if not root.exists():
        raise UsageError(f"{root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (expected a finephrase output folder)")


def folder_kind(run_dir: str | Path) -> str:
    """What an existing folder is, from its marker files (one of KINDS): a rephrase run or a dedup output
    (manifest.json, with a `dedup` key for the latter), a mix (mix.json), a dedup or mix under way (only its work
    folder, .dedup/ or .mix-tmp/), or something else. Reads at most the manifest."""
    root = Path(run_dir)
    _check_folder(root)
    if (root / MANIFEST).is_file():
        try:
            manifest = orjson.loads((root / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return "run"  # load_manifest says what is wrong with it
        return "dedup" if isinstance(manifest, dict) and "dedup" in manifest else "run"
    if (root / MIX_FILE).is_file():
        return "mix"
    if (root / ".dedup").is_dir():
        return "unfinished dedup"
    if (root / ".mix-tmp").is_dir():
        return "unfinished mix"
    return "other"


def describe_folder(root: Path, kind: str) -> str:
    """What a folder that is not a rephrase run is, as the start of a one-line error: "OUT is a mix (mix.json)"."""
    if kind == "dedup":
        source = (load_manifest(root).get("dedup") or {}).get("source")
        return f"{root} is a dedup output of {source or 'an unrecorded run'}"
    return {
        "mix": f"{root} is a mix ({MIX_FILE})",
        "unfinished dedup": f"{root} is an unfinished dedup output (.dedup/, no {MANIFEST} yet: rerun its "
                            f"`finephrase dedup` command to finish it)",
        "unfinished mix": f"{root} is an unfinished mix (.mix-tmp/, no {MIX_FILE} yet: rerun its `finephrase mix` "
                          f"command)",
    }.get(kind, f"{root} is not a finephrase run, dedup output or mix (no {MANIFEST} or {MIX_FILE})")


def refuse_folder(root: Path, kind: str, command: str, reads: str = "rephrase runs") -> UsageError:
    """The one-line error for `finephrase COMMAND DIR` on a folder it does not read (kind from folder_kind)."""
    what = describe_folder(root, kind)
    if kind == "mix":
        return UsageError(f"{what}: its shares are in {MIX_FILE}; `finephrase {command}` reads {reads}")
    if kind == "dedup":
        source = (load_manifest(root).get("dedup") or {}).get("source")
        return UsageError(f"{what}: `finephrase {command}` reads {reads}; `finephrase {command} {source}` for the "
                          f"run it came from, `finephrase status {root}` for the dedup")
    return UsageError(f"{what}; `finephrase {command}` reads {reads}")


def load_manifest(run_dir: str | Path) -> dict:
    """The manifest of a rephrase run or dedup output in run_dir; a one-line UsageError for anything else."""
    root = Path(run_dir)
    _check_folder(root)
    path = root / MANIFEST
    if not path.is_file():
        kind = folder_kind(root)
        if kind == "other":
            raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
        raise UsageError(f"{describe_folder(root, kind)}, not a finephrase run")
    try:
        manifest = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise UsageError(f"{path} cannot be read: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
            or "tasks" not in manifest["config"]:
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config)")
    return manifest


def _read_snapshot(root: Path, rank: int) -> dict | None:
    path = root / LEDGER_DIR / f"rank_{rank:05d}.progress.json"
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):  # absent (not started, or an older run)
        return None
    return data if isinstance(data, dict) else None


def _epoch(iso: str | None) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def _process_alive(session: dict) -> bool | None:
    """Whether the session's process still exists, if it ran on this machine; None if that cannot be told."""
    pid = session.get("pid")
    if not pid or session.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


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


# -- exact totals from parquet footers ------------------------------------------------------------------------


def input_totals(manifest: dict) -> tuple[dict[int, int] | None, str | None]:
    """{rank: documents the task will read} from the parquet footers of its shard, or (None, why not)."""
    from finephrase.pipeline.readers.resumable import ResumableReader
    from finephrase.run import input_listing

    cfg = manifest["config"]
    tasks = int(cfg["tasks"])
    try:
        reader = ResumableReader(cfg["inputs"], text_column=cfg.get("text_column", "text"),
                                 id_column=cfg.get("id_column", "id"), limit=cfg.get("limit", -1))
        files = reader.files
    except Exception as e:  # gone, moved, a relative path from another folder, no network: estimates then
        return None, f"inputs not readable from here ({e})"
    if cfg.get("input_files") and input_listing(files) != cfg["input_files"]:
        return None, "the inputs changed since the run started"
    if any(f.kind != "parquet" for f in files):
        return None, "not all inputs are parquet"

    def rows(f) -> int:
        import pyarrow.parquet as pq
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(f.url)
        with fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            counts = dict(zip([f.url for f in files], pool.map(rows, files)))
    except Exception as e:  # a footer that cannot be read: fall back to estimates
        return None, f"parquet footers not readable ({type(e).__name__}: {e})"
    limit = cfg.get("limit", -1)
    out = {}
    for rank in range(tasks):
        n = sum(s.rows if s.rows is not None else counts[s.url] for s in reader.shard(rank, tasks))
        out[rank] = min(n, limit) if limit is not None and limit >= 0 else n
    return out, None


# -- one task -------------------------------------------------------------------------------------------------


def _task(rank: int, ledger, snap: dict | None, manifest_sessions, default_gpus: int, gpus_override: int | None,
          exact_total: int | None, now: float, recent_s: float) -> dict:
    entries = ledger.entries if ledger else []
    finished = bool(ledger and ledger.finished)
    docs = sum(e.get("docs", 0) for e in entries)
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

    # state: the ledger's `finished` line is the authority; the snapshot tells the rest
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

    # sessions: active time and GPU time
    active_s = gpu_s = 0.0
    intervals = []
    gpu_counts: set[int] = set()
    sessions = (snap or {}).get("sessions") or []
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

    # totals
    if finished:
        total, kind = docs, "exact"
    elif exact_total is not None:
        total, kind = exact_total, "exact"
    elif snap and snap.get("total_docs_estimate") is not None:
        total, kind = max(int(snap["total_docs_estimate"]), docs), "estimate"
    else:
        total, kind = None, "unknown"

    # throughput
    tok_s = out_tok / active_s if active_s > 0 else None
    doc_rate = docs / active_s if active_s > 0 and docs else None
    commits = [e["committed_at"] for e in entries if e.get("committed_at")]
    recent = None
    if state == "running" or commits:
        end = now if state == "running" else max(commits)
        first = min((a for a, _ in intervals), default=min(commits) if commits else end)
        start = max(end - recent_s, first)
        if end - start > 0:
            recent = sum(e.get("output_tokens", 0) or 0 for e in entries
                         if start < (e.get("committed_at") or 0) <= end) / (end - start)

    # ETA: the task's own while it runs (aged by the time since it was written), else remaining / lifetime rate
    remaining = max(total - docs, 0) if total is not None else None
    eta = None
    if state == "finished":
        eta = 0.0
    elif state == "running" and snap.get("eta_s") is not None:
        eta = max(snap["eta_s"] - (now - updated_at), 0.0)
    elif remaining is not None and doc_rate:
        eta = remaining / doc_rate
    hosts = sorted({s.get("host") for s in sessions if s.get("host")})
    occupancy = (snap or {}).get("in_flight") or {}
    return {
        "rank": rank, "state": state, "snapshot_state": snap_state, "docs_done": docs, "docs_total": total,
        "docs_total_kind": kind,
        "docs_processed": max(docs, snap.get("done_docs") or 0) if state == "running" else docs,
        "rows": rows, "rejects": dict(sorted(rejects.items())), "rejects_total": sum(rejects.values()),
        "filtered": filtered, "filtered_total": sum(filtered.values()),
        "input_tokens": in_tok, "output_tokens": out_tok, "prompt_tokens": prompt_tok, "cached_tokens": cached_tok,
        "output_tok_s": tok_s, "output_tok_s_recent": recent, "docs_per_s": doc_rate, "eta_s": eta,
        "active_s": active_s, "gpu_hours": gpu_s / 3600, "sessions": len(sessions), "chunks": len(entries),
        "updated_at": updated_at, "last_commit_at": max(commits) if commits else None, "hosts": hosts,
        "gpus_per_task": sorted(gpu_counts), "_intervals": intervals,
        # requests in flight: the recent mean while it runs, else its last session's mean (finephrase/occupancy.py)
        "in_flight": occupancy.get("recent_mean" if state == "running" else "session_mean"),
        "in_flight_target": occupancy.get("target"),
        "stragglers": occupancy.get("stragglers", []) if state == "running" else [],
    }


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for a, b in sorted(intervals):
        if cur_end is None or a > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


# -- the whole run --------------------------------------------------------------------------------------------


def collect(run_dir: str | Path, *, gpus_per_task: int | None = None, price_per_gpu_hour: float | None = None,
            recent_minutes: float = DEFAULT_RECENT_MINUTES, exact_totals: bool = True, now: float | None = None,
            _totals_cache: dict | None = None) -> dict:
    """Everything `finephrase status` shows, as one dict (the `--json` output)."""
    from finephrase.ledger import all_ledgers

    root = Path(run_dir)
    manifest = load_manifest(root)
    if "dedup" in manifest:  # no ledgers of its own: its numbers are dedup_summary's
        raise UsageError(f"{describe_folder(root, 'dedup')}: it has no ledgers of its own; the rephrasing "
                         f"progress is the source run's (`finephrase status {manifest['dedup'].get('source')}`)")
    cfg = manifest["config"]
    tasks = int(cfg["tasks"])
    now = time.time() if now is None else now
    recent_s = recent_minutes * 60
    ledgers = all_ledgers(root)

    # exact totals (computed once per process: `--watch` reuses them)
    if _totals_cache is not None and "totals" in _totals_cache:
        exact, why_not = _totals_cache["totals"]
    elif exact_totals:
        exact, why_not = input_totals(manifest)
    else:
        exact, why_not = None, "not asked for (--no-exact-total)"
    if _totals_cache is not None:
        _totals_cache["totals"] = (exact, why_not)

    default_gpus = _default_gpus(manifest)
    msessions = sorted(((t, s["gpus_per_task"] if s.get("gpus_per_task") is not None else default_gpus, s.get("rank"))
                        for s in manifest.get("sessions", []) if (t := _epoch(s.get("started_at"))) is not None),
                       key=lambda x: x[0])
    per_task = [_task(r, ledgers.get(r), _read_snapshot(root, r), msessions, default_gpus, gpus_per_task,
                      (exact or {}).get(r), now, recent_s) for r in range(tasks)]

    # totals over tasks
    def add(key):
        out = {}
        for t in per_task:
            for k, v in t[key].items():
                out[k] = out.get(k, 0) + v
        return out

    states = {s: sum(1 for t in per_task if t["state"] == s) for s in STATES}
    states = {k: v for k, v in states.items() if v}
    if states.get("finished", 0) == tasks:
        run_state = "finished"
    else:
        run_state = next((s for s in ("running", "stale", "failed") if states.get(s)), None)
        if run_state is None:
            run_state = "pending" if states.get("pending", 0) == tasks else "interrupted"
    docs = sum(t["docs_done"] for t in per_task)
    if all(t["docs_total_kind"] == "exact" for t in per_task):
        total, kind = sum(t["docs_total"] for t in per_task), "exact"
    elif all(t["docs_total"] is not None for t in per_task):
        total, kind = sum(t["docs_total"] for t in per_task), "estimate"
    else:
        total, kind = None, "unknown"
    out_tok = sum(t["output_tokens"] for t in per_task)
    intervals = [iv for t in per_task for iv in t["_intervals"]]
    wall_s = _union_seconds(intervals)
    task_s = sum(t["active_s"] for t in per_task)
    gpu_hours = sum(t["gpu_hours"] for t in per_task)

    # recent rate of the whole run: commits of all tasks in the last N minutes
    commits = [(e.get("committed_at"), e.get("output_tokens", 0) or 0)
               for s in ledgers.values() for e in s.entries if e.get("committed_at")]
    recent = None
    if run_state == "running" or commits:
        end = now if run_state == "running" else max(c for c, _ in commits)
        first = min((a for a, _ in intervals), default=min((c for c, _ in commits), default=end))
        start = max(end - recent_s, first)
        if end - start > 0:
            recent = sum(n for c, n in commits if start < c <= end) / (end - start)

    # ETA: the slowest running task, or the remaining documents at the rate of the tasks now running
    remaining = max(total - docs, 0) if total is not None else None
    eta = None
    if run_state == "finished":
        eta = 0.0
    elif remaining is not None:
        running = [t for t in per_task if t["state"] == "running"]
        waiting = sum(max(t["docs_total"] - t["docs_done"], 0) for t in per_task
                      if t["state"] not in ("running", "finished"))  # tasks that need a free worker first
        etas = [t["eta_s"] for t in running if t["eta_s"] is not None]
        rate = sum(t["docs_per_s"] or 0 for t in running)
        if running and not waiting and len(etas) == len(running):
            eta = max(etas)  # every remaining document is in a running task
        elif running and rate > 0:
            eta = max(etas + [remaining / rate])
        elif wall_s > 0 and docs:
            eta = remaining / (docs / wall_s)  # if resumed with the same parallelism

    for t in per_task:
        del t["_intervals"]
    prompts = list(cfg.get("prompts", {}))
    report = {
        "dir": str(root),
        "state": run_state,
        "manifest_status": manifest.get("status"),
        "backend": cfg.get("backend"),
        "model": cfg.get("model"),
        "prompts": prompts,
        "tasks": tasks,
        "states": states,
        "now": now,
        "recent_minutes": recent_minutes,
        "stale_after_s": STALE_AFTER_S,
        "gpus_per_task": gpus_per_task,
        "price_per_gpu_hour": price_per_gpu_hour,
        "total": {
            "docs_done": docs,
            "docs_total": total,
            "docs_total_kind": kind,
            "docs_total_note": why_not if kind != "exact" else None,
            "docs_processed": sum(t["docs_processed"] for t in per_task),
            "progress": docs / total if total else (1.0 if run_state == "finished" else None),
            "rows": {p: add("rows").get(p, 0) for p in prompts} | add("rows"),
            "rejects": dict(sorted(add("rejects").items())),
            "rejects_total": sum(t["rejects_total"] for t in per_task),
            "filtered": add("filtered"),
            "filtered_total": sum(t["filtered_total"] for t in per_task),
            "input_tokens": sum(t["input_tokens"] for t in per_task),
            "prompt_tokens": sum(t["prompt_tokens"] for t in per_task),
            "cached_tokens": sum(t["cached_tokens"] for t in per_task),
            "output_tokens": out_tok,
            "output_tok_s": out_tok / wall_s if wall_s > 0 else None,
            "output_tok_s_recent": recent,
            "output_tok_s_per_task": out_tok / task_s if task_s > 0 else None,
            "output_tok_s_per_gpu": out_tok / (gpu_hours * 3600) if gpu_hours > 0 else None,
            "eta_s": eta,
            "wall_s": wall_s,
            "task_s": task_s,
            "gpu_hours": gpu_hours,
            "gpu_hours_per_billion_output_tokens": gpu_hours / (out_tok / 1e9) if out_tok else None,
            "cost": gpu_hours * price_per_gpu_hour if price_per_gpu_hour is not None else None,
        },
        "per_task": per_task,
    }
    return report


# -- a dedup output -------------------------------------------------------------------------------------------


def dedup_summary(run_dir: str | Path) -> dict:
    """What `finephrase status` shows for a dedup output (the `--json` output): its source run, scope,
    parameters, rows in / kept / removed per prompt and when it finished, from its manifest's `dedup` key."""
    root = Path(run_dir)
    manifest = load_manifest(root)
    dd = manifest.get("dedup") or {}
    source = dd.get("source")
    removed = {p: dict(v) if isinstance(v, dict) else {"exact": v} for p, v in (dd.get("removed") or {}).items()}
    return {
        "dir": str(root),
        "kind": "dedup",
        "source": source,
        "source_exists": bool(source) and (Path(source) / MANIFEST).is_file(),
        "scope": dd.get("scope"),
        "params": dd.get("params") or {},
        "prompts": list((manifest.get("config") or {}).get("prompts") or dd.get("kept") or {}),
        "input": dd.get("input") or {},
        "kept": dd.get("kept") or {},
        "removed": removed,
        "removed_total": {p: sum(v for v in r.values() if isinstance(v, int)) for p, r in removed.items()},
        "finished_at": dd.get("finished_at"),
        "source_status": f"finephrase status {source}" if source else None,
    }


def render_dedup(rep: dict) -> str:
    """The text of `finephrase status` for a dedup output (rep: dedup_summary's)."""
    prompts = rep["prompts"] or list(rep["kept"])
    gone = "" if rep["source_exists"] else " (that folder is no longer here)"
    lines = [f"dedup    {rep['dir']}: dedup output of {rep['source'] or 'an unrecorded run'}{gone}; scope "
             f"{rep['scope']}; finished {rep['finished_at'] or 'at an unrecorded time'}"]
    if rep["params"]:
        lines.append("params   " + ", ".join(f"{k} {v}" for k, v in rep["params"].items()))
    lines.append("kept     " + (", ".join(f"{p} {rep['kept'].get(p, 0):,} of {rep['input'].get(p, 0):,}"
                                          for p in prompts) or "none"))
    lines.append("removed  " + (", ".join(
        f"{p} {rep['removed_total'].get(p, 0):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in rep["removed"].get(p, {}).items()) + ")" for p in prompts) or "none"))
    if rep["source_status"]:
        lines.append(f"the rephrasing progress is the source run's: `{rep['source_status']}`")
    return "\n".join(lines)


# -- printing -------------------------------------------------------------------------------------------------


def _n(v) -> str:
    return "?" if v is None else f"{v:,}"


def _rate(v) -> str:
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def _gpu_h(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:,.1f}" if v >= 100 else (f"{v:.2f}" if v >= 1 else f"{v:.4f}")


def _done(docs, total, kind) -> str:
    if total is None:
        return f"{docs:,} / ?"
    pct = f" ({100 * docs / total:.1f}%)" if total else ""
    return f"{docs:,} / {'~' if kind == 'estimate' else ''}{total:,}{pct}"


def _ago(t: float | None, now: float) -> str:
    return "-" if t is None else f"{duration(max(now - t, 0))} ago"


def _busy(task: dict) -> str:
    """`1,987/2,048`: a task's requests in flight (recent mean while it runs) against its --max-concurrency."""
    if task.get("in_flight") is None or not task.get("in_flight_target"):
        return "-"
    return f"{task['in_flight']:,.0f}/{task['in_flight_target']:,}"


def _occupancy_lines(rep: dict) -> list[str]:
    """Requests in flight over the running tasks (or, when none runs, over their last sessions), and the
    oldest stragglers: requests far slower than the median, which keep their chunk from committing."""
    tasks = [x for x in rep["per_task"] if x.get("in_flight") is not None and x.get("in_flight_target")]
    running = [x for x in tasks if x["state"] == "running"]
    shown = running or tasks
    if not shown:
        return []
    mean, target = sum(x["in_flight"] for x in shown), sum(x["in_flight_target"] for x in shown)
    what = "recent mean of the running tasks" if running else "mean of each task's last session"
    out = [f"busy     {in_flight_line(mean, target)} ({what})"]
    late = sorted((s | {"rank": x["rank"]} for x in running for s in x["stragglers"]), key=lambda s: -s["seconds"])
    if late:
        out.append("stragglers " + ", ".join(f"{s['id']} ({s['prompt']}, task {s['rank']} chunk {s['chunk']}) "
                                            f"{duration(s['seconds'])}" for s in late[:5])
                   + (f", ... ({len(late)} named in the snapshots)" if len(late) > 5 else ""))
    return out


def render(rep: dict) -> str:
    t = rep["total"]
    now = rep["now"]
    lines = []
    lines.append(f"run      {rep['dir']}: {rep['state'].upper()}  ({rep['backend']}, {rep['model']}; prompts "
                 f"{', '.join(rep['prompts'])}; {rep['tasks']} task{'s' if rep['tasks'] != 1 else ''}: "
                 + ", ".join(f"{n} {s}" for s, n in rep["states"].items()) + ")")
    kind = t["docs_total_kind"] + (f": {t['docs_total_note']}" if t.get("docs_total_note") else "")
    eta = "-" if rep["state"] == "finished" else duration(t["eta_s"])
    if rep["state"] not in ("finished", "running") and t["eta_s"] is not None:
        eta += " if resumed"
    lines.append(f"docs     {_done(t['docs_done'], t['docs_total'], t['docs_total_kind'])} done, total {kind}"
                 f"; ETA {eta}")
    lines.append("rows     " + (", ".join(f"{p} {n:,}" for p, n in t["rows"].items()) or "none"))
    rej = ", ".join(f"{k} {v:,}" for k, v in sorted(t["rejects"].items(), key=lambda kv: -kv[1]))
    lines.append(f"rejects  {t['rejects_total']:,}" + (f" ({rej})" if rej else ""))
    shares = []
    for p, n in t["rows"].items():  # passed the quality gate, of the generations it checked
        checked = n + sum(v for k, v in t["rejects"].items() if k.startswith(f"{p}/"))
        shares.append(f"{p} {n / checked:.0%}" if checked else f"{p} -")
    if shares:
        lines.append("in format " + ", ".join(shares) + "  (docs/quality.md)")
    if t["filtered_total"]:
        lines.append(f"filtered {t['filtered_total']:,} (" + ", ".join(f"{k} {v:,}" for k, v in t["filtered"].items())
                     + ")")
    lines.append(f"tokens   input {t['input_tokens']:,}, output {t['output_tokens']:,}; output tok/s "
                 f"{_rate(t['output_tok_s'])} lifetime, {_rate(t['output_tok_s_recent'])} last "
                 f"{rep['recent_minutes']:g} min")
    if t["prompt_tokens"]:
        lines.append(f"prefill  {prefill_line(t['prompt_tokens'], t['cached_tokens'])}")
    lines += _occupancy_lines(rep)
    used = sorted({g for x in rep["per_task"] for g in x["gpus_per_task"]})
    if rep["gpus_per_task"] is not None:
        gpu_note = f"{rep['gpus_per_task']} GPU{'s' if rep['gpus_per_task'] != 1 else ''} per task, --gpus-per-task"
    elif used:
        gpu_note = f"{' or '.join(map(str, used))} GPU{'s' if used != [1] else ''} per task, from the manifest"
    else:
        gpu_note = "no session recorded yet"
    if used == [0] and rep["gpus_per_task"] is None:
        gpu_note += "; --gpus-per-task N to count them"
    per_b = t["gpu_hours_per_billion_output_tokens"]
    cost = (f"; cost ${t['cost']:,.2f} at ${rep['price_per_gpu_hour']:g}/GPU-hour" if t["cost"] is not None else "")
    lines.append(f"time     {duration(t['wall_s'])} wall, {duration(t['task_s'])} task time; GPU-hours "
                 f"{_gpu_h(t['gpu_hours'])} ({gpu_note})"
                 + (f", {per_b:,.1f} per billion output tokens" if per_b is not None and t["gpu_hours"] else "")
                 + (f", {_rate(t['output_tok_s_per_gpu'])} output tok/s per GPU" if t["output_tok_s_per_gpu"] else "")
                 + cost)
    tasks = rep["per_task"]
    lines.append("")
    header = (f"{'TASK':>5}  {'STATE':<11} {'DOCS DONE / TOTAL':<26} {'ROWS':>8} {'REJECTS':>7} {'OUT TOK':>11} "
              f"{'TOK/S':>7} {'RECENT':>7} {'IN FLIGHT':>11} {'ETA':>7} {'GPU-H':>8}  UPDATED")

    def line(x):
        return (f"{x['rank']:>5}  {x['state']:<11} {_done(x['docs_done'], x['docs_total'], x['docs_total_kind']):<26} "
                f"{sum(x['rows'].values()):>8,} {x['rejects_total']:>7,} {x['output_tokens']:>11,} "
                f"{_rate(x['output_tok_s']):>7} {_rate(x['output_tok_s_recent']):>7} {_busy(x):>11} "
                f"{('-' if x['state'] == 'finished' else duration(x['eta_s'])):>7} {_gpu_h(x['gpu_hours']):>8}  "
                f"{_ago(x['updated_at'] or x['last_commit_at'], now)}")

    if len(tasks) <= MAX_TASK_LINES:
        lines.append(header)
        lines.extend(line(x) for x in tasks)
    else:
        rates = [x["output_tok_s"] for x in tasks if x["output_tok_s"]]
        if rates:
            lines.append(f"tasks    output tok/s per task: min {_rate(min(rates))}, median "
                         f"{_rate(statistics.median(rates))}, max {_rate(max(rates))}")
        for s in STATES:
            ranks = [x["rank"] for x in tasks if x["state"] == s]
            if ranks:
                shown = ", ".join(map(str, ranks[:12])) + (f", ... (+{len(ranks) - 12})" if len(ranks) > 12 else "")
                lines.append(f"  {s:<11} {len(ranks):>6}: {shown}")
        attention = [x for x in tasks if x["state"] in ("stale", "failed", "interrupted")]
        if attention:
            lines.append("")
            lines.append(header)
            lines.extend(line(x) for x in attention[:MAX_TASK_LINES])
            if len(attention) > MAX_TASK_LINES:
                lines.append(f"  ... {len(attention) - MAX_TASK_LINES} more (--json lists every task)")
    if rep["states"].get("stale"):
        lines.append(f"stale: a task says running but has not written its snapshot for more than "
                     f"{duration(rep['stale_after_s'])} (killed, or its node is gone?): rerun the command to resume it")
    return "\n".join(lines)


# -- command --------------------------------------------------------------------------------------------------


def add_parser(sub):
    p = sub.add_parser(
        "status", help="where a run stands: documents done, rows, rejects, tokens/s, ETA, GPU-hours, cost",
        description="Show the progress of the run in DIR, per task and in total, from its manifest, ledgers and "
        "progress snapshots: documents done / total, rows and rejects, tokens, output tokens/s, ETA, state, "
        "GPU-hours and cost. Works while the run goes on (locally or on SLURM: it only reads DIR) and after it.")
    p.add_argument("run_dir", metavar="DIR", help="the run's output folder")
    p.add_argument("--watch", nargs="?", type=positive_float, const=10.0, default=None, metavar="SECONDS",
                   help="redraw every SECONDS (default 10) until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --watch: one per refresh)")
    p.add_argument("--price-per-gpu-hour", type=non_negative_float, metavar="USD",
                   help="price of one GPU-hour, for a cost estimate")
    p.add_argument("--gpus-per-task", type=non_negative_int, metavar="N",
                   help="GPUs each task holds (default: the manifest's, 1 for vllm and 0 otherwise)")
    p.add_argument("--recent-minutes", type=positive_float, default=DEFAULT_RECENT_MINUTES, metavar="N",
                   help="window of the recent output tokens/s (default 10)")
    p.add_argument("--no-exact-total", action="store_true",
                   help="do not read the inputs' parquet footers for exact totals (one request per file for "
                   "hf:// inputs); use the tasks' estimates")
    p.set_defaults(func=main)


def _print_once(text: str):
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `finephrase status DIR --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(args) -> int:
    kind = folder_kind(args.run_dir)
    if kind == "dedup":  # complete when it exists: nothing to watch
        rep = dedup_summary(args.run_dir)
        _print_once(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() if args.json else render_dedup(rep))
        return 0
    if kind != "run":
        raise refuse_folder(Path(args.run_dir), kind, "status", "rephrase runs and dedup outputs")
    cache: dict = {}

    def once() -> dict:
        return collect(args.run_dir, gpus_per_task=args.gpus_per_task, price_per_gpu_hour=args.price_per_gpu_hour,
                       recent_minutes=args.recent_minutes, exact_totals=not args.no_exact_total,
                       _totals_cache=cache)

    if args.watch is None:
        rep = once()
        _print_once(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() if args.json else render(rep))
        return 0
    tty = sys.stdout.isatty()
    try:
        while True:
            rep = once()
            if args.json:
                print(orjson.dumps(rep).decode(), flush=True)
            else:
                text = render(rep) + f"\n\n(every {args.watch:g}s, Ctrl-C to stop; {time.strftime('%H:%M:%S')})"
                sys.stdout.write(("\x1b[H\x1b[2J" if tty else "\n") + text + "\n")
                sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        if tty and not args.json:
            sys.stdout.write("\n")
        return 0
