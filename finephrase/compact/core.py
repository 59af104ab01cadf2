"""`compact`: rewrite a finished run's (or dedup output's) committed chunk files into Hub-sized shards, exactly
once, by one process or by the tasks of a SLURM array.

    OUT/<folder>/train-XXXXX-of-YYYYY.parquet     the shards (plan.py says which source files each one holds)
    OUT/manifest.json                             the source's manifest, plus `compacted`: source, targets, and
                                                  per folder the shards, rows and bytes (written last)
    OUT/.compact/plan.json                        the plan (written once, by the first task, under a lock)
    OUT/.compact/done_RRRRR.jsonl                 per task: one line per finished shard (the commit point)

Task r of n writes the shards `plan[r::n]`. A shard is committed by its done line, after its file was fsynced
and renamed into place; a rerun (or a requeued task) skips committed shards and rewrites the others, so nothing
is written twice and nothing is lost. The task that commits the last shard checks the totals against the
source's counts and writes the manifest.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from finephrase.compact.plan import Shard, make_plan, plan_digest, source_folders
from finephrase.compact.write import write_shard
from finephrase.errors import UsageError
from finephrase.formatting import duration, human_bytes
from finephrase.store.compacted import COMPACT_DIR, PLAN, done_shards, record_done
from finephrase.store.datafiles import num_rows, parquet_files
from finephrase.store.folders import derivation, source_run
from finephrase.store.hub_limits import folder_of
from finephrase.store.layout import FILTERED, REJECTS, durable_write, output_lock, write_manifest
from finephrase.store.ledger import TaskLock, all_ledgers


def source_files(root: Path, manifest: dict, prompts: list[str]) -> dict[str, list[tuple[str, int, int]]]:
    """Each data folder's files as (path relative to root, rows, bytes): a run's from its ledgers (the committed
    files only, rows as committed), a dedup output's from its folders (rows from the footers)."""
    folders = {rel: [] for rel in source_folders(root, manifest, prompts)}
    if derivation(manifest):
        for rel in folders:
            folders[rel] = [(f.relative_to(root).as_posix(), num_rows(f), f.stat().st_size)
                            for f in parquet_files(root / rel)]
        folders.update(_run_extras(manifest, prompts, folders))
        return folders
    for state in all_ledgers(root).values():
        for e in state.entries:
            for f in e.get("files", []):
                folders.setdefault(folder_of(f), []).append((f, _committed_rows(e, folder_of(f)),
                                                             (root / f).stat().st_size))
    return {rel: sorted(files) for rel, files in folders.items()}


def _run_extras(manifest: dict, prompts: list[str], have: dict) -> dict[str, list[tuple[str, int, int]]]:
    """A dedup or decontaminated output holds no rejects or filtered lists: those of the run it came from (absolute
    paths), while that run is still there, so a compacted output publishes them too."""
    run = Path(source_run(manifest) or "")
    if not run.is_dir() or not (run / "manifest.json").is_file():
        return {}
    out = {}
    for rel in [f"{REJECTS}/{p}" for p in prompts] + [FILTERED]:
        if rel not in have and (run / rel).is_dir():
            out[rel] = [(str(f.resolve()), num_rows(f), f.stat().st_size) for f in parquet_files(run / rel)]
    return {rel: files for rel, files in out.items() if files}


def _committed_rows(entry: dict, rel: str) -> int:
    if rel == FILTERED:
        return sum(entry.get("filtered", {}).values())
    if rel.startswith(f"{REJECTS}/"):
        p = rel.split("/", 1)[1]
        return sum(v for k, v in entry.get("rejects", {}).items() if k.split("/", 1)[0] == p)
    return entry.get("rows", {}).get(rel, 0)


def load_or_make_plan(source: Path, out: Path, manifest: dict, prompts: list[str], target_bytes: int | None,
                      target_rows: int | None) -> tuple[list[Shard], dict]:
    """The plan in OUT/.compact/plan.json, made now by the first task to get here; another source or other
    targets than the plan's are refused."""
    if out.exists() and any(p.name != COMPACT_DIR for p in out.iterdir()) and not (out / COMPACT_DIR).is_dir():
        raise UsageError(f"{out} exists and is not a compaction: choose another --output")
    with output_lock(out / COMPACT_DIR):
        path = out / COMPACT_DIR / PLAN
        want = {"source": str(source.resolve()), "target_bytes": target_bytes, "target_rows": target_rows}
        if path.is_file():
            plan = orjson.loads(path.read_bytes())
            have = {k: plan.get(k) for k in want}
            if have != want:
                raise UsageError(f"{out} holds a compaction of {have['source']} (target {have['target_bytes']} "
                                 f"bytes, {have['target_rows']} rows): use another --output, or the same settings")
        else:
            shards = make_plan(source, source_files(source, manifest, prompts), target_bytes, target_rows)
            plan = {**want, "digest": plan_digest(shards), "shards": [s.to_dict() for s in shards]}
            durable_write(path, orjson.dumps(plan))
    shards = [Shard(**{k: v for k, v in d.items() if k != "path"}) for d in plan["shards"]]
    return shards, plan


def compact(source: Path, out: Path, manifest: dict, prompts: list[str], target_bytes: int | None,
            target_rows: int | None, rank: int = 0, tasks: int = 1, quiet: bool = False) -> dict:
    """Write this task's shards; the task that finds every shard committed writes OUT's manifest. Returns
    {"written", "skipped", "left", "manifest" (None until the compaction is complete)}."""
    shards, plan = load_or_make_plan(source, out, manifest, prompts, target_bytes, target_rows)
    mine = shards[rank::tasks]
    with TaskLock(out, rank, folder=COMPACT_DIR):
        done = done_shards(out)
        todo = [s for s in mine if s.path not in done]
        _say(quiet, f"compact: task {rank} of {tasks}: {len(todo)} of its {len(mine)} shards to write "
                    f"({len(mine) - len(todo)} done before), {len(shards)} shards in all -> {out}")
        progress = _Progress(todo, quiet)
        for shard in todo:
            record = write_shard(source, out, shard.path, shard.files, shard.rows)
            record_done(out, rank, record)
            progress.done(shard, record)
    with output_lock(out / COMPACT_DIR):
        done = done_shards(out)
        left = [s for s in shards if s.path not in done]
        result = {"written": len(todo), "skipped": len(mine) - len(todo), "left": len(left), "manifest": None}
        if not left:
            result["manifest"] = finalize(source, out, manifest, plan, shards, done)
    return result


def finalize(source: Path, out: Path, manifest: dict, plan: dict, shards: list[Shard], done: dict) -> dict:
    """Check every folder's rows against the source's counts, then write OUT's manifest."""
    folders: dict[str, dict] = {}
    for s in shards:
        f = folders.setdefault(s.folder, {"shards": 0, "rows": 0, "bytes": 0})
        f["shards"] += 1
        f["rows"] += done[s.path]["rows"]
        f["bytes"] += done[s.path]["bytes"]
    _check_totals(manifest, folders)
    compacted = {"source": str(source.resolve()), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "target_bytes": plan["target_bytes"], "target_rows": plan["target_rows"], "plan": plan["digest"],
                 "folders": folders}
    result = {**manifest, "compacted": compacted}
    write_manifest(out, result)
    return result


def _check_totals(manifest: dict, folders: dict[str, dict]):
    counts = manifest.get("counts") or {}
    want = dict(counts.get("rows") or {})  # a dedup output's: the kept rows
    for key, n in (counts.get("rejects") or {}).items():
        rel = f"{REJECTS}/{key.split('/', 1)[0]}"
        want[rel] = want.get(rel, 0) + n
    if counts.get("filtered"):
        want[FILTERED] = sum(counts["filtered"].values())
    if derivation(manifest):  # its rejects and filtered come from the run, only while the run is there
        want = {rel: n for rel, n in want.items() if rel in folders or not rel.startswith((REJECTS, FILTERED))}
    for rel, n in want.items():
        got = folders.get(rel, {}).get("rows", 0)
        if got != n:
            raise UsageError(f"compaction of {rel}/ holds {got} rows, the source's manifest counts {n}: the source "
                             f"changed while it was compacted, or is damaged (`finephrase verify` it)")


class _Progress:
    """One line per shard at most every 10 s: shards, bytes, MB/s and ETA."""

    def __init__(self, todo: list[Shard], quiet: bool):
        self.total = sum(s.bytes for s in todo)
        self.count = len(todo)
        self.bytes = self.n = 0
        self.t0 = self.last = time.monotonic()
        self.quiet = quiet

    def done(self, shard: Shard, record: dict):
        self.n += 1
        self.bytes += shard.bytes
        now = time.monotonic()
        if self.quiet or (now - self.last < 10 and self.n < self.count):
            return
        self.last = now
        rate = self.bytes / max(now - self.t0, 1e-9)
        eta = (self.total - self.bytes) / rate if rate else None
        _say(False, f"compact: {self.n}/{self.count} shards, {human_bytes(self.bytes)} of {human_bytes(self.total)} "
                    f"read ({human_bytes(rate)}/s) | last {record['path']} ({record['rows']:,} rows) | "
                    f"ETA {duration(eta)}")


def _say(quiet: bool, msg: str):
    if not quiet:
        print(msg, file=sys.stderr, flush=True)
