"""Ids spread over hash buckets on disk, so that a folder-wide check (a dedup output, a compacted run) holds one
bucket's ids at a time instead of all of them.

Each stream ("kept", "removed", "source", ...) of ids is split by a hash of the id into `n` buckets; a bucket's ids
of every stream land in its own files (JSON arrays, one per flushed batch) under a temporary folder. The check
then takes the buckets one by one: an id is always in the same bucket, whatever stream it came from. With one
bucket (a small folder) nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson

BUCKET_IDS = 500_000  # about this many ids per bucket (a Counter of them: ~65 MB)
FLUSH_IDS = 50_000  # ids held per stream before they go to disk


def bucket_count(total_ids: int) -> int:
    return max(1, -(-total_ids // BUCKET_IDS))


def _bucket(i: str, n: int) -> int:
    return int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest()) % n


def _writable(where: str | Path | None) -> str | None:
    """`where` (created), or None (the system's temporary folder) when it cannot be written."""
    if where is None:
        return None
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
        return str(where)
    except OSError:
        return None


class IdBuckets:
    """Streams of ids, hash-partitioned into `n` buckets (on disk when n > 1). Use as a context manager."""

    def __init__(self, n: int, where: str | Path | None = None):
        self.n = n
        self.dir = Path(tempfile.mkdtemp(prefix="ids-", dir=_writable(where))) if n > 1 else None
        self.held: dict[str, list[list[str]]] = {}  # stream -> per bucket, ids not yet on disk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, stream: str, ids) -> None:
        held = self.held.setdefault(stream, [[] for _ in range(self.n)])
        if self.n == 1:
            held[0].extend(ids)
            return
        for i in ids:
            held[_bucket(i, self.n)].append(i)
        if sum(map(len, held)) >= FLUSH_IDS:
            self._flush(stream)

    def _flush(self, stream: str) -> None:
        for b, ids in enumerate(self.held.get(stream, [])):
            if ids:
                with open(self.dir / f"{b:05d}.{stream.replace('/', '%')}.jsonl", "ab") as f:
                    f.write(orjson.dumps(ids) + b"\n")
                ids.clear()

    def buckets(self, streams: list[str]) -> Iterator[dict[str, Counter]]:
        """Bucket by bucket: {stream: Counter of its ids in this bucket} for each of `streams`."""
        if self.n == 1:
            yield {s: Counter(self.held.get(s, [[]])[0]) for s in streams}
            return
        for s in streams:
            self._flush(s)
        for b in range(self.n):
            out = {}
            for s in streams:
                c = Counter()
                path = self.dir / f"{b:05d}.{s.replace('/', '%')}.jsonl"
                if path.exists():
                    with open(path, "rb") as f:
                        for line in f:
                            c.update(orjson.loads(line))
                out[s] = c
            yield out


def column_batches(path: Path, column: str) -> Iterator[list]:
    """One parquet column, a batch at a time (never the whole file's values at once)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(columns=[column], batch_size=65_536):
        yield batch.column(0).to_pylist()
