"""The commit ledger: what makes a run exactly once.

Per task (rank) an append-only file `DIR/.ledger/rank_RRRRR.jsonl`; one line per committed chunk. A chunk is
committed by (1) writing each of its parquet files under a temporary name and fsyncing it, (2) renaming them
to their final names `RRRRR_CCCCCC.parquet`, (3) appending its ledger line and fsyncing the ledger. The ledger
line is the commit point: files of a chunk without a ledger line are leftovers of an interrupted commit and
are deleted when the task restarts (`recover`).

A chunk is a contiguous range of the task's input: documents `first`..`pos.read` (counted from 1 in reading
order), with `pos` the input position after its last document. Chunks commit in any order (a straggling request
holds back only its own chunk), so the committed ranges need not form a prefix: a restarted task reads only the
gaps between them (`LedgerState.gaps`), seeking to the position after the committed range before each gap, and
numbers its new chunks after the highest committed one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from finephrase.errors import FinephraseError
from finephrase.store.layout import LEDGER_DIR, fsync_dir  # noqa: F401  (LEDGER_DIR: imported from here too)
from finephrase.store.locks import TaskLock  # noqa: F401  (imported from here by the writers)
from finephrase.store.task_ranges import entry_span

_CHUNK_FILE = re.compile(r"^(\d{5})_(\d{6})\.parquet$")
_TMP_FILE = re.compile(r"^\.(\d{5})_(\d{6})\.parquet\.tmp")


def chunk_filename(rank: int, chunk: int) -> str:
    return f"{rank:05d}_{chunk:06d}.parquet"


@dataclass(frozen=True)
class Gap:
    """Input documents `first`..`last` (reading order, from 1; `last` None: to the end) that no chunk commits.
    Reading them starts at `start`, the position after the committed range before them (None: the beginning)."""

    start: dict | None
    first: int
    last: int | None


@dataclass
class LedgerState:
    entries: list[dict] = field(default_factory=list)
    finished: bool = False

    @property
    def next_chunk(self) -> int:
        return max(e["chunk"] for e in self.entries) + 1 if self.entries else 0

    def ranges(self) -> list[tuple[int, int, dict]]:
        """Committed input ranges (first, last, position after last), sorted and merged where they touch."""
        spans, prev_end = [], 0
        for e in self.entries:  # ledgers before out-of-order commits have no `first`: chunks followed each other
            first, last = entry_span(e, prev_end)
            spans.append((first, last, e["pos"]))
            prev_end = last
        merged: list[tuple[int, int, dict]] = []
        for first, last, pos in sorted(spans, key=lambda s: s[0]):
            if merged and first <= merged[-1][1] + 1:
                if last > merged[-1][1]:
                    merged[-1] = (merged[-1][0], last, pos)
            else:
                merged.append((first, last, pos))
        return merged

    def gaps(self) -> list[Gap]:
        """What a restarted task still has to read, in reading order; the last gap runs to the end of its input."""
        out, start, nxt = [], None, 1
        for first, last, pos in self.ranges():
            if first > nxt:
                out.append(Gap(start, nxt, first - 1))
            start, nxt = pos, last + 1
        out.append(Gap(start, nxt, None))
        return out

    @property
    def position(self) -> dict | None:
        """The input position after the committed prefix (None: nothing of the beginning is committed)."""
        return self.gaps()[0].start

    @property
    def committed_docs(self) -> int:
        return sum(int(e.get("docs", 0)) for e in self.entries)

    @property
    def prefix_frac(self) -> float:
        """Input fraction read up to the end of the committed prefix (where progress picks up on a resume)."""
        ranges = self.ranges()
        if not ranges or ranges[0][0] != 1:
            return 0.0
        return float(ranges[0][2].get("frac", 0.0))


class Ledger:
    def __init__(self, output_dir: str | Path, rank: int):
        self.root = Path(output_dir)
        self.rank = rank
        self.path = self.root / LEDGER_DIR / f"rank_{rank:05d}.jsonl"

    # -- reading ------------------------------------------------------------------------------------------------

    def read(self, repair: bool = False) -> LedgerState:
        """Committed entries. A torn last line (killed mid-append) is not a commit; `repair` truncates it away."""
        state = LedgerState()
        if not self.path.exists():
            return state
        data = self.path.read_bytes()
        good_end = 0
        lines = data.splitlines(keepends=True)
        for n, line in enumerate(lines, start=1):
            try:
                if not line.endswith(b"\n"):
                    raise orjson.JSONDecodeError("no newline", "", 0)
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                if n == len(lines):  # torn by a kill during the append: that chunk was not committed
                    break
                raise FinephraseError(f"ledger {self.path} is corrupt at line {n} (not a torn last line): "
                                      f"restore it or start over with --overwrite") from None
            good_end += len(line)
            if entry.get("finished"):
                state.finished = True
            else:
                state.entries.append(entry)
        if repair and good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        return state

    def gaps(self) -> list[Gap]:
        return self.read().gaps()

    def resume_position(self) -> dict | None:
        return self.read().position

    # -- recovery -----------------------------------------------------------------------------------------------

    def recover(self, data_dirs: list[Path]) -> LedgerState:
        """Repair the ledger and delete this rank's files that no ledger line commits."""
        state = self.read(repair=True)
        committed = {e["chunk"] for e in state.entries}
        prefix = f"{self.rank:05d}_"
        for d in data_dirs:
            if not d.is_dir():
                continue
            for p in d.iterdir():
                m = _CHUNK_FILE.match(p.name)
                if m and p.name.startswith(prefix) and int(m.group(2)) not in committed:
                    p.unlink()
                elif (t := _TMP_FILE.match(p.name)) and int(t.group(1)) == self.rank:
                    p.unlink()
        return state

    # -- committing ---------------------------------------------------------------------------------------------

    def commit(self, chunk: int, tables: dict[str, pa.Table], entry: dict):
        """Atomically publish `tables` ({relative dir: table}) as chunk `chunk`, then record `entry`. A table
        with no rows gets no file (`datasets` refuses empty parquet files): the entry's counts still say 0."""
        tables = {rel: t for rel, t in tables.items() if t.num_rows}
        name = chunk_filename(self.rank, chunk)
        dirs = set()
        staged = []
        for rel, table in tables.items():
            d = self.root / rel
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{name}.tmp"
            with open(tmp, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            staged.append((tmp, d / name))
            dirs.add(d)
        for tmp, final in staged:
            os.replace(tmp, final)
        for d in dirs:
            fsync_dir(d)
        entry = {"chunk": chunk, **entry, "files": sorted(f"{rel}/{name}" for rel in tables),
                 "committed_at": time.time()}
        self._append(entry)

    def mark_finished(self, summary: dict | None = None):
        self._append({"finished": True, **(summary or {}), "finished_at": time.time()})

    def _append(self, entry: dict):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(orjson.dumps(entry) + b"\n")
            f.flush()
            os.fsync(f.fileno())


def unfinished_tasks(output_dir: str | Path, ranks, ledgers: dict[int, LedgerState] | None = None) -> list[int]:
    """The tasks of `ranks` without a `finished` ledger line (one that never started included): the one answer to
    "has this task finished" for run() (nothing to start), verify's finished-run check and the post-run commands.
    `ledgers`: the folder's ledgers when they were read already (else only the ledgers of `ranks` are read)."""
    if ledgers is None:
        return [r for r in ranks if not Ledger(output_dir, r).read().finished]
    return [r for r in ranks if r not in ledgers or not ledgers[r].finished]


def all_ledgers(output_dir: str | Path) -> dict[int, LedgerState]:
    d = Path(output_dir) / LEDGER_DIR
    out = {}
    if d.is_dir():
        for p in sorted(d.glob("rank_*.jsonl")):
            rank = int(p.stem.split("_")[1])
            out[rank] = Ledger(output_dir, rank).read()
    return out
