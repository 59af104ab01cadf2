"""One task of a rephrase run, chunk by chunk: its committed ranges must tile its input (task_ranges.tiling_problems),
and each chunk's files must hold exactly the ids of its own range of the input (report.check_ids). The task's
input is read once (ids only); memory is bounded by a chunk, never by the task or the run.

Also here: the names of the chunk files on disk (one os.scandir per folder), to find files no ledger line commits.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from finephrase.store import metadata as meta
from finephrase.store.layout import FILTERED, REJECTS
from finephrase.store.ledger import LedgerState
from finephrase.store.task_ranges import iter_chunk_inputs, tiling_problems
from finephrase.verify.report import Tally, check_ids

CHUNK_FILE = re.compile(r"^(\d{5})_(\d{6})\.parquet$")
NO_CHUNK = "no chunk"  # the part name of input documents that no committed chunk covers


def data_dirs(prompts: list[str]) -> list[str]:
    """The folders of a run that hold chunk files, relative to it."""
    return [*prompts, *(f"{REJECTS}/{p}" for p in prompts), FILTERED]


def scan_chunk_files(root: Path, prompts: list[str], ranks=None) -> dict[int, set[str]]:
    """{rank: relative paths} of the chunk files (RRRRR_CCCCCC.parquet) in the run's data folders, only for
    `ranks` when given: names only, one os.scandir per folder."""
    out: dict[int, set[str]] = {}
    for rel in data_dirs(prompts):
        try:
            it = os.scandir(root / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                m = CHUNK_FILE.match(e.name)
                if m and (ranks is None or int(m.group(1)) in ranks):
                    out.setdefault(int(m.group(1)), set()).add(f"{rel}/{e.name}")
    return out


def committed_files(state: LedgerState | None) -> set[str]:
    return {f for e in state.entries for f in e.get("files", [])} if state else set()


def _file_key(rel: str, prompts: list[str]) -> tuple[str | None, bool]:
    """(what a committed file holds: a prompt's rows or rejects, "<filtered>", or None; whether it is rejects)."""
    parts = rel.split("/")
    if parts[0] == FILTERED:
        return "<filtered>", False
    if parts[0] == REJECTS and len(parts) > 2 and parts[1] in prompts:
        return parts[1], True
    return (parts[0] if parts[0] in prompts else None), False


def _chunk_found(root: Path, entry: dict, prompts: list[str], tally: Tally, stats: Counter) -> dict[str, Counter]:
    """The ids in one chunk's committed files, by prompt (rows and rejects together) and "<filtered>"; the rows,
    rejects and filtered records counted into `stats`."""
    found: dict[str, Counter] = {}
    for rel in entry.get("files", []):
        key, reject = _file_key(rel, prompts)
        if key is None:
            continue
        try:
            ids = pq.read_table(root / rel, columns=["source_id"]).column("source_id").to_pylist()
        except FileNotFoundError:
            tally.add(("files_missing",), 1, [rel], entry.get("chunk"))
            continue
        except Exception as e:  # a torn or foreign file: say which, check the rest
            tally.add(("files_unreadable",), 1, [f"{rel} ({type(e).__name__})"], entry.get("chunk"))
            continue
        found.setdefault(key, Counter()).update(ids)
        stats["filtered" if key == "<filtered>" else f"{'rejects' if reject else 'rows'}/{key}"] += len(ids)
    return found


def check_task(root: Path, cfg: dict, reader, rank: int, state: LedgerState | None) -> tuple[list[str], dict]:
    """(problems, stats) of task `rank`: finished; its ranges tile its input; each chunk holds exactly its range's
    ids once per prompt (or filtered); the documents no chunk covers are missing. Stats: input_documents,
    filtered, rows/<prompt>, rejects/<prompt>."""
    prompts, tasks = list(cfg["prompts"]), cfg["tasks"]
    entries = state.entries if state else []
    problems = []
    if state is None or not state.finished:
        done = sum(e["docs"] for e in entries)
        problems.append(f"task {rank} has not finished ({done} documents committed): rerun the same command")
    tally = Tally(f"task {rank}", prompts, ranged=True)
    stats = Counter({"input_documents": 0, "filtered": 0, **{f"{k}/{p}": 0 for p in prompts
                                                             for k in ("rows", "rejects")}})
    read = 0
    for chunk in iter_chunk_inputs(reader, rank, tasks, entries, columns=[cfg["id_column"]]):
        if chunk.docs:
            read = max(read, meta.read_count(chunk.docs[-1]))
        expected = Counter(d.id for d in chunk.docs)
        if chunk.entry is None:
            check_ids(tally, expected, {}, NO_CHUNK)
        else:
            found = _chunk_found(root, chunk.entry, prompts, tally, stats)
            check_ids(tally, expected, found, chunk.entry.get("chunk"))
    stats["input_documents"] = read
    problems += [f"task {rank}: {line}" for line in tiling_problems(entries, read, state is not None and
                                                                    state.finished)]
    return problems + tally.lines(), dict(stats)
