"""The stages of a mix and their commit points under OUT/.mix-tmp/, shared by one process and by the tasks of a
SLURM array (task r of n takes units[r::n] and a contiguous range of shards):

    request.json              the settings, the task count and a digest of the units (every task checks it)
    spill/UUUUUU.bin          per unit (one input file): each record's (tokens, characters), int32, on disk only
    count_RRRRR.jsonl         per task: one line per counted unit (its totals)            -> barrier 1
    plan.json                 the budgets and the selection rule per input (written once, by one task)
    buckets/BBBBBB/RRRRR.jsonl  per bucket and task: the selected rows (the bucketed shuffle)
    scatter_RRRRR.json/.npy   per task: rows and tokens per part, rows per bucket           -> barrier 2
    train/NNNNN.parquet       the shards; shards_RRRRR.json per task lists its shards       -> the task that
                                                                                              sees all of them
                                                                                              writes mix.json
A task that reaches a barrier before the other tasks passed it stops (exit 0) and says so: the same command
continues (a second array submitted with --dependency=afterany does it).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import orjson

from finephrase.errors import UsageError
from finephrase.mix.compute import fractions, plan_total, select
from finephrase.mix.config import TMP_DIR, TRAIN_DIR, MixConfig
from finephrase.mix.counting import count_unit
from finephrase.mix.sources import MixInput, Unit
from finephrase.mix.write import ShardWriter, write_range
from finephrase.store.layout import durable_write, output_lock

ROW_OVERHEAD = 120  # bytes a bucket line adds to a row's text (its key, label, id, counts)
PLAN_WAIT_S = 3600.0


class Work:
    def __init__(self, out: Path):
        self.dir = out / TMP_DIR

    def spill(self, unit: Unit) -> Path:
        return self.dir / "spill" / f"{unit.index:06d}.bin"

    def markers(self, pattern: str) -> list[Path]:
        return sorted(self.dir.glob(pattern))


def request_of(cfg: MixConfig, units: list[Unit], tasks: int) -> dict:
    keep = ("synthetic", "sources", "synthetic_share", "synthetic_weights", "source_weights", "tokenizer", "seed",
            "max_tokens", "allow_repeats", "allow_unfinished", "shard_rows", "text_column", "id_column",
            "bucket_bytes")
    digest = hashlib.sha256("\n".join(u.tag for u in units).encode()).hexdigest()[:16]
    return {**{k: getattr(cfg, k) for k in keep}, "tasks": tasks, "units": len(units), "units_digest": digest}


def open_work(out: Path, request: dict, single: bool) -> Work:
    """One process starts over; a task of an array joins the mix in progress (refused if its settings differ)."""
    work = Work(out)
    if single:
        shutil.rmtree(work.dir, ignore_errors=True)
        work.dir.mkdir(parents=True)
        durable_write(work.dir / "request.json", orjson.dumps(request | {"started": time.time()}))
        return work
    with output_lock(work.dir):
        path = work.dir / "request.json"
        if path.exists():
            have = orjson.loads(path.read_bytes())
            if {k: have.get(k) for k in request} != request:
                raise UsageError(f"{work.dir} holds another mix in progress (other settings, inputs or --tasks): "
                                 f"rerun it with its settings, or remove {work.dir}")
        else:
            durable_write(path, orjson.dumps(request | {"started": time.time()}))
    return work


def counted(work: Work) -> dict[int, dict]:
    """Every task's counted units: {unit index: its totals} (a line torn by a kill: counted again)."""
    done = {}
    for log in work.markers("count_*.jsonl"):
        for line in log.read_bytes().splitlines():
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            done[rec["unit"]] = rec
    return done


def count_stage(work: Work, units: list[Unit], rank: int, tasks: int, counter, say):
    (work.dir / "spill").mkdir(exist_ok=True)
    done = counted(work)
    mine = [u for u in units[rank::tasks] if u.index not in done]
    last = time.time()
    with open(work.dir / f"count_{rank:05d}.jsonl", "ab") as log:
        for n, u in enumerate(mine, 1):
            t0 = time.time()
            rec = {"unit": u.index, **count_unit(u, counter, work.spill(u)), "seconds": round(time.time() - t0, 3)}
            log.write(orjson.dumps(rec) + b"\n")
            log.flush()
            os.fsync(log.fileno())
            if tasks > 1 and time.time() - last > 10:
                last = time.time()
                say(f"counted {n} of this task's {len(mine)} files ({u.part.label} {u.file.relpath})")


def apply_counts(inputs: list[MixInput], units: list[Unit], done: dict[int, dict]):
    """Each part's totals from its units' count lines."""
    for inp in inputs:
        for p in inp.parts:
            p.rows = p.usable = p.tokens = p.chars = 0
            p.bad.clear()
    for u in units:
        rec, p = done[u.index], u.part
        p.rows += rec["rows"]
        p.usable += rec["usable"]
        p.tokens += rec["tokens"]
        p.chars += rec["chars"]
        p.bad.update(rec["bad"])


def _claim(path: Path, rank: int) -> bool:
    """Create `path` naming this task, atomically; True if this task holds it (now or from an earlier try)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            return orjson.loads(path.read_bytes()).get("rank") == rank
        except (OSError, orjson.JSONDecodeError):
            return False
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps({"rank": rank, "pid": os.getpid(), "time": time.time()}))
    return True


def plan_stage(work: Work, cfg: MixConfig, inputs: list[MixInput], units: list[Unit], rank: int, say) -> dict:
    """plan.json: made by the first task to claim it; the others wait for it (every task needs it)."""
    path = work.dir / "plan.json"
    if not path.exists() and _claim(work.dir / "plan.claim", rank):
        plan = make_plan(cfg, inputs, units, work, say)
        durable_write(path, orjson.dumps(plan))
        (work.dir / "plan.claim").unlink(missing_ok=True)
        return plan
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > PLAN_WAIT_S:
            raise UsageError(f"no plan after {PLAN_WAIT_S:.0f} s: the task planning it died? remove "
                             f"{work.dir / 'plan.claim'} and rerun")
        time.sleep(2)
    return orjson.loads(path.read_bytes())


def make_plan(cfg: MixConfig, inputs: list[MixInput], units: list[Unit], work: Work, say) -> dict:
    """Budgets (fractions of the total T) and each input's selection rule; the bucket count for the shuffle."""
    t0 = time.time()
    for inp in inputs:
        for p in inp.parts:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(p.bad.items()))
            bad = f", {sum(p.bad.values())} skipped ({why})" if p.bad else ""
            say(f"counted {p.label}: {p.usable:,} rows, {p.tokens:,} tokens{bad}")
            if p.rows and p.bad.get("missing_text", 0) == p.rows:
                raise UsageError(f"{p.label}: no column '{p.text_column}' in its records"
                                 + (" (pass --text-column)" if p.label.startswith("source:") else ""))
        if inp.available_tokens == 0:
            raise UsageError(f"{inp.kind} input {inp.path} has no rows with text")
    fracs = fractions(inputs, cfg.synthetic_share)
    total, limiting = plan_total(inputs, fracs, cfg.max_tokens, cfg.allow_repeats)
    sels = []
    for i, (inp, f) in enumerate(zip(inputs, fracs)):
        mine = [u for u in units if u.input == i]
        sels.append(select(inp, mine, work.spill, f * total, cfg.seed, cfg.allow_repeats))
    n_rows = sum(s["rows"] for s in sels)
    if n_rows == 0:
        raise UsageError("the mix would be empty (--max-tokens too small?)")
    est = sum(s["rows"] * (i.available_chars / max(i.available_rows, 1) + ROW_OVERHEAD)
              for s, i in zip(sels, inputs))
    bits = min(20, max(0, math.ceil(math.log2(max(est / cfg.bucket_bytes, 1)))))
    return {"fractions": fracs, "total": total, "limiting": limiting, "selections": sels, "n_rows": n_rows,
            "bits": bits, "seconds": round(time.time() - t0, 3)}


def bucket_sizes(work: Work, tasks: int, n_buckets: int) -> np.ndarray:
    sizes = np.zeros(n_buckets, dtype=np.int64)
    for r in range(tasks):
        sizes += np.load(work.dir / f"scatter_{r:05d}.npy")
    return sizes


def shard_stage(work: Work, plan: dict, labels: list[str], shard_rows: int, rank: int, tasks: int):
    """This task's contiguous range of shards, from the buckets that hold their rows; committed by
    shards_RRRRR.json."""
    marker = work.dir / f"shards_{rank:05d}.json"
    if marker.exists():
        return
    t0 = time.time()
    n_rows = plan["n_rows"]
    sizes = bucket_sizes(work, tasks, 1 << plan["bits"])
    if int(sizes.sum()) != n_rows:
        raise UsageError(f"internal error: the buckets hold {int(sizes.sum())} rows, the plan {n_rows}")
    n_shards = -(-n_rows // shard_rows)
    s0, s1 = rank * n_shards // tasks, (rank + 1) * n_shards // tasks
    writer = ShardWriter(work.dir / TRAIN_DIR, labels, n_rows, shard_rows)
    lo, hi = s0 * shard_rows, min(s1 * shard_rows, n_rows)
    if lo < hi:
        write_range(work.dir / "buckets", sizes, lo, hi, writer)
    durable_write(marker, orjson.dumps({"shards": writer.done, "seconds": round(time.time() - t0, 3)}))
