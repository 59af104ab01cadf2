"""The whole run for `finephrase status`: collect (everything the command shows, as the `--json` dict: the tasks
and their totals) and dedup_summary (the same for a dedup output, from its manifest)."""

from __future__ import annotations

import time
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.monitor.status.data import _epoch, _read_snapshot, input_totals
from finephrase.monitor.status.task import STALE_AFTER_S, STATES, _default_gpus, _task
from finephrase.serving.truncation import ledger_truncation
from finephrase.store.folders import derivation, describe_folder, folder_kind, load_manifest, source_run
from finephrase.store.layout import MANIFEST

DEFAULT_RECENT_MINUTES = 10.0


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


def _exact_totals(manifest: dict, exact_totals: bool, cache: dict | None) -> tuple[dict[int, int] | None, str | None]:
    """input_totals, computed once per process (`--watch` reuses them through `cache`), or why there are none."""
    if cache is not None and "totals" in cache:
        exact, why_not = cache["totals"]
    elif exact_totals:
        exact, why_not = input_totals(manifest)
    else:
        exact, why_not = None, "not asked for (--no-exact-total)"
    if cache is not None:
        cache["totals"] = (exact, why_not)
    return exact, why_not


def _manifest_sessions(manifest: dict, default_gpus: int) -> list[tuple[float, int, int | None]]:
    """(start, gpus_per_task, rank or None) of each start of the command recorded in the manifest, by start."""
    return sorted(((t, s["gpus_per_task"] if s.get("gpus_per_task") is not None else default_gpus, s.get("rank"))
                   for s in manifest.get("sessions", []) if (t := _epoch(s.get("started_at"))) is not None),
                  key=lambda x: x[0])


def _add(per_task: list[dict], key: str) -> dict:
    """The per-task dicts under `key`, summed over the tasks."""
    out = {}
    for t in per_task:
        for k, v in t[key].items():
            out[k] = out.get(k, 0) + v
    return out


def _run_state(per_task: list[dict], tasks: int) -> tuple[dict[str, int], str]:
    """({state: tasks in it}, the run's state)."""
    states = {s: sum(1 for t in per_task if t["state"] == s) for s in STATES}
    states = {k: v for k, v in states.items() if v}
    if states.get("finished", 0) == tasks:
        run_state = "finished"
    else:
        run_state = next((s for s in ("running", "stale", "failed") if states.get(s)), None)
        if run_state is None:
            run_state = "pending" if states.get("pending", 0) == tasks else "interrupted"
    return states, run_state


def _run_docs_total(per_task: list[dict]) -> tuple[int | None, str]:
    if all(t["docs_total_kind"] == "exact" for t in per_task):
        total, kind = sum(t["docs_total"] for t in per_task), "exact"
    elif all(t["docs_total"] is not None for t in per_task):
        total, kind = sum(t["docs_total"] for t in per_task), "estimate"
    else:
        total, kind = None, "unknown"
    return total, kind


def _run_recent(ledgers: dict, intervals: list, run_state: str, now: float, recent_s: float) -> float | None:
    """Recent rate of the whole run: output tokens of the commits of all tasks in the last N minutes."""
    commits = [(e.get("committed_at"), e.get("output_tokens", 0) or 0)
               for s in ledgers.values() for e in s.entries if e.get("committed_at")]
    recent = None
    if run_state == "running" or commits:
        end = now if run_state == "running" else max(c for c, _ in commits)
        first = min((a for a, _ in intervals), default=min((c for c, _ in commits), default=end))
        start = max(end - recent_s, first)
        if end - start > 0:
            recent = sum(n for c, n in commits if start < c <= end) / (end - start)
    return recent


def _run_eta(per_task: list[dict], run_state: str, total: int | None, docs: int, wall_s: float) -> float | None:
    """The slowest running task, or the remaining documents at the rate of the tasks now running."""
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
    return eta


def _run_total(per_task: list[dict], ledgers: dict, prompts: list[str], run_state: str, why_not: str | None,
               now: float, recent_s: float, price_per_gpu_hour: float | None) -> dict:
    """The `total` of collect's dict: the tasks' numbers over the whole run."""
    docs = sum(t["docs_done"] for t in per_task)
    total, kind = _run_docs_total(per_task)
    out_tok = sum(t["output_tokens"] for t in per_task)
    intervals = [iv for t in per_task for iv in t["_intervals"]]
    wall_s = _union_seconds(intervals)
    task_s = sum(t["active_s"] for t in per_task)
    gpu_hours = sum(t["gpu_hours"] for t in per_task)
    recent = _run_recent(ledgers, intervals, run_state, now, recent_s)
    eta = _run_eta(per_task, run_state, total, docs, wall_s)
    return {
        "docs_done": docs,
        "docs_total": total,
        "docs_total_kind": kind,
        "docs_total_note": why_not if kind != "exact" else None,
        "docs_processed": sum(t["docs_processed"] for t in per_task),
        "progress": docs / total if total else (1.0 if run_state == "finished" else None),
        "rows": {p: _add(per_task, "rows").get(p, 0) for p in prompts} | _add(per_task, "rows"),
        "rejects": dict(sorted(_add(per_task, "rejects").items())),
        "rejects_total": sum(t["rejects_total"] for t in per_task),
        "filtered": _add(per_task, "filtered"),
        "filtered_total": sum(t["filtered_total"] for t in per_task),
        "input_tokens": sum(t["input_tokens"] for t in per_task),
        "prompt_tokens": sum(t["prompt_tokens"] for t in per_task),
        "cached_tokens": sum(t["cached_tokens"] for t in per_task),
        "retries": _add(per_task, "retries"),  # regeneration: attempts discarded, per prompt
        "published_attempts": _add(per_task, "published_attempts"),
        "retry_tokens": sum(t["retry_tokens"] for t in per_task),
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
        **ledger_truncation(ledgers),  # documents cut to fit (none in older ledgers)
    }


def collect(run_dir: str | Path, *, gpus_per_task: int | None = None, price_per_gpu_hour: float | None = None,
            recent_minutes: float = DEFAULT_RECENT_MINUTES, exact_totals: bool = True, now: float | None = None,
            _totals_cache: dict | None = None) -> dict:
    """Everything `finephrase status` shows, as one dict (the `--json` output)."""
    from finephrase.store.ledger import all_ledgers

    root = Path(run_dir)
    manifest = load_manifest(root)
    if derivation(manifest):  # no ledgers of its own: its numbers are dedup_summary's
        raise UsageError(f"{describe_folder(root, folder_kind(root))}: it has no ledgers of its own; the "
                         f"rephrasing progress is the source run's (`finephrase status {source_run(manifest)}`)")
    cfg = manifest["config"]
    tasks = int(cfg["tasks"])
    now = time.time() if now is None else now
    recent_s = recent_minutes * 60
    ledgers = all_ledgers(root)
    exact, why_not = _exact_totals(manifest, exact_totals, _totals_cache)
    default_gpus = _default_gpus(manifest)
    msessions = _manifest_sessions(manifest, default_gpus)
    per_task = [_task(r, ledgers.get(r), _read_snapshot(root, r), msessions, default_gpus, gpus_per_task,
                      (exact or {}).get(r), now, recent_s) for r in range(tasks)]
    states, run_state = _run_state(per_task, tasks)
    prompts = list(cfg.get("prompts", {}))
    total = _run_total(per_task, ledgers, prompts, run_state, why_not, now, recent_s, price_per_gpu_hour)
    for t in per_task:
        del t["_intervals"]
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
        "total": total,
        "per_task": per_task,
    }
    return report


# -- a dedup output -------------------------------------------------------------------------------------------


def _decontam_params(dd: dict) -> dict:
    return {"benchmarks": ", ".join(b["name"] for b in dd.get("benchmarks") or []), "n_grams": dd.get("n"),
            "audit_only": bool(dd.get("audit_only")), "sources_checked": bool(dd.get("check_sources"))}


def dedup_summary(run_dir: str | Path) -> dict:
    """What `finephrase status` shows for a dedup or decontaminated output (the `--json` output): its source,
    scope, parameters, rows in / kept / removed (or flagged) per prompt and when it finished, from its manifest's
    `dedup` or `decontamination` key."""
    root = Path(run_dir)
    manifest = load_manifest(root)
    key, dd = derivation(manifest) or ("dedup", {})
    source = dd.get("source")
    removed = {p: dict(v) if isinstance(v, dict) else {"exact": v} for p, v in (dd.get("removed") or {}).items()}
    if key == "decontamination" and dd.get("audit_only"):
        removed = {p: dict(v) for p, v in (dd.get("flagged") or {}).items()}
    return {
        "dir": str(root),
        "kind": "dedup" if key == "dedup" else "decontaminated",
        "audit_only": bool(dd.get("audit_only")),
        "source": source,
        "source_exists": bool(source) and (Path(source) / MANIFEST).is_file(),
        "scope": dd.get("scope"),
        "params": dd.get("params") or (_decontam_params(dd) if key == "decontamination" else {}),
        "prompts": list((manifest.get("config") or {}).get("prompts") or dd.get("kept") or {}),
        "input": dd.get("input") or {},
        "kept": dd.get("kept") or {},
        "removed": removed,
        "removed_total": {p: sum(v for v in r.values() if isinstance(v, int)) for p, r in removed.items()},
        "finished_at": dd.get("finished_at"),
        "source_status": f"finephrase status {source}" if source else None,
    }
