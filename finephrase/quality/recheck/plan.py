"""What a re-check reads: the folder (a run, a dedup output or a compacted folder), its prompts, whether the source
checks can run, and the units of work that processes and array tasks share out.

- A run: one unit per run task. The unit reads the task's ledger and its input once, chunk by chunk
  (task_ranges.iter_chunk_inputs), and checks each committed chunk's published files against the sources of that
  chunk only. Files of the task that no ledger line commits (an older ledger-less run, leftovers) are checked in
  batches of at most FALLBACK_ROWS rows, each batch with one pass over the task's input for its source ids.
- A dedup output or compacted folder: its files have no per-chunk ranges. When the source checks are asked for
  and it holds at most FALLBACK_ROWS rows, one unit checks it that way (one pass over all the inputs); a larger
  one is checked file by file, one unit per file, without the copy and off-topic checks (the report says so).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.store.datafiles import num_rows, parquet_files
from finephrase.store.folders import folder_kind, refuse_folder
from finephrase.store.layout import MANIFEST, read_manifest

FALLBACK_ROWS = 50_000  # rows checked per pass over the inputs when files have no ledger ranges
_CHUNK_FILE = re.compile(r"^(\d{5})_(\d{6})\.parquet$")


@dataclass(frozen=True)
class Unit:
    """A run task (`rank`), or (`rank` None) a list of files, relative to the folder, checked one after the other;
    `lookup`: their sources are looked up in all the run's inputs (in batches of FALLBACK_ROWS rows)."""

    rank: int | None = None
    files: tuple[str, ...] = ()
    lookup: bool = False


@dataclass
class Plan:
    root: Path
    manifest: dict
    kind: str  # "run", "dedup output", "decontaminated output", "compacted folder"
    units: list[Unit] = field(default_factory=list)
    skipped: str | None = None  # why the copy and off-topic checks do not run (None: they do)

    @property
    def cfg(self) -> dict:
        return self.manifest["config"]

    @property
    def prompts(self) -> list[str]:
        return list(self.cfg["prompts"])

    @property
    def tasks(self) -> int:
        return int(self.cfg.get("tasks", 1))

    @property
    def source_checks(self) -> bool:
        return self.skipped is None


def load(root: Path) -> dict:
    """The manifest of the folder to re-check; a one-line UsageError for anything else."""
    if root.is_dir() and not (root / MANIFEST).is_file() and folder_kind(root) != "other":
        raise refuse_folder(root, folder_kind(root), "gate", "rephrase runs, dedup outputs and compacted folders")
    if not (root / MANIFEST).is_file():
        raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
    try:
        manifest = read_manifest(root)
    except (OSError, orjson.JSONDecodeError) as e:
        raise UsageError(f"{root / MANIFEST} cannot be read: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config)")
    return manifest


def make_reader(cfg: dict):
    from finephrase.pipeline.readers.resumable import ResumableReader

    return ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"],
                           limit=cfg["limit"])


def input_columns(cfg: dict) -> list[str]:
    return [c for c in (cfg.get("id_column"), cfg.get("text_column")) if c]


def _inputs_unreadable(cfg: dict) -> bool:
    """Whether the run's inputs cannot be read (its first document, as a probe)."""
    try:
        next(iter(make_reader(cfg).iter_documents(0, int(cfg.get("tasks", 1)), columns=input_columns(cfg))), None)
        return False
    except Exception:
        return True


def make_plan(root: Path, use_source: bool = True) -> Plan:
    manifest = load(root)
    kind = ("compacted folder" if "compacted" in manifest else "decontaminated output" if "decontamination" in manifest
            else "dedup output" if "dedup" in manifest else "run")
    plan = Plan(root, manifest, kind)
    if not use_source:
        plan.skipped = "--no-source"
    elif _inputs_unreadable(plan.cfg):
        plan.skipped = "the run's inputs could not be read"
    if kind == "run":
        plan.units = [Unit(rank=r) for r in range(plan.tasks)]
        return plan
    files = [f"{p}/{f.name}" for p in plan.prompts for f in parquet_files(root / p)]
    if plan.source_checks and sum(num_rows(root / f) for f in files) <= FALLBACK_ROWS:
        plan.units = [Unit(files=tuple(files), lookup=True)]
        return plan
    if plan.source_checks:
        plan.skipped = (f"a {kind} of more than {FALLBACK_ROWS:,} rows has no per-chunk ranges to pair its rows "
                        f"with their source documents; `finephrase gate` on the run it came from checks them")
    plan.units = [Unit(files=(f,)) for f in files]
    return plan


def task_files(root: Path, prompts: list[str], rank: int, tasks: int) -> tuple[list[str], list[str]]:
    """The data files of run task `rank` in the prompt folders (named RRRRR_CCCCCC.parquet), as paths relative to
    the folder, sorted; and, for task 0 only, the files named otherwise (or for a task the run does not have)."""
    mine, odd = [], []
    for p in prompts:
        folder = root / p
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                name = entry.name
                if not name.endswith(".parquet") or name.startswith(".") or not entry.is_file():
                    continue
                m = _CHUNK_FILE.match(name)
                if m and int(m.group(1)) == rank:
                    mine.append(f"{p}/{name}")
                elif rank == 0 and (not m or int(m.group(1)) >= tasks):
                    odd.append(f"{p}/{name}")
    return sorted(mine), sorted(odd)
