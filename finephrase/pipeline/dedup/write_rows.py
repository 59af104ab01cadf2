"""RowsWriter: Documents read by RowsReader back into rows of exactly `OUTPUT_SCHEMA` (zstd parquet), by default
one file per task and prompt, `OUTPUT/<prompt>/RRRRR.parquet`, so the output loads like a run's."""

from __future__ import annotations

from datatrove.pipeline.writers.parquet import ParquetWriter

from finephrase.pipeline.dedup.common import row_from_doc
from finephrase.store.schema import OUTPUT_SCHEMA


def _adapter(self, doc) -> dict:
    return row_from_doc(doc)


class RowsWriter(ParquetWriter):
    name = "📒 finephrase rows"

    def __init__(self, output_folder, output_filename: str = "${prompt}/${rank}.parquet"):
        super().__init__(output_folder, output_filename, compression="zstd", adapter=_adapter,
                         schema=OUTPUT_SCHEMA, max_file_size=-1)
