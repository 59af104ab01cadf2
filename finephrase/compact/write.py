"""Writing one shard: the rows of its source files, streamed in batches into one parquet file with row groups of
a good size for streaming, column statistics on the small columns, and no dictionary on the long text columns.

Memory holds one row group (about `ROW_GROUP_BYTES` uncompressed) and one batch, whatever the shard's size.
The shard is written under a hidden temporary name, fsynced, and renamed into place (then the folder fsynced):
a killed task leaves either no shard or a whole one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from finephrase.errors import FinephraseError
from finephrase.store.layout import fsync_dir

ROW_GROUP_BYTES = 128 * 1024**2  # uncompressed bytes per row group: large enough to stream, small enough to seek
BATCH_BYTES = 16 * 1024**2
LONG_TEXT = {"text", "reasoning", "metadata", "url", "file_path", "id", "source_id", "reject_detail"}


def _batch_rows(pf: pq.ParquetFile) -> int:
    """Rows per read batch, from the file's average uncompressed row size."""
    md = pf.metadata
    total = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    return max(64, int(BATCH_BYTES / max(1, total / max(1, md.num_rows))))


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    small = [f.name for f in schema if f.name not in LONG_TEXT]
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=small, write_statistics=small)


def write_shard(source: Path, out: Path, rel_path: str, files: list[str], expected_rows: int | None) -> dict:
    """Write the shard `rel_path` of OUT from `files` (relative to `source`), in order. Returns its rows, bytes
    and row groups; a row count other than `expected_rows` is an error (nothing is renamed into place)."""
    final = out / rel_path
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    rows = groups = 0
    writer, buffer, buffered = None, [], 0
    try:
        for name in files:
            pf = pq.ParquetFile(source / name)
            if writer is None:
                writer = _writer(tmp, pf.schema_arrow)
            elif not pf.schema_arrow.equals(writer.schema):
                raise FinephraseError(f"{name} has another schema than the files before it in its folder")
            for batch in pf.iter_batches(batch_size=_batch_rows(pf)):
                buffer.append(batch)
                buffered += batch.nbytes
                if buffered >= ROW_GROUP_BYTES:
                    rows, groups = rows + _flush(writer, buffer), groups + 1
                    buffer, buffered = [], 0
        if buffer:
            rows, groups = rows + _flush(writer, buffer), groups + 1
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise FinephraseError(f"shard {rel_path} has no source files")
    writer.close()
    if expected_rows is not None and rows != expected_rows:
        tmp.unlink(missing_ok=True)
        raise FinephraseError(f"shard {rel_path}: read {rows} rows from its {len(files)} source files, the source's "
                              f"ledger says {expected_rows}: the source changed or is damaged")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return {"path": rel_path, "rows": rows, "bytes": final.stat().st_size, "row_groups": groups}


def _flush(writer: pq.ParquetWriter, batches: list[pa.RecordBatch]) -> int:
    table = pa.Table.from_batches(batches)
    writer.write_table(table, row_group_size=table.num_rows)
    return table.num_rows
