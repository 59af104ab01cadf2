"""FinalizeDecontam: the last stage of a decontamination (one task): every input row must be exactly once in
OUT/<prompt>/ or OUT/removed/<prompt>/ (counted from the parquet footers; for an audit every row is kept and the
flagged copies are counted beside), the counts per benchmark are read from the removed (or flagged) rows, and
OUT/manifest.json is written last: the source's manifest with the kept `counts` and a `decontamination` record.
Its presence means the decontamination is complete. Reads footers and two small columns only."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from finephrase.contamination.index import INFO_FILE
from finephrase.errors import FinephraseError
from finephrase.pipeline.decontam.common import INDEX_DIR, WORK_DIR
from finephrase.store.datafiles import parquet_files, rows_in
from finephrase.store.layout import FLAGGED, REMOVED, read_manifest, write_manifest


def _reasons(folder: Path) -> tuple[Counter, Counter]:
    """(rows per reason, rows per reason whose source had an overlap too) of a removed or flagged folder."""
    rows, sourced = Counter(), Counter()
    for path in parquet_files(folder):
        t = pq.read_table(path, columns=["decontam_reason", "source_overlap"])
        rows.update(t.column("decontam_reason").to_pylist())
        had = t.filter(pc.fill_null(t.column("source_overlap"), False))
        sourced.update(had.column("decontam_reason").to_pylist())
    return rows, sourced


def _token_sums(out: Path, prompts: list[str]) -> dict[str, int]:
    totals = {"input_tokens": 0, "output_tokens": 0}
    for p in prompts:
        for path in parquet_files(out / p):
            t = pq.read_table(path, columns=list(totals))
            for c in totals:
                totals[c] += pc.sum(t.column(c)).as_py() or 0
    return totals


def decontam_record(out: Path, prompts: list[str], inputs: dict[str, int], audit_only: bool) -> dict:
    """The counts of the record: input, kept, removed (or flagged) per prompt and reason, source overlaps."""
    aside = FLAGGED if audit_only else REMOVED
    kept, found, sourced = {}, {}, {}
    for p in prompts:
        kept[p] = rows_in(parquet_files(out / p))
        rows, had = _reasons(out / aside / p)
        found[p], sourced[p] = dict(rows), dict(had)
        gone = 0 if audit_only else sum(rows.values())
        if kept[p] + gone != inputs[p]:
            raise FinephraseError(f"decontamination of prompt {p} does not add up: {inputs[p]} rows in, {kept[p]} "
                                  f"kept + {gone} removed; the output is incomplete (no manifest written): rerun "
                                  f"with --overwrite")
    return {"input": inputs, "kept": kept, "removed": {p: ({} if audit_only else found[p]) for p in prompts},
            "flagged": {p: (found[p] if audit_only else {}) for p in prompts}, "source_overlap": sourced}


class FinalizeDecontam(PipelineStep):
    type = "🧼 - DECONTAM"
    name = "🧾 decontamination finalize"

    def __init__(self, source: str, output: str, prompts: list[str], record: dict):
        """record: source, audit_only, check_sources, tasks (goes into the manifest's `decontamination`)."""
        super().__init__()
        self.source, self.output, self.prompts, self.record = str(source), str(output), list(prompts), dict(record)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        with self.track_time():
            finalize(Path(self.source), Path(self.output), self.prompts, self.record)


def finalize(source: Path, out: Path, prompts: list[str], record: dict) -> dict:
    inputs = {p: rows_in(parquet_files(source / p)) for p in prompts}
    counts = decontam_record(out, prompts, inputs, bool(record.get("audit_only")))
    index = orjson.loads((out / WORK_DIR / INDEX_DIR / INFO_FILE).read_bytes())
    manifest = read_manifest(source)
    manifest.pop("compacted", None)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["counts"] = {**(manifest.get("counts") or {}), "rows": counts["kept"], **_token_sums(out, prompts)}
    manifest["decontamination"] = {
        **record, "n": index["n"], "boilerplate_share": index["boilerplate_share"],
        "boilerplate_min": index["boilerplate_min"], "benchmarks": index["benchmarks"], **counts,
        "finished_at": now}
    manifest["updated_at"] = now
    write_manifest(out, manifest)
    return manifest
