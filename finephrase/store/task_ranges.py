"""A task's input, range by range along its ledger: what `verify` and `gate` read to compare each committed chunk
with the documents it covers, in memory bounded by a chunk (never by the task or the run).

Each ledger line says which input range of its task the chunk covers: documents `first`..`pos.read`, counted from
1 in reading order. The task's input is read once, in order, and each document is handed to the chunk whose
range holds it; documents no chunk covers (a gap: an unfinished task, or a lost commit) come out in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from finephrase.store import metadata as meta

GAP_BATCH = 10_000  # documents of a gap handed out at once (a gap may be the rest of an unfinished task)


def entry_span(entry: dict, prev_last: int) -> tuple[int, int]:
    """(first, last) of a ledger entry; ledgers written before out-of-order commits have no `first`: their chunks
    followed each other, so the range starts after the previous line's."""
    last = int(entry["pos"]["read"])
    return int(entry.get("first", prev_last + 1)), last


def spans(entries: list[dict]) -> list[tuple[int, int, dict]]:
    """(first, last, entry) of every ledger entry, in order of `first` (then chunk number)."""
    out, prev_last = [], 0
    for e in entries:
        first, last = entry_span(e, prev_last)
        out.append((first, last, e))
        prev_last = last
    return sorted(out, key=lambda s: (s[0], s[2].get("chunk", 0)))


def tiling_problems(entries: list[dict], read: int, finished: bool) -> list[str]:
    """What is wrong with how a task's committed ranges cover its `read` input documents: a gap between two
    ranges, an overlap, a range past the end of the input; for a finished task also a missing start or end.
    One line each, without the task's name (the caller adds it)."""
    problems, nxt = [], 1
    for first, last, e in spans(entries):
        chunk = e.get("chunk")
        if last < first:
            problems.append(f"chunk {chunk} covers an empty or reversed range ({first}..{last})")
            continue
        if first > nxt and (finished or nxt > 1):
            problems.append(f"documents {nxt}..{first - 1} are in no committed chunk (a gap before chunk {chunk})")
        elif first < nxt:
            problems.append(f"chunk {chunk} ({first}..{last}) overlaps the chunk before it (up to {nxt - 1})")
        if last > read:
            problems.append(f"chunk {chunk} covers documents up to {last} but the input has {read}")
        nxt = max(nxt, last + 1)
    if finished and nxt <= read:
        problems.append(f"documents {nxt}..{read} are in no committed chunk (the task says it finished)")
    return problems


@dataclass
class ChunkInput:
    """The input documents of one committed chunk (`entry`), or of a stretch no chunk covers (`entry` None)."""

    entry: dict | None
    docs: list = field(default_factory=list)


def iter_chunk_inputs(reader, rank: int, tasks: int, entries: list[dict],
                      columns: list[str] | None = None) -> Iterator[ChunkInput]:
    """Read task `rank`'s input once, in order, and yield each committed chunk's documents as soon as its range is
    complete (in order of `first`), and the documents of gaps in batches of at most GAP_BATCH. A document in two
    overlapping ranges goes to both (verify reports the overlap). Memory: the chunks open at once."""
    pending = spans(entries)
    open_chunks: list[tuple[int, ChunkInput]] = []  # (last, chunk) of ranges that hold the current document
    gap = ChunkInput(None)
    i = 0
    for doc in reader.iter_documents(rank, tasks, columns=columns):
        n = meta.read_count(doc)
        while i < len(pending) and pending[i][0] <= n:
            first, last, e = pending[i]
            if last >= n:
                open_chunks.append((last, ChunkInput(e)))
            else:  # a range that ended before it began (reported by tiling_problems), or behind the reading point
                yield ChunkInput(e)
            i += 1
        holders = [c for last, c in open_chunks if last >= n]
        for c in holders:
            c.docs.append(doc)
        if not holders:
            gap.docs.append(doc)
            if len(gap.docs) >= GAP_BATCH:
                yield gap
                gap = ChunkInput(None)
        elif gap.docs:
            yield gap
            gap = ChunkInput(None)
        done = [c for last, c in open_chunks if last <= n]
        open_chunks = [(last, c) for last, c in open_chunks if last > n]
        yield from done
    if gap.docs:
        yield gap
    yield from (c for _, c in open_chunks)  # ranges past the end of the input: what the input had of them
    for _, _, e in pending[i:]:
        yield ChunkInput(e)  # ranges that start past the end of the input
