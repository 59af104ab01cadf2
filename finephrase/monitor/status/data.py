"""Reading a run's folder for `finephrase status` beyond its manifest: the per-task progress snapshots, whether a
session's process is still alive, and the exact totals from the parquet footers of the run's inputs."""

from __future__ import annotations

import calendar
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from finephrase.store.layout import LEDGER_DIR


def _read_snapshot(root: Path, rank: int) -> dict | None:
    path = root / LEDGER_DIR / f"rank_{rank:05d}.progress.json"
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):  # absent (not started, or an older run)
        return None
    return data if isinstance(data, dict) else None


def _epoch(iso: str | None) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def _process_alive(session: dict) -> bool | None:
    """Whether the session's process still exists, if it ran on this machine; None if that cannot be told."""
    pid = session.get("pid")
    if not pid or session.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


# -- exact totals from parquet footers ------------------------------------------------------------------------


def input_totals(manifest: dict) -> tuple[dict[int, int] | None, str | None]:
    """{rank: documents the task will read} from the parquet footers of its shard, or (None, why not)."""
    from finephrase.pipeline.readers.resumable import ResumableReader
    from finephrase.run.runner import input_listing

    cfg = manifest["config"]
    tasks = int(cfg["tasks"])
    try:
        reader = ResumableReader(cfg["inputs"], text_column=cfg.get("text_column", "text"),
                                 id_column=cfg.get("id_column", "id"), limit=cfg.get("limit", -1))
        files = reader.files
    except Exception as e:  # gone, moved, a relative path from another folder, no network: estimates then
        return None, f"inputs not readable from here ({e})"
    if cfg.get("input_files") and input_listing(files) != cfg["input_files"]:
        return None, "the inputs changed since the run started"
    if any(f.kind != "parquet" for f in files):
        return None, "not all inputs are parquet"

    def rows(f) -> int:
        import pyarrow.parquet as pq
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(f.url)
        with fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            counts = dict(zip([f.url for f in files], pool.map(rows, files)))
    except Exception as e:  # a footer that cannot be read: fall back to estimates
        return None, f"parquet footers not readable ({type(e).__name__}: {e})"
    limit = cfg.get("limit", -1)
    out = {}
    for rank in range(tasks):
        n = sum(s.rows if s.rows is not None else counts[s.url] for s in reader.shard(rank, tasks))
        out[rank] = min(n, limit) if limit is not None and limit >= 0 else n
    return out, None
