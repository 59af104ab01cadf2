"""Score tables spread over hash buckets of `source_id`, so that joining a row's score with its source document's
score holds one bucket at a time (`JoinScores`), never the whole run: each task writes its part of bucket b to
WORK/<kind>/<b>/<rank>.parquet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from finephrase.store.layout import StreamedParquet

def buckets_of(ids: list[str], n: int) -> np.ndarray:
    """The bucket of each id: a hash, the same in every task and on every machine."""
    if n == 1:
        return np.zeros(len(ids), np.int64)
    return np.fromiter((int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest())
                        % n for i in ids), np.int64, len(ids))


class BucketWriters:
    """One StreamedParquet per bucket this task writes to (opened on the first row for it)."""

    def __init__(self, folder: Path, rank: int, n: int, schema: pa.Schema):
        self.folder, self.rank, self.n, self.schema = Path(folder), rank, n, schema
        self.files: dict[int, StreamedParquet] = {}

    def write(self, table: pa.Table, key: str) -> None:
        """The rows of `table`, each into the bucket of its `key` column."""
        buckets = buckets_of(table.column(key).to_pylist(), self.n)
        order = np.argsort(buckets, kind="stable")
        table, buckets = table.take(pa.array(order)), buckets[order]
        bounds = np.flatnonzero(np.diff(buckets)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(buckets)]):
            if hi > lo:
                b = int(buckets[lo])
                if b not in self.files:
                    self.files[b] = StreamedParquet(self.folder / f"{b:05d}" / f"{self.rank:05d}.parquet", self.schema)
                self.files[b].write(table.slice(lo, hi - lo))

    def commit(self) -> None:
        for f in self.files.values():
            f.commit()

    def abort(self) -> None:
        for f in self.files.values():
            f.abort()
