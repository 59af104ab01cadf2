"""Which shards a compaction writes: the plan, computed the same way by every task from the source folder alone.

Each data folder of the source (`<prompt>/`, `rejects/<prompt>/`, `filtered/`, a dedup output's `removed/<prompt>/`)
becomes the same folder in OUT, its files (in name order: the order chunks were numbered) dealt into
consecutive groups of about `target_bytes` (or `target_rows`) each. Group i of n is written as
`OUT/<folder>/train-{i:05d}-of-{n:05d}.parquet`, the names the Hub and `datasets` expect; a folder that would
hold as many shards as the Hub allows entries per folder gets sub-folders of fewer (`part-0000/`, ...).

The plan depends only on the source's committed files and the targets, so tasks of a SLURM array agree on it
without talking to each other, and a resubmitted task writes exactly the shards it wrote before.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.store.hub_limits import ENTRIES_PER_FOLDER
from finephrase.store.layout import FILTERED, REJECTS, REMOVED

SHARD = "train-{index:05d}-of-{count:05d}.parquet"
PART = "part-{part:04d}"
DEFAULT_TARGET_BYTES = 500 * 1000**2


@dataclass
class Shard:
    folder: str  # the data folder, relative: "faq", "rejects/faq", "filtered"
    index: int
    count: int  # shards of this folder
    files: list[str] = field(default_factory=list)  # source files, relative to the source folder
    rows: int = 0
    bytes: int = 0
    per_part: int = ENTRIES_PER_FOLDER - 1

    @property
    def path(self) -> str:
        """The shard's path in OUT, relative."""
        name = SHARD.format(index=self.index, count=self.count)
        if self.count <= self.per_part:
            return f"{self.folder}/{name}"
        return f"{self.folder}/{PART.format(part=self.index // self.per_part)}/{name}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "per_part"} | {"path": self.path}


def source_folders(root: Path, manifest: dict, prompts: list[str]) -> list[str]:
    """The data folders of a finished run or dedup output that exist, in a fixed order."""
    rels = []
    for p in prompts:
        rels += [p, f"{REJECTS}/{p}", f"{REMOVED}/{p}"]
    rels.append(FILTERED)
    return [r for r in rels if (root / r).is_dir()]


def _group(files: list[tuple[str, int, int]], target_bytes: int | None, target_rows: int | None) -> list[list]:
    """Consecutive groups of (name, rows, bytes), each up to the target (at least one file per group)."""
    groups, current, rows, size = [], [], 0, 0
    for f in files:
        full = (target_rows and rows + f[1] > target_rows) or (target_bytes and size + f[2] > target_bytes)
        if current and full:
            groups.append(current)
            current, rows, size = [], 0, 0
        current.append(f)
        rows += f[1]
        size += f[2]
    if current:
        groups.append(current)
    return groups


def make_plan(root: Path, folders: dict[str, list[tuple[str, int, int]]], target_bytes: int | None,
              target_rows: int | None, per_part: int = ENTRIES_PER_FOLDER - 1) -> list[Shard]:
    """The shards of every folder: `folders` maps a folder to its files as (name relative to root, rows, bytes)."""
    if not target_bytes and not target_rows:
        raise UsageError("give a shard size: --target-size or --target-rows")
    shards = []
    for rel, files in folders.items():
        files = [f for f in files if f[1] > 0]  # never an empty data file (datasets refuses them)
        groups = _group(files, target_bytes, target_rows)
        for i, g in enumerate(groups):
            shards.append(Shard(rel, i, len(groups), [f[0] for f in g], sum(f[1] for f in g), sum(f[2] for f in g),
                                per_part))
    return shards


def plan_digest(shards: list[Shard]) -> str:
    """A hash of the plan: tasks (and reruns) that compute another plan are refused."""
    data = orjson.dumps([s.to_dict() for s in shards], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]
