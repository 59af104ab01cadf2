"""The quality gate as a pipeline step: after `Rephrase`, it decides which generations are published.

It has datatrove's filter shape (`filter(doc) -> True | (False, reason)`), and what it refuses becomes a reject
with that reason (it marks, see marking.py: nothing is dropped). The checks themselves are
`finephrase.quality.gate.QualityGate` (generic checks, non-answers, the template's `[check]`); give another gate to
change them:

    QualityFilter(QualityGate(min_words=20))
"""

from __future__ import annotations

from dataclasses import asdict

from datatrove.data import Document

from finephrase.pipeline.filters.marking import MarkingFilter
from finephrase.quality.gate import QualityGate
from finephrase.store import metadata as meta


class QualityFilter(MarkingFilter):
    name = "✅ Quality gate"

    def __init__(self, gate: QualityGate | None = None):
        super().__init__()
        self.gate = gate or QualityGate()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not meta.is_generation(doc):
            return True  # a source document refused before rephrasing: nothing to check
        m = doc.metadata
        reason = self.gate.check(doc.text, m.get(meta.FIELDS, {}).get("finish_reason"), prompt=m.get(meta.TEMPLATE),
                                 source=m.get(meta.SOURCE_TEXT))
        return (False, reason) if reason else True

    def fingerprint(self) -> dict:
        """The gate's settings where they differ from the defaults (runs with the default gate keep the
        fingerprint they had before the gate was a step)."""
        default = asdict(QualityGate())
        return {k: v for k, v in asdict(self.gate).items() if default.get(k) != v}
