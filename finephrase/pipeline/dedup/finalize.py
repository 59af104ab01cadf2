"""Finalize: the last stage of `finephrase dedup` (one task, after every chain of dedup stages).

1. the removed rows kept aside by RemovedWriter go to `OUTPUT/removed/<prompt>/<reason>_RRRRR.parquet`, their
   key turned into `duplicate_of` (the id of the kept row they duplicate) with the KeptIndex notes;
2. every input row must now be exactly once in `OUTPUT/<prompt>/` or `OUTPUT/removed/<prompt>/` (counted from
   the parquet footers): if not, it stops with an error and writes no manifest;
3. `OUTPUT/manifest.json` is written last: the run's manifest with `counts` of the kept rows and a `dedup` key.
   Its presence means the dedup is complete;
4. the large intermediate files (signatures, the copy of the rows after exact dedup) are deleted.

It only reads the removed rows, the small indexes and parquet footers, so it is quick. Run again, it does the
same again (files are replaced, never appended to).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from finephrase.errors import FinephraseError
from finephrase.pipeline.dedup.common import REASONS, REMOVED_SCHEMA
from finephrase.store.datafiles import parquet_files
from finephrase.store.layout import durable_write_table, read_manifest, write_manifest

WORK_DIR = ".dedup"
BULKY = ("exact_sigs", "exact_kept", "minhash_sigs")  # deleted at the end: as large as the data, or larger


def count_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in parquet_files(folder))


def _sum_columns(folder: Path, columns: list[str]) -> dict[str, int]:
    """The sum of each of `columns` over the parquet files of `folder` (nulls count 0), file by file, in Arrow."""
    import pyarrow.compute as pc

    totals = dict.fromkeys(columns, 0)
    for p in parquet_files(folder):
        t = pq.read_table(p, columns=columns)
        for c in columns:
            totals[c] += (pc.sum(t.column(c)).as_py() or 0)
    return totals


def _load_index(folder: Path) -> dict[str, str]:
    index = {}
    for p in parquet_files(folder):
        t = pq.read_table(p, columns=["dup_key", "id"])
        index.update(zip(t.column("dup_key").to_pylist(), t.column("id").to_pylist()))
    return index




class Finalize(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🧾 dedup finalize"

    def __init__(self, run_dir: str, output: str, prompts: list[str], units: list, record: dict):
        """run_dir: the run deduplicated; output: OUTPUT; prompts: all the run's prompts; units: (work folder
        under OUTPUT/.dedup, its prompts, ...) of each chain of stages, e.g. `DedupPlan.units()`; record: source,
        scope, params, tasks (goes into the manifest's `dedup`)."""
        super().__init__()
        self.run_dir = str(run_dir)
        self.output = str(output)
        self.prompts = list(prompts)
        self.units = [(str(u[0]), list(u[1])) for u in units]
        self.record = dict(record)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        with self.track_time():
            finalize(Path(self.run_dir), Path(self.output), self.prompts, self.units, self.record)


def finalize(run: Path, out: Path, prompts: list[str], units: list[tuple[str, list[str]]], record: dict) -> dict:
    removed = {p: Counter({r: 0 for r in REASONS}) for p in prompts}
    written: set[Path] = set()
    for unit, _ in units:
        work = out / WORK_DIR / unit
        for reason in REASONS:
            index = _load_index(work / "kept" / reason)
            staged = work / "removed" / reason
            for src in sorted(staged.glob("*/*.parquet")) if staged.is_dir() else []:
                if src.name.startswith("."):
                    continue
                prompt = src.parent.name
                t = pq.read_table(src)
                if not t.num_rows:  # never publish an empty file (`datasets` refuses them)
                    continue
                keys = t.column("dup_key").to_pylist()
                t = t.drop_columns(["dup_key"]).append_column(
                    "duplicate_of", pa.array([index.get(k) if k is not None else None for k in keys], pa.string()))
                dest = out / "removed" / prompt / f"{reason}_{src.stem}.parquet"
                durable_write_table(t.select(REMOVED_SCHEMA.names).cast(REMOVED_SCHEMA), dest)
                written.add(dest)
                removed.setdefault(prompt, Counter({r: 0 for r in REASONS}))[reason] += t.num_rows
    for p in prompts:  # a file of an earlier attempt that this one did not write
        for stale in parquet_files(out / "removed" / p):
            if stale not in written:
                stale.unlink()

    inputs = {p: count_rows(run / p) for p in prompts}
    kept = {p: count_rows(out / p) for p in prompts}
    for p in prompts:
        gone = sum(removed[p].values())
        if kept[p] + gone != inputs[p]:
            raise FinephraseError(
                f"dedup of prompt {p} does not add up: {inputs[p]} rows in, {kept[p]} kept + {gone} removed; "
                f"the output is incomplete (no manifest written): rerun with --overwrite")

    manifest = read_manifest(run)
    manifest.pop("compacted", None)  # a compacted run's files are its shards; this folder's are dedup's own
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    counts = dict(manifest.get("counts") or {})
    counts["rows"] = kept
    tokens = [_sum_columns(out / p, ["input_tokens", "output_tokens"]) for p in prompts]
    counts["input_tokens"] = sum(t["input_tokens"] for t in tokens)
    counts["output_tokens"] = sum(t["output_tokens"] for t in tokens)
    manifest["counts"] = counts
    manifest["dedup"] = {
        **record,
        "input": inputs,
        "kept": kept,
        "removed": {p: dict(removed[p]) for p in prompts},
        "finished_at": now,
    }
    manifest["updated_at"] = now
    write_manifest(out, manifest)
    for unit, _ in units:
        for name in BULKY:
            shutil.rmtree(out / WORK_DIR / unit / name, ignore_errors=True)
    return manifest

