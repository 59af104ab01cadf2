"""The quality gate: which generations are published and which become rejects (with a reason). Generic checks
here; the non-answer checks in nonanswer.py; the template's own shape check (its `[check]` table) in
formats.py."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"\w+")


@dataclass
class QualityGate:
    """Reject reasons, checked in this order:

    - `length`: generation stopped on the max-tokens limit (truncated output, often a loop);
    - `empty`: nothing left after parsing;
    - `too_short`: fewer than `min_words` words;
    - `repetition`: degenerate output: a large share of duplicate lines, or of the text covered by one repeated
      n-gram (the looping typical of small models);
    - `non_answer:<kind>`, `copy`, `off_topic`, `language` (nonanswer.py), for every template;
    - `format:<what failed>`: the template's `[check]` (formats.py). `formats=False` turns the last two off.
    """

    min_words: int = 3
    max_dup_line_frac: float = 0.4
    min_lines_for_dup_check: int = 5
    ngram: int = 8
    max_top_ngram_frac: float = 0.35
    reject_length: bool = True
    formats: bool = True

    def check(self, text: str, finish_reason: str | None, prompt=None, source: str | None = None) -> str | None:
        """None (publish) or the reject reason. `prompt`: the PromptTemplate (its [check] and instructions);
        `source`: the document text the model was given (for the copy and topic checks)."""
        reason = self._generic(text, finish_reason)
        if reason or not self.formats or prompt is None:
            return reason
        from finephrase.quality.formats import check_format
        from finephrase.quality.nonanswer import check_non_answer

        spec = prompt.check
        return (check_non_answer(text, source, prompt.overhead_text(), spec) or check_format(text, spec))

    def _generic(self, text: str, finish_reason: str | None) -> str | None:
        if self.reject_length and finish_reason == "length":
            return "length"
        if not text.strip():
            return "empty"
        words = _WORD.findall(text.lower())
        if len(words) < self.min_words:
            return "too_short"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(lines) >= self.min_lines_for_dup_check:
            dup = len(lines) - len(set(lines))
            if dup / len(lines) > self.max_dup_line_frac:
                return "repetition"
        if len(words) >= 4 * self.ngram:
            grams = Counter(tuple(words[i : i + self.ngram]) for i in range(len(words) - self.ngram + 1))
            top, count = grams.most_common(1)[0]
            if count > 2 and count * self.ngram / len(words) > self.max_top_ngram_frac:
                return "repetition"
        return None
