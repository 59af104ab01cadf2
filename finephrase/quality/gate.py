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
    - `format:<what failed>`: the template's `[check]` (formats.py);
    - what the shape holds (nonanswer.py): `off_topic:generic_steps`, steps that name nothing of the source;
      `non_answer:evasive`, FAQ answers that put their questions off; `non_answer:answer_not_from_table`, the
      answer after a table naming nothing of it. `formats=False` turns the last three off.
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
        return (check_non_answer(text, source, prompt.overhead_text(), spec) or check_format(text, spec)
                or _content_problem(text, spec, source))

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


def _content_problem(text: str, spec: dict, source: str | None) -> str | None:
    """What the shape holds, once the shape is right: steps about the source, answers that answer."""
    from finephrase.quality import formats, nonanswer

    kind = spec.get("kind")
    if kind == "steps" and source and nonanswer.generic_steps(formats.step_bodies(text)
                                                              or formats.bullet_bodies(text), source):
        return "off_topic:generic_steps"
    if kind == "qa_pairs" and nonanswer.evasive_answers([a for _, a in formats.qa_pairs(text)]):
        return "non_answer:evasive"
    if kind == "markdown_table" and spec.get("qa_after"):
        table = formats.first_table(text)  # (there is one: the format check passed)
        answers = [a for _, a in formats.qa_pairs("\n".join(text.splitlines()[table.end:]), min_answer_words=1)]
        cells = table.header + [c for r in table.rows for c in r]
        if answers and not nonanswer.answer_from_table(answers[0], cells):
            return "non_answer:answer_not_from_table"
    return None

