"""What verify finds and how it is said: the Report, and the Tally that sums the problems of one task (or of a
whole compacted folder) over its parts (chunks, or buckets of ids) into the lines a whole-task check would write.

A part is checked by `check_ids`: the input ids it covers against the ids found in its files. The Tally keeps
counts and the five smallest ids of each kind of problem, never the ids themselves, so its memory does not grow
with the run.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

MAX_EXAMPLES = 5


@dataclass
class Report:
    """The outcome of `finephrase verify`: ok, the problems found (one line each) and the counts checked; `kind`
    is what was checked, "run" or "dedup" (also in stats for --json). `reused` and `checked`: task verdicts taken
    from DIR/.verify and checked now (not part of the report's text)."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    kind: str = "run"
    reused: int = 0
    checked: int = 0

    def problem(self, msg: str):
        self.ok = False
        self.problems.append(msg)


def examples(ids) -> str:
    """The five smallest of `ids`, and how many more there are."""
    ids = sorted(ids)
    more = f" (+{len(ids) - MAX_EXAMPLES} more)" if len(ids) > MAX_EXAMPLES else ""
    return ", ".join(ids[:MAX_EXAMPLES]) + more


class Kind:
    """One kind of problem summed over parts: `n` (what the line counts), `distinct` ids, the smallest ids, and
    the parts (chunks) it was seen in."""

    def __init__(self):
        self.n = 0
        self.distinct = 0
        self.smallest: list[str] = []
        self.parts: list = []
        self.nparts = 0

    def add(self, n: int, ids, part):
        self.n += n
        self.distinct += len(ids)
        self.smallest = heapq.nsmallest(MAX_EXAMPLES, [*self.smallest, *heapq.nsmallest(MAX_EXAMPLES, ids)])
        if part is not None and part not in self.parts:
            self.nparts += 1
            if len(self.parts) < MAX_EXAMPLES:
                self.parts.append(part)

    def examples(self) -> str:
        more = f" (+{self.distinct - MAX_EXAMPLES} more)" if self.distinct > MAX_EXAMPLES else ""
        return ", ".join(self.smallest) + more

    def where(self) -> str:
        """' (chunk 3)', ' (chunks 1, 4)', ' (no chunk)': where it was found; '' for parts without a name."""
        if not self.parts:
            return ""
        names = sorted(self.parts, key=lambda p: (isinstance(p, str), str(p) if isinstance(p, str) else p))
        chunks = [str(p) for p in names if not isinstance(p, str)]
        words = ([f"chunk{'s' if len(chunks) > 1 else ''} {', '.join(chunks)}"] if chunks else []) + \
            [p for p in names if isinstance(p, str)]
        more = f" (+{self.nparts - len(self.parts)} more)" if self.nparts > len(self.parts) else ""
        return f" ({', '.join(words)}{more})"


class Tally:
    """The problems of one scope (`task 3`, or `task all` for a compacted run) over all its parts, as lines in a
    fixed order: committed files missing or unreadable, filtered records out of place, then per prompt ids
    missing, duplicated, out of place, and filtered-and-produced."""

    def __init__(self, scope: str, prompts: list[str], ranged: bool = False):
        self.scope = scope
        self.prompts = prompts
        self.ranged = ranged  # parts are chunks: an id is checked against its chunk's range of the input
        self.kinds: dict[tuple, Kind] = {}
        self.both: dict[str, str] = {}  # prompt -> the smallest id both filtered and produced

    def add(self, key: tuple, n: int, ids, part=None):
        if n:
            self.kinds.setdefault(key, Kind()).add(n, ids, part)

    def lines(self) -> list[str]:
        out, s = [], self.scope
        where = " range of their chunk" if self.ranged else ""
        for key, text in (("files_missing", "committed files are missing"),
                          ("files_unreadable", "committed files cannot be read")):
            if k := self.kinds.get((key,)):
                out.append(f"{s}: {k.n} {text}: {k.examples()}")
        if k := self.kinds.get(("filtered_unknown",)):
            out.append(f"{s}: {k.n} filtered records not in the input{where}{k.where()}: {k.examples()}")
        for p in self.prompts:
            for key, text in (("missing", "documents missing"), ("duplicated", "documents duplicated"),
                              ("unknown", f"ids not in the input{where}")):
                if k := self.kinds.get((key, p)):
                    out.append(f"{s}, prompt {p}: {k.n} {text}{k.where()}: {k.examples()}")
            if p in self.both:
                out.append(f"{s}, prompt {p}: {self.both[p]} is both filtered and produced")
        return out


def check_ids(tally: Tally, expected: Counter, found: dict[str, Counter], part=None):
    """One part: every expected id filtered (found["<filtered>"]), or once per prompt in rows or rejects
    (found[prompt], the two together); nothing else. For a chunk, "the input" is its own range of it."""
    filtered = found.get("<filtered>") or Counter()
    extra_filtered = filtered - expected
    tally.add(("filtered_unknown",), extra_filtered.total(), extra_filtered, part)
    want = expected - filtered
    for p in tally.prompts:
        got = found.get(p) or Counter()
        missing = want - got
        tally.add(("missing", p), missing.total(), missing, part)
        duplicated = [i for i, n in got.items() if n > want.get(i, 0) and i in want]
        tally.add(("duplicated", p), len(duplicated), duplicated, part)
        unknown = [i for i in got if i not in expected]
        tally.add(("unknown", p), len(unknown), unknown, part)
        both = [i for i in got.keys() & filtered.keys() if got[i] + filtered[i] > expected[i]]
        if both:
            tally.both[p] = min([*both, *([tally.both[p]] if p in tally.both else [])])
