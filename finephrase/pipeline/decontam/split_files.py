"""DecontaminateFiles: each data file of a folder, checked against the benchmark index and split in two: the rows
without a benchmark n-gram to OUT/<prompt>/<file>, the others to OUT/removed/<prompt>/<file> with their reason
(`--audit-only`: every row to OUT/<prompt>/, copies of the overlapping ones to OUT/flagged/<prompt>/).

A task takes files `rank::world_size` of the prompts' files (sorted) and reads each in batches: memory is the
index plus one batch, whatever the file or run. Every row goes to exactly one of the two files (checked by the
finalize step and `finephrase verify`). Files are renamed into place when complete; a task that dies is rerun
from its first file and writes the same files again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from finephrase.contamination.index import Match, NgramIndex
from finephrase.pipeline.decontam.common import (
    INDEX_DIR,
    REMOVED_SCHEMA,
    SOURCES_DIR,
    WORK_DIR,
    reason,
)
from finephrase.process.cpus import cpus_allowed
from finephrase.store.datafiles import parquet_files, prompt_files
from finephrase.store.layout import FLAGGED, REMOVED, StreamedParquet
from finephrase.store.schema import OUTPUT_SCHEMA


def load_source_overlaps(folder: Path) -> set[str]:
    """The ids of the source documents that had a benchmark n-gram (the sources stage's files)."""
    ids: set[str] = set()
    for path in parquet_files(folder):
        ids.update(pq.read_table(path, columns=["source_id"]).column("source_id").to_pylist())
    return ids


def _overlapping(batch: pa.Table, found: list[Match], sources: set[str] | None) -> pa.Table:
    rows = batch.take(pa.array([m.row for m in found], pa.int64()))
    overlap = pa.nulls(len(found), pa.bool_()) if sources is None else \
        pa.array([s in sources for s in rows.column("source_id").to_pylist()], pa.bool_())
    return (rows.append_column("decontam_reason", pa.array([reason(m.benchmark) for m in found], pa.string()))
            .append_column("matched_ngram", pa.array([m.ngram for m in found], pa.string()))
            .append_column("benchmark_item", pa.array([m.item for m in found], pa.int64()))
            .append_column("source_overlap", overlap))


class DecontaminateFiles(PipelineStep):
    type = "🧼 - DECONTAM"
    name = "🔎 benchmark n-grams"

    def __init__(self, source: str, output: str, prompts: list[str], audit_only: bool = False,
                 check_sources: bool = False, batch_rows: int = 10_000, threads: int | None = None):
        """source: a finished run or dedup output; output: OUT (its work folder OUT/.decontam holds the index
        and, with check_sources, the sources stage's files); threads: for the n-gram check (default: the CPUs
        this process may use)."""
        super().__init__()
        self.source, self.output, self.prompts = str(source), str(output), list(prompts)
        self.audit_only, self.check_sources = audit_only, check_sources
        self.batch_rows, self.threads = batch_rows, threads

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        work = Path(self.output) / WORK_DIR
        index = NgramIndex.load(work / INDEX_DIR)
        sources = load_source_overlaps(work / SOURCES_DIR) if self.check_sources else None
        threads = self.threads or cpus_allowed()
        for prompt, path in prompt_files(Path(self.source), self.prompts)[rank::world_size]:
            with self.track_time():
                kept, gone = self.split_file(prompt, path, index, sources, threads)
            self.stat_update("rows", value=kept if self.audit_only else kept + gone)
            self.stat_update("flagged" if self.audit_only else "removed", value=gone)

    def split_file(self, prompt: str, path: Path, index: NgramIndex, sources: set[str] | None,
                   threads: int) -> tuple[int, int]:
        """One data file into its two outputs; (rows kept, rows removed or flagged)."""
        out = Path(self.output)
        kept = StreamedParquet(out / prompt / path.name, OUTPUT_SCHEMA)
        aside = StreamedParquet(out / (FLAGGED if self.audit_only else REMOVED) / prompt / path.name, REMOVED_SCHEMA)
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=self.batch_rows):
                table = pa.Table.from_batches([batch])
                found = index.find(table.column("text").combine_chunks(), threads)
                aside.write(_overlapping(table, found, sources))
                if not self.audit_only and found:
                    mask = np.ones(table.num_rows, bool)
                    mask[[m.row for m in found]] = False
                    table = table.filter(pa.array(mask))
                kept.write(table)
        except BaseException:
            kept.abort()
            aside.abort()
            raise
        return kept.commit(), aside.commit()
