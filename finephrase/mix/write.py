"""Writing a mix: the output folder's checks, the selected rows streamed into per-shard bucket files under
OUT/.mix-tmp/, each shard ordered and written as OUT/train/NNNNN.parquet, then swapped in with OUT/mix.json last."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from finephrase.errors import UsageError
from finephrase.layout import durable_write, fsync_dir
from finephrase.mix.config import MIX_FILE, TMP_DIR, TRAIN_DIR
from finephrase.mix.sources import MixInput

MIX_SCHEMA = pa.schema([
    pa.field("text", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("tokens", pa.int64(), nullable=False),
])


class _Buckets:
    """Rows bound for each output shard, appended to OUT/.mix-tmp/buckets/SSSSS.jsonl in batches."""

    def __init__(self, folder: Path, flush_bytes: int = 64 << 20):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.buf: dict[int, list[bytes]] = {}
        self.size = 0
        self.flush_bytes = flush_bytes

    def add(self, shard: int, line: bytes):
        self.buf.setdefault(shard, []).append(line)
        self.size += len(line)
        if self.size >= self.flush_bytes:
            self.flush()

    def flush(self):
        for shard, lines in self.buf.items():
            with open(self.folder / f"{shard:05d}.jsonl", "ab") as f:
                f.write(b"".join(lines))
        self.buf.clear()
        self.size = 0

    def read(self, shard: int) -> list:
        path = self.folder / f"{shard:05d}.jsonl"
        if not path.exists():
            return []
        with open(path, "rb") as f:
            rows = [orjson.loads(line) for line in f]
        path.unlink()
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


def _bucket_rows(buckets: _Buckets, inputs: list[MixInput], selections: list[np.ndarray], pos: np.ndarray,
                 labels: list[str], shard_rows: int):
    """Every selected record into the bucket of its shard; entry j (inputs in order, then their selections) goes to
    position pos[j]."""
    offset = 0
    for inp, sel in zip(inputs, selections):
        p = pos[offset:offset + len(sel)]
        offset += len(sel)
        _bucket_input(buckets, inp, sel, p, labels, shard_rows)
    buckets.flush()


def _bucket_input(buckets: _Buckets, inp: MixInput, sel: np.ndarray, p: np.ndarray, labels: list[str],
                  shard_rows: int):
    """One input's selected records (`sel`: indices within the input, `p`: their positions), read in one pass and
    checked against what was counted."""
    order = np.argsort(sel, kind="stable")
    ks, ps = sel[order], p[order]
    at = 0  # next entry in ks
    base = 0  # index of the part's first record within the input
    for part in inp.parts:
        if at >= len(ks):
            break
        end = base + len(part.tokens)
        if ks[at] >= end:
            base = end
            continue
        li = labels.index(part.label)
        for k, doc in enumerate(part.documents(), start=base):
            if k >= end:
                raise UsageError(f"{part.label} changed while mixing (more records than when counted): rerun")
            if ks[at] != k:
                continue
            if doc.metadata.get("_fp_reject") or len(doc.text) != part.chars[k - base]:
                raise UsageError(f"{part.label} changed while mixing (record {k - base + 1} differs): rerun")
            while at < len(ks) and ks[at] == k:
                where = int(ps[at])
                buckets.add(where // shard_rows,
                            orjson.dumps([where, li, doc.id, int(part.tokens[k - base]), doc.text]) + b"\n")
                at += 1
            if at >= len(ks) or ks[at] >= end:
                break
        base = end
    if at != len(ks):
        raise UsageError(f"{inp.kind} input {inp.path} changed while mixing (fewer records than when counted): "
                         f"rerun")


def _write_shards(buckets: _Buckets, train_tmp: Path, labels: list[str], n_rows: int, n_shards: int,
                  shard_rows: int) -> list[str]:
    """Each shard's rows in position order, as train_tmp/NNNNN.parquet; returns their paths relative to OUT."""
    train_tmp.mkdir(parents=True, exist_ok=True)
    files = []
    for s in range(n_shards):
        rows = sorted(buckets.read(s), key=lambda r: r[0])
        expect = min(shard_rows, n_rows - s * shard_rows)
        if len(rows) != expect or any(r[0] != s * shard_rows + i for i, r in enumerate(rows)):
            raise UsageError(f"internal error: shard {s} has {len(rows)} rows, expected {expect}")
        table = pa.table({"text": [r[4] for r in rows], "source": [labels[r[1]] for r in rows],
                          "id": [r[2] for r in rows], "tokens": [r[3] for r in rows]}, schema=MIX_SCHEMA)
        name = f"{s:05d}.parquet"
        pq.write_table(table, train_tmp / name, compression="zstd", row_group_size=min(shard_rows, 10_000))
        files.append(f"{TRAIN_DIR}/{name}")
    return files


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
