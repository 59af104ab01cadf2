"""`ScoreFilter`: keep the documents whose score (`score_<name>`, written by `ScoreAnnotator`) lies within
[min, max].

A datatrove filter: `filter(doc)` is True or (False, reason), the reason saying which bound the score missed
(`score_dclm < 0.018112`, `score_edu > 5`). A document without the score is refused too, with the reason
`score_<name> missing` (a score that is not a number: `score_<name> not a number`): a filter placed before its
annotator, or a misspelt name, must never let everything through silently. As any plain datatrove filter, it
drops what it refuses (and gives it to its `exclusion_writer` with `filter_reason`); in a finephrase pipeline,
`finephrase.run.run` wraps it in `Accounted`, which marks the refused documents instead, so every one is
accounted for (pipeline/filters/marking.py).

    [..., ScoreAnnotator(["dclm=fasttext:models/dclm.bin"]), ScoreFilter("dclm", min=0.018112), ...]
"""

from __future__ import annotations

import math
from numbers import Real

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from finephrase.errors import UsageError
from finephrase.scoring import check_name


def _bound(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
        raise UsageError(f"ScoreFilter {what} must be a number, not {value!r}")
    return value


class ScoreFilter(BaseFilter):
    def __init__(self, name: str, min: float | None = None, max: float | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.score = check_name(name, "ScoreFilter score name")
        self.column = f"score_{name}"
        self.min, self.max = _bound(min, "min"), _bound(max, "max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise UsageError(f"ScoreFilter {name}: min {self.min} is above max {self.max}")
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        self.name = f"🔻 {self.column} in [{lo}, {hi}]"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        value = doc.metadata.get(self.column)
        if value is None:
            return False, f"{self.column} missing"
        if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
            return False, f"{self.column} not a number"
        if self.min is not None and value < self.min:
            return False, f"{self.column} < {self.min}"
        if self.max is not None and value > self.max:
            return False, f"{self.column} > {self.max}"
        return True

    def fingerprint(self) -> dict:
        """What decides its refusals (the run's fingerprint notices a changed bound)."""
        return {"score": self.score, "min": self.min, "max": self.max}
