"""Recorded verdicts: what `finephrase verify` found for one task of a run (or for a whole dedup or compacted
folder), kept in DIR/.verify/ so that a later verify, card or publish re-reads nothing that has not changed.

DIR/.verify/task_RRRRR.json (a run's task) or DIR/.verify/folder.json (a dedup or compacted folder) holds
ok, problems, stats, the run's fingerprint (a hash of manifest["config"]), the inputs' listing hash, and the
signature of what was covered: the ledger's size and sha256, and name, size and mtime_ns of every committed file
(a stat each, nothing read). A verdict counts only while all of these are still what they were; anything else
is stale and the task is checked again. Each task writes only its own file (layout.durable_write), so the tasks
of an array can record theirs at the same time.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import orjson

from finephrase.store.layout import LEDGER_DIR, durable_write

VERIFY_DIR = ".verify"
VERSION = 1  # a verdict written by another version of the check is stale


def fingerprint(manifest: dict) -> str:
    """A hash of the run's settings (manifest["config"]): a verdict of another run in the same folder is stale."""
    return hashlib.sha256(orjson.dumps(manifest.get("config"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def stats_hash(root: Path, rels) -> str:
    """sha256 of name (relative to `root`), size and mtime_ns of each file (missing: "-")."""
    h = hashlib.sha256()
    for rel in sorted(rels):
        try:
            st = os.stat(os.path.join(root, rel))
            h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{rel}\t-\n".encode())
    return h.hexdigest()


def ledger_path(root: Path, rank: int) -> Path:
    return root / LEDGER_DIR / f"rank_{rank:05d}.jsonl"


def task_signature(root: Path, rank: int, files) -> dict:
    """What task `rank`'s verdict covers: its ledger's bytes and its committed files' stats. Taken before the
    check, so a change during the check makes the verdict stale, never a verdict of files it did not read."""
    try:
        data = ledger_path(root, rank).read_bytes()
        ledger = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    except FileNotFoundError:
        ledger = None
    return {"ledger": ledger, "files": stats_hash(root, files)}


def folder_signature(root: Path, extra: dict, source: Path | None = None) -> dict:
    """What a dedup or compacted folder's verdict covers: its manifest's bytes, the stats of every parquet file
    under it (and under `source`, the run a dedup output is checked against), and `extra`."""
    out = {"manifest": hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest(), **extra}
    for name, folder in (("files", root), ("source_files", source)):
        if folder is not None:
            rels = [p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")
                    if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
            out[name] = stats_hash(folder, rels)
    return out


def task_path(root: Path, rank: int) -> Path:
    return root / VERIFY_DIR / f"task_{rank:05d}.json"


def folder_path(root: Path) -> Path:
    return root / VERIFY_DIR / "folder.json"


def load(path: Path, key: dict) -> dict | None:
    """The verdict at `path` if it was recorded for exactly `key` (fingerprint, inputs, signature), else None."""
    try:
        v = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError, NotADirectoryError):
        return None
    if v.get("version") != VERSION or any(v.get(k) != val for k, val in key.items()):
        return None
    return v


def record(path: Path, key: dict, problems: list[str], stats: dict, **extra) -> dict:
    """Write a verdict (best effort: a folder this process may not write keeps no verdict) and return it."""
    v = {"version": VERSION, **key, **extra, "ok": not problems, "problems": problems, "stats": stats,
         "checked_at": time.time()}
    try:
        durable_write(path, orjson.dumps(v, option=orjson.OPT_INDENT_2))
    except OSError:
        pass
    return v
