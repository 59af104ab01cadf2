"""RemovedWriter: the `exclusion_writer` of ExactDedupFilter / MinhashDedupFilter. Keeps each removed row aside
with its `dedup_reason` and the key that later finds the kept row it duplicates (`Finalize` turns the key into
`duplicate_of`): for `exact`, a hash of the normalized text; for `near`, the MinHash cluster id."""

from __future__ import annotations

from datatrove.pipeline.writers.parquet import ParquetWriter

from finephrase.pipeline.dedup.common import REASONS, STAGED_REMOVED_SCHEMA, exact_key, near_key, row_from_doc


def _adapter(self, doc) -> dict:
    key = exact_key(doc.text) if self.reason == "exact" else near_key(doc)
    return {**row_from_doc(doc), "dedup_reason": self.reason, "dup_key": key}


class RemovedWriter(ParquetWriter):
    name = "🗑️ removed rows"

    def __init__(self, output_folder, reason: str, output_filename: str = "${prompt}/${rank}.parquet"):
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}: {reason}")
        super().__init__(output_folder, output_filename, compression="zstd", adapter=_adapter,
                         schema=STAGED_REMOVED_SCHEMA, max_file_size=-1)
        self.reason = reason
