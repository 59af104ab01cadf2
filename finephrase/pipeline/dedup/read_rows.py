"""RowsReader: the rows of a run's prompt folders (RUN/<prompt>/*.parquet), one Document per row.

A ParquetReader that lists only the given prompts' folders (never rejects/, filtered/, removed/ or hidden
files) and keeps every column: `text` and `id` as the Document's, the others in `metadata` exactly as they are,
so `RowsWriter` writes the same row back. Files are sorted and dealt out as datatrove does (`files[rank::tasks]`);
the order is the same on every read, which the dedup filters rely on.
"""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.readers.parquet import ParquetReader

from finephrase.pipeline.dedup.common import doc_from_row


class RowsReader(ParquetReader):
    name = "📒 finephrase rows"

    def __init__(self, data_folder, prompts: list[str] | None = None, batch_size: int = 1000):
        """data_folder: a run (or dedup output) folder with `prompts`; or, with prompts=None, a flat folder of
        parquet files (the intermediate copy of the exact stage)."""
        super().__init__(data_folder, adapter=doc_from_row, batch_size=batch_size, recursive=False,
                         glob_pattern="*.parquet")
        self.prompts = None if prompts is None else list(prompts)

    def _list(self, sub: str = "") -> list[str]:
        if sub and not self.data_folder.isdir(sub):
            return []
        files = self.data_folder.list_files(subdirectory=sub, recursive=False, glob_pattern="*.parquet")
        return sorted(f for f in files if not f.rsplit("/", 1)[-1].startswith("."))

    def files(self) -> list[str]:
        if self.prompts is None:
            return self._list()
        return [f for p in self.prompts for f in self._list(p)]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for doc in self.read_files_shard(self.files()[rank::world_size]):
            self.update_doc_stats(doc)
            yield doc
