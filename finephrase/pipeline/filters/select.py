"""Source selection: which documents get rephrased (the paper's third axis).

`Select` runs datatrove filters (LambdaFilter, any BaseFilter) but does not drop what they refuse: it marks the
document (`meta.FILTERED = reason`, see marking.py), so the writer records its id under `DIR/filtered/`
and `finephrase verify` can account for every input document. Put it between the reader and `Rephrase`.

Helpers build the usual conditions: `where("int_score >= 4")`, `language_is("en")`, `length_between(...)`,
`sample(rate, seed)` (hash-based, so a resumed task makes the same choices) and `TokenBudget` (stop selecting
once this task's share of a token budget is reached).
"""

from __future__ import annotations

import hashlib
import operator
import re

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.lambda_filter import LambdaFilter

from finephrase.errors import UsageError
from finephrase.pipeline.filters.marking import refusal_reason
from finephrase.store import metadata as meta

_OPS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
        ">": operator.gt, "<": operator.lt}
_COND = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|!=|==|=|>|<)\s*([^<>=!\s].*?)\s*$")


def _literal(raw: str):
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


class NamedFilter(LambdaFilter):
    """A LambdaFilter whose refusals carry a readable reason. `setting`: the run setting it stands for (e.g.
    {"where": ["int_score >= 4"]}), which goes into the run's fingerprint under `selection` instead of its name."""

    def __init__(self, fn, reason: str, setting: dict | None = None):
        super().__init__(fn)
        self.reason = reason
        self.name = f"🔻 {reason}"
        self.setting = setting or {}

    def filter(self, doc: Document):
        return True if super().filter(doc) else (False, self.reason)


def where(condition: str) -> NamedFilter:
    """`COLUMN OP VALUE`, e.g. `int_score >= 4`, `language == en`. A document without the column is refused."""
    m = _COND.match(condition)
    if not m:
        raise UsageError(f"cannot read condition '{condition}': use COLUMN OP VALUE, e.g. 'int_score >= 4'")
    column, op, value = m.group(1), _OPS[m.group(2)], _literal(m.group(3))

    def fn(doc: Document) -> bool:
        v = doc.metadata.get(column)
        if v is None:
            return False
        try:
            return bool(op(v, value))
        except TypeError:
            return bool(op(str(v), str(value)))

    return NamedFilter(fn, f"where:{column}{m.group(2)}{m.group(3)}", {"where": [condition]})


def language_is(*languages: str, column: str = "language") -> NamedFilter:
    wanted = set(languages)
    return NamedFilter(lambda doc: doc.metadata.get(column) in wanted, f"language:{'|'.join(sorted(wanted))}",
                       {"languages": list(languages)})


def length_between(min_chars: int | None = None, max_chars: int | None = None) -> NamedFilter:
    lo, hi = min_chars or 0, max_chars if max_chars is not None else float("inf")
    return NamedFilter(lambda doc: lo <= len(doc.text) <= hi, f"length:{min_chars or 0}-{max_chars or 'inf'}",
                       {"min_chars": min_chars, "max_chars": max_chars})


def _unit_hash(seed: int, key: str) -> float:
    h = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def sample(rate: float, seed: int = 0) -> NamedFilter:
    """Keep a `rate` share of documents, chosen by a hash of (seed, id): stable across restarts and task counts
    (datatrove's SamplerFilter draws from a sequential RNG, which a resumed task would not replay)."""
    if not 0 < rate <= 1:
        raise UsageError(f"--sample-rate must be in (0, 1], got {rate}")
    return NamedFilter(lambda doc: _unit_hash(seed, doc.id) < rate, f"sample:{rate}", {"sample_rate": rate})


def doc_tokens(doc: Document) -> int:
    """Source tokens of a document: its `token_count` column when present, else ~4 bytes per token."""
    tc = doc.metadata.get("token_count")
    if isinstance(tc, int) and not isinstance(tc, bool) and tc >= 0:
        return tc
    return len(doc.text.encode("utf-8")) // 4


def is_pending(doc: Document) -> bool:
    return not meta.is_marked(doc)


class Select(PipelineStep):
    name = "🎯 Select"
    type = "🔻 - FILTER"

    def __init__(self, *filters: BaseFilter):
        super().__init__()
        self.filters = list(filters)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            if is_pending(doc):
                for f in self.filters:
                    if (reason := refusal_reason(f, f.filter(doc))) is not None:
                        doc.metadata[meta.FILTERED] = reason
                        self.stat_update(f"filtered_{reason}")
                        break
                else:
                    self.stat_update("selected")
            yield doc


class TokenBudget(PipelineStep):
    """Select documents until this task's share (budget / tasks) of source tokens is reached; later documents
    are marked `over_budget`. The count restarts from the ledger when a task resumes. Combine with
    `sample(rate, seed)` before it for a seeded random sample of the budget."""

    name = "💰 Token budget"
    type = "🔻 - FILTER"

    def __init__(self, budget: int, resume_dir: str | None = None):
        super().__init__()
        if budget <= 0:
            raise UsageError("--token-budget must be positive")
        self.budget = budget
        self.resume_dir = resume_dir

    def resuming(self, resume_dir: str) -> "TokenBudget":
        """A new budget like this one whose count restarts from `resume_dir`'s ledger (this one is not changed)."""
        return type(self)(self.budget, resume_dir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        share = self.budget / world_size
        used = 0
        if self.resume_dir:
            from finephrase.store.ledger import Ledger

            used = sum(e.get("selected_tokens", 0) for e in Ledger(self.resume_dir, rank).read().entries)
        for doc in data:
            if is_pending(doc):
                if used >= share:
                    doc.metadata[meta.FILTERED] = "over_budget"
                    self.stat_update("filtered_over_budget")
                else:
                    used += doc_tokens(doc)
            yield doc
