"""FindInSources: which source documents of a run already contain a benchmark n-gram (after the run's own
reader, on its inputs), so that a removed row says whether the model brought the overlap or the page had it.
Writes OUT/.decontam/sources/RRRRR.parquet (only the documents that overlap: small), memory bounded by a batch."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from finephrase.contamination.index import NgramIndex
from finephrase.pipeline.decontam.common import SOURCE_SCHEMA
from finephrase.process.cpus import cpus_allowed
from finephrase.store.layout import StreamedParquet


class FindInSources(PipelineStep):
    type = "🧼 - DECONTAM"
    name = "🔎 benchmark n-grams in sources"

    def __init__(self, index_folder: str, output_folder: str, batch_docs: int = 10_000):
        super().__init__()
        self.index_folder, self.output_folder, self.batch_docs = str(index_folder), str(output_folder), batch_docs

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        index = NgramIndex.load(self.index_folder)
        out = StreamedParquet(Path(self.output_folder) / f"{rank:05d}.parquet", SOURCE_SCHEMA)
        batch: list = []
        try:
            for doc in data or ():
                batch.append(doc)
                if len(batch) >= self.batch_docs:
                    self._check(index, batch, out)
                    batch = []
            self._check(index, batch, out)
        except BaseException:
            out.abort()
            raise
        out.commit()

    def _check(self, index: NgramIndex, docs: list, out: StreamedParquet) -> None:
        if not docs:
            return
        found = index.find([d.text for d in docs], cpus_allowed())
        self.stat_update("documents", value=len(docs))
        self.stat_update("overlapping", value=len(found))
        out.write(pa.table({"source_id": [docs[m.row].id for m in found], "benchmark": [m.benchmark for m in found],
                            "benchmark_item": [m.item for m in found], "matched_ngram": [m.ngram for m in found]},
                           schema=SOURCE_SCHEMA))
