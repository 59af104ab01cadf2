"""Filters that mark instead of drop, so every document is accounted for by id.

A datatrove filter drops what it refuses: the document never reaches the writer, and `finephrase verify` would
report it missing. In a finephrase pipeline a refused document is *marked* and travels on:

- before `Rephrase` (a source document): `meta.FILTERED = reason`; the writer lists its id under `DIR/filtered/`
  and it is not rephrased;
- after `Rephrase` (a generation, one per document and prompt): `meta.REJECTED = reason`; the writer puts it under
  `DIR/rejects/<prompt>/` instead of `DIR/<prompt>/`.

`MarkingFilter` is the base class of finephrase's own filters (`QualityFilter`); `Accounted(f)` gives any
datatrove `BaseFilter` this behaviour, keeping its `exclusion_writer`. `finephrase.run.run` wraps every plain
datatrove filter of a pipeline in `Accounted` for you. A document already marked by an earlier step is passed on
untouched (its first reason stands).
"""

from __future__ import annotations

import contextlib

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result

from finephrase.store import metadata as meta


def refusal_reason(f: BaseFilter, result) -> str | None:
    """None when `f` keeps the document, else the reason: the one it returned, else the filter's name."""
    keep, reason = get_filter_result(result)
    if keep:
        return None
    return reason or getattr(f, "name", None) or type(f).__name__


def mark_refused(step: PipelineStep, f: BaseFilter, data: DocumentsPipeline, rank: int) -> DocumentsPipeline:
    """Run filter `f` over `data` as step `step`: refused documents are marked (and given to `f`'s exclusion
    writer, if it has one), and every document goes downstream."""
    exclusion = getattr(f, "exclusion_writer", None)
    with exclusion if exclusion else contextlib.nullcontext() as writer:
        for doc in data:
            if not meta.is_marked(doc):
                reason = refusal_reason(f, f.filter(doc))
                if reason is None:
                    step.stat_update("kept")
                else:
                    step.stat_update(f"refused_{reason}")
                    if writer:
                        writer.write(_excluded_copy(doc, reason), rank)
                    meta.mark(doc, reason)
            yield doc


def _excluded_copy(doc: Document, reason: str) -> Document:
    """What an exclusion writer gets: datatrove's `filter_reason`, without finephrase's own bookkeeping."""
    metadata = meta.without_own_keys(doc.metadata)
    return Document(text=doc.text, id=doc.id, metadata={**metadata, "filter_reason": reason})


class MarkingFilter(BaseFilter):
    """A datatrove-shaped filter (`filter(doc) -> bool | (False, reason)`) whose refusals are marked, not
    dropped."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from mark_refused(self, self, data, rank)


class Accounted(PipelineStep):
    """Any datatrove filter, run so that what it refuses is marked (and so accounted for) instead of dropped."""

    type = "🔻 - FILTER"

    def __init__(self, inner: BaseFilter):
        super().__init__()
        if not isinstance(inner, BaseFilter):
            raise TypeError(f"Accounted takes a datatrove BaseFilter, not {type(inner).__name__}")
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        yield from mark_refused(self, self.inner, data, rank)
