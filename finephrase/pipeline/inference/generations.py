"""What Rephrase passes downstream: one document per (source document, prompt), grouped in chunks.

A generation document has the id `<source id>/<prompt>` and the parsed generation as its text. Its metadata
carries what the gate and the writer need, under the keys finephrase/store/metadata.py owns (the prompt and its
template, the source text the model was given, the row's provenance and fields, the raw generation, a reject
reason when it is already refused, its chunk; the chunk's last document also says what the chunk is).

Source documents refused before Rephrase (`meta.FILTERED`) are passed on as they are, in their chunk.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from datatrove.data import Document

from finephrase.errors import FinephraseError
from finephrase.prompts.templates import PromptTemplate
from finephrase.serving.truncation import TRUNCATION_KEYS, Fitted
from finephrase.store import metadata as meta
from finephrase.store.ledger import LedgerState
from finephrase.store.schema import passthrough


def generation(doc: Document, prompt: PromptTemplate, text: str = "", *, reject: str | None = None,
               detail: str | None = None, raw: str | None = None, source_text: str | None = None,
               **fields) -> Document:
    """The generation document of (doc, prompt): `text` published unless `reject` (or a later step) refuses it."""
    metadata = {
        meta.PROMPT: prompt.name,
        meta.TEMPLATE: prompt,
        meta.SOURCE_TEXT: source_text,
        meta.BASE: {"source_id": doc.id, "prompt": prompt.name, "prompt_hash": prompt.hash,
                     **passthrough(doc.metadata)},
        meta.FIELDS: fields,
        meta.RAW: raw,
    }
    if reject:
        metadata[meta.REJECTED] = reject
        metadata[meta.REJECT_DETAIL] = detail
    return Document(text=text, id=f"{doc.id}/{prompt.name}", metadata=metadata)


@dataclass
class Chunk:
    """A contiguous range of the task's input, documents first..pos["read"] (reading order, from 1), and what
    came of them so far."""

    index: int
    first: int | None = None
    docs: int = 0
    pending: int = 0  # (document, prompt) requests not finished
    closed: bool = False
    pos: dict | None = None
    out: list[Document] = field(default_factory=list)  # what goes downstream, in the order it finished
    selected_tokens: int = 0
    failed: bool = False  # a (document, prompt) of it ended without a generation: never pass it on
    # its documents given to the model, and those cut to the context: how many, their characters and those kept
    truncation: dict = field(default_factory=lambda: dict.fromkeys(TRUNCATION_KEYS, 0))
    # attempts discarded to regeneration, per prompt, and their tokens (generated, prompt, cached)
    retries: dict = field(default_factory=meta.no_retries)

    @property
    def complete(self) -> bool:
        return self.closed and self.pending == 0 and not self.failed

    def add(self, doc: Document):
        doc.metadata[meta.CHUNK] = self.index
        self.out.append(doc)

    def fitted(self, source: str, fitted: Fitted):
        """Count one document given to the model (once, whatever the number of prompts), cut or not."""
        t = self.truncation
        t["fitted_docs"] += 1
        if fitted.truncated:
            t["truncated_docs"] += 1
            t["truncated_chars"] += len(source)
            t["truncated_chars_kept"] += len(fitted.text)

    def retried(self, prompt: str, fields: dict):
        """Count one attempt of `prompt` discarded for a new one (its tokens were spent all the same)."""
        r = self.retries
        r["attempts"][prompt] = r["attempts"].get(prompt, 0) + 1
        for key in ("input_tokens", "cached_tokens", "output_tokens"):
            r[key] += fields.get(key) or 0

    def finish(self, prompts: list[str], in_flight: float | None) -> list[Document]:
        """The chunk's documents, the last one saying what the chunk is (the writer checks and commits it)."""
        self.out[-1].metadata[meta.CHUNK_END] = {
            "first": self.first, "pos": self.pos, "docs": self.docs, "units": len(self.out), "prompts": prompts,
            "selected_tokens": self.selected_tokens, "in_flight": in_flight, "truncation": dict(self.truncation),
            "retries": self.retries}
        return self.out

    def reject_reasons(self) -> list[str]:
        """The reason of each refused generation (read after the gate steps ran)."""
        return [d.metadata[meta.REJECTED] for d in self.out
                if meta.is_generation(d) and meta.REJECTED in d.metadata]


class ResumeCheck:
    """A resumed task must get only documents outside the committed ranges: one inside would be a duplicate row
    (a reader that did not resume, or resumed from another ledger)."""

    def __init__(self, state: LedgerState):
        self.ranges = state.ranges()
        self.firsts = [r[0] for r in self.ranges]

    def between(self, a: int, b: int) -> bool:
        """Whether a committed range lies between documents #a and #b (the reader skipped it)."""
        i = bisect.bisect_right(self.firsts, a)
        return i < len(self.firsts) and self.firsts[i] < b

    def check(self, read: int):
        i = bisect.bisect_right(self.firsts, read) - 1
        if i >= 0 and read <= self.ranges[i][1]:
            first, last, _ = self.ranges[i]
            raise FinephraseError(
                f"the reader did not resume around the committed chunks (document #{read} is in committed range "
                f"#{first}-#{last}): give ResumableReader resume_dir=<the output folder>, or this would duplicate "
                f"rows")
