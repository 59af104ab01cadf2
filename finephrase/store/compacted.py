"""A compacted folder's bookkeeping on disk (`finephrase compact`): `OUT/.compact/plan.json` (the shards to write,
fixed once) and one done log per task (`OUT/.compact/done_RRRRR.jsonl`, one line per committed shard). compact
writes them; verify and dedup read them."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

COMPACT_DIR = ".compact"
PLAN = "plan.json"


def done_shards(out: Path) -> dict[str, dict]:
    """Committed shards, from every task's done log: {path: its line}."""
    done = {}
    for log in sorted((out / COMPACT_DIR).glob("done_*.jsonl")):
        for line in log.read_bytes().splitlines():
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a kill: its shard is written again
            done[rec["path"]] = rec
    return done


def record_done(out: Path, rank: int, record: dict):
    """Append one committed shard's line to task `rank`'s done log, durably."""
    with open(out / COMPACT_DIR / f"done_{rank:05d}.jsonl", "ab") as f:
        f.write(orjson.dumps(record) + b"\n")
        f.flush()
        os.fsync(f.fileno())
