"""KeptIndex: passes every document on, and notes (key, id, prompt) of the kept ones that have duplicates, so
`Finalize` can fill `duplicate_of` of the removed rows.

Put it right after the dedup filter: after ExactDedupFilter (reason `exact`) a kept document with duplicates
has `duplicate_count` > 0 and its key is the hash of its normalized text; after MinhashDedupFilter with
`load_cluster_ids=True` (reason `near`) it has a `minhash_cluster_id` other than -1 (every kept document of a
cluster is the cluster's representative: the others were removed)."""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.writers.parquet import ParquetWriter

from finephrase.pipeline.dedup.common import KEPT_INDEX_SCHEMA, REASONS, exact_key, near_key


def _key(doc, reason: str) -> str | None:
    if reason == "exact":
        return exact_key(doc.text) if doc.metadata.get("duplicate_count", 0) > 0 else None
    return near_key(doc)


def _adapter(self, doc) -> dict:
    return {"dup_key": _key(doc, self.reason), "id": doc.id, "prompt": doc.metadata.get("prompt")}


class KeptIndex(ParquetWriter):
    name = "🔖 kept-row index"

    def __init__(self, output_folder, reason: str):
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}: {reason}")
        super().__init__(output_folder, "${rank}.parquet", compression="zstd", adapter=_adapter,
                         schema=KEPT_INDEX_SCHEMA, max_file_size=-1)
        self.reason = reason

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self:
            for doc in data:
                if _key(doc, self.reason) is not None:
                    with self.track_time():
                        self.write(doc, rank)
                yield doc
