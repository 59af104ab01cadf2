"""Writing a mix: the output folder's checks; the selected rows appended to bucket files under OUT/.mix-tmp/ by
the top bits of their order key (a bucketed shuffle on disk); each bucket read and ordered in memory, one at a
time, and streamed into OUT/train/NNNNN.parquet; then swapped in with OUT/mix.json last."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from finephrase.errors import UsageError
from finephrase.mix.config import MIX_FILE, TMP_DIR, TRAIN_DIR
from finephrase.store.layout import durable_write, fsync_dir

MIX_SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("tokens", pa.int64(), nullable=False),
])


class _Buckets:
    """Selected rows, appended to OUT/.mix-tmp/buckets/BBBBBB/RRRRR.jsonl (one file per bucket and task) in
    batches of about `flush_bytes`: memory holds one batch, never the mix."""

    def __init__(self, folder: Path, rank: int, n_buckets: int, flush_bytes: int):
        self.folder, self.rank = folder, rank
        self.buf: dict[int, list[bytes]] = {}
        self.size = 0
        self.flush_bytes = flush_bytes
        self.counts = np.zeros(n_buckets, dtype=np.int64)

    def add(self, bucket: int, line: bytes):
        self.buf.setdefault(bucket, []).append(line)
        self.counts[bucket] += 1
        self.size += len(line)
        if self.size >= self.flush_bytes:
            self.flush()

    def flush(self):
        for bucket, lines in sorted(self.buf.items()):
            d = self.folder / f"{bucket:06d}"
            d.mkdir(parents=True, exist_ok=True)
            with open(d / f"{self.rank:05d}.jsonl", "ab") as f:
                f.write(b"".join(lines))
        self.buf.clear()
        self.size = 0


def read_bucket(folder: Path, bucket: int) -> list:
    """A bucket's rows (all tasks' files), in mix order: by order key, then unit, row and pass."""
    rows = []
    d = folder / f"{bucket:06d}"
    for path in sorted(d.glob("*.jsonl")) if d.is_dir() else []:
        with open(path, "rb") as f:
            rows += [orjson.loads(line) for line in f]
    rows.sort(key=lambda r: (r[0], r[5], r[6], r[7]))
    return rows


def _check_output(out: Path):
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} exists and is not a folder")
    if (out / "manifest.json").exists():
        raise UsageError(f"output {out} is a rephrasing run: write the mix to another folder")


def _prepare_output(out: Path):
    _check_output(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / TMP_DIR, ignore_errors=True)  # left by an interrupted mix


class ShardWriter:
    """Rows in mix order into train_tmp/NNNNN.parquet (`shard_rows` each, the last fewer), row group by row group:
    memory holds one row group. `add(position, row)` takes rows of consecutive positions."""

    def __init__(self, train_tmp: Path, labels: list[str], n_rows: int, shard_rows: int):
        self.dir, self.labels, self.n_rows, self.shard_rows = train_tmp, labels, n_rows, shard_rows
        self.group = min(shard_rows, 10_000)
        train_tmp.mkdir(parents=True, exist_ok=True)
        self.rows: list = []
        self.writer = None
        self.shard = -1
        self.in_shard = 0
        self.done: list[dict] = []

    def add(self, pos: int, row: list):
        s = pos // self.shard_rows
        if s != self.shard:
            if self.writer is not None:
                raise UsageError(f"internal error: shard {self.shard} left unfinished")
            self.shard, self.in_shard = s, 0
            self.writer = pq.ParquetWriter(self._path(s, tmp=True), MIX_SCHEMA, compression="zstd")
        if pos != s * self.shard_rows + self.in_shard + len(self.rows):
            raise UsageError(f"internal error: position {pos} out of order in shard {s}")
        self.rows.append(row)
        if self.in_shard + len(self.rows) == min(self.shard_rows, self.n_rows - s * self.shard_rows):
            self._close()
        elif len(self.rows) >= self.group:
            self._write_group()

    def _path(self, s: int, tmp: bool = False) -> Path:
        return self.dir / (f".{s:05d}.parquet.tmp" if tmp else f"{s:05d}.parquet")

    def _write_group(self):
        rows = self.rows
        table = pa.table({"text": [r[4] for r in rows], "source": [self.labels[r[1]] for r in rows],
                          "id": [r[2] for r in rows], "tokens": [r[3] for r in rows]}, schema=MIX_SCHEMA)
        self.writer.write_table(table, row_group_size=self.group)
        self.in_shard += len(rows)
        self.rows = []

    def _close(self):
        if self.rows:
            self._write_group()
        self.writer.close()
        self.writer = None
        os.replace(self._path(self.shard, tmp=True), self._path(self.shard))
        self.done.append({"shard": self.shard, "file": f"{TRAIN_DIR}/{self.shard:05d}.parquet",
                          "rows": self.in_shard})


def write_range(buckets: Path, sizes: np.ndarray, lo: int, hi: int, writer: ShardWriter):
    """The rows at mix positions [lo, hi): each bucket that holds some is read and ordered, one at a time."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for b in range(len(sizes)):
        a, z = int(starts[b]), int(starts[b + 1])
        if z <= lo or a >= hi or a == z:
            continue
        rows = read_bucket(buckets, b)
        if len(rows) != z - a:
            raise UsageError(f"internal error: bucket {b} holds {len(rows)} rows, expected {z - a}")
        for pos in range(max(a, lo), min(z, hi)):
            writer.add(pos, rows[pos - a])
        del rows


def _swap_in(out: Path, tmp: Path, train_tmp: Path, report: dict):
    """train_tmp becomes OUT/train/ and `report` OUT/mix.json: mix.json goes last, so OUT is complete exactly when
    mix.json exists."""
    (out / MIX_FILE).unlink(missing_ok=True)
    old = tmp / "old-train"
    if (out / TRAIN_DIR).exists():
        os.replace(out / TRAIN_DIR, old)
    os.replace(train_tmp, out / TRAIN_DIR)
    fsync_dir(out)
    durable_write(out / MIX_FILE, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    shutil.rmtree(tmp, ignore_errors=True)
