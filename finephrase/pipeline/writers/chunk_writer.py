"""ChunkWriter: the last step of a rephrasing pipeline. It commits the run's output chunk by chunk through the
ledger (finephrase/store/ledger.py), exactly once.

What it gets, chunk after chunk (Rephrase forms the chunks and passes each one on whole, the last document
carrying `meta.CHUNK_END`):

- generations (`meta.PROMPT` set): a published row of `DIR/<prompt>/`, or, when a step marked it `meta.REJECTED`, a
  row of `DIR/rejects/<prompt>/`;
- source documents marked `meta.FILTERED` by a step before Rephrase: their ids go to `DIR/filtered/`.

Each chunk becomes one parquet file per folder and one ledger line; the ledger line is the commit point. The
writer owns the task: it takes the task's lock, repairs the ledger and deletes files no ledger line commits
before anything is read, and marks the task finished when its input is done. A chunk whose documents do not add
up (a step between Rephrase and the writer dropped or added some) is never committed: the task stops with one
line instead of losing rows.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from finephrase.errors import FinephraseError, UsageError
from finephrase.store import metadata as meta
from finephrase.store.layout import FILTERED, LOGS, REJECTS
from finephrase.store.ledger import Ledger, TaskLock
from finephrase.store.schema import FILTERED_SCHEMA, OUTPUT_SCHEMA, REJECT_SCHEMA


def published_row(doc: Document) -> dict:
    m = doc.metadata
    return {"id": doc.id, **m[meta.BASE], "text": doc.text, **m[meta.FIELDS]}


def reject_row(doc: Document) -> dict:
    m = doc.metadata
    fields = {k: v for k, v in m[meta.FIELDS].items() if k != "reasoning"}
    return {**m[meta.BASE], "reject_reason": m[meta.REJECTED], "reject_detail": m.get(meta.REJECT_DETAIL),
            **({"text": m[meta.RAW]} if m.get(meta.RAW) is not None else {}), **fields,
            "attempt_reasons": meta.attempt_reasons(doc)}


class _Pending:
    """The chunk being received: its rows per folder and its counts."""

    def __init__(self, index: int):
        self.index = index
        self.rows: dict[str, list[dict]] = {}
        self.filtered: list[dict] = []
        self.documents = 0

    def add(self, doc: Document):
        self.documents += 1
        if not meta.is_generation(doc):
            if meta.FILTERED not in doc.metadata:
                raise FinephraseError(f"document {doc.id} reached the writer without being rephrased: put "
                                      f"ChunkWriter right after Rephrase and its gate")
            self.filtered.append({"source_id": doc.id, "filter_reason": doc.metadata[meta.FILTERED]})
            return
        prompt = doc.metadata[meta.PROMPT]
        if meta.REJECTED in doc.metadata:
            self.rows.setdefault(f"{REJECTS}/{prompt}", []).append(reject_row(doc))
        else:
            self.rows.setdefault(prompt, []).append(published_row(doc))


class ChunkWriter(PipelineStep):
    name = "💾 Chunk writer"
    type = "💽 - WRITER"

    def __init__(self, output_dir: str, chunk_size: int = 1000):
        super().__init__()
        if chunk_size < 1:
            raise UsageError("--chunk-size must be at least 1")
        self.output_dir = str(output_dir)
        self.chunk_size = chunk_size  # Rephrase forms chunks of this many source documents (run() tells it)

    def data_dirs(self) -> list[Path]:
        """Every folder this writer may have written chunk files into."""
        root = Path(self.output_dir)
        if not root.is_dir():
            return []
        dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != LOGS]
        return dirs + [d for d in (root / REJECTS).iterdir() if d.is_dir()] if (root / REJECTS).is_dir() else dirs

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with TaskLock(self.output_dir, rank):
            ledger = Ledger(self.output_dir, rank)
            state = ledger.recover(self.data_dirs())  # before anything upstream reads the ledger
            if state.finished:
                logger.info(f"task {rank}: already finished ({len(state.entries)} chunks committed)")
                return
            totals = self._write(data, ledger)
            ledger.mark_finished(dict(totals))
        if False:  # the last step: nothing goes downstream
            yield

    def _write(self, data: DocumentsPipeline, ledger: Ledger) -> Counter:
        totals: Counter = Counter()
        pending: _Pending | None = None
        for doc in data:
            index = doc.metadata.get(meta.CHUNK)
            if index is None:
                raise FinephraseError(f"document {doc.id} reached the writer without a chunk: ChunkWriter "
                                      f"takes what Rephrase passes on")
            if pending is None:
                pending = _Pending(index)
            elif index != pending.index:
                raise FinephraseError(f"chunk {pending.index} ended without its last document (a step between "
                                      f"Rephrase and ChunkWriter dropped it): nothing of it was committed")
            pending.add(doc)
            if end := doc.metadata.get(meta.CHUNK_END):
                totals.update(self._commit(ledger, pending, end))
                self.stat_update("chunks")
                pending = None
        if pending is not None:
            raise FinephraseError(f"the input ended inside chunk {pending.index} (a step between Rephrase and "
                                  f"ChunkWriter dropped its last document): nothing of it was committed")
        return totals

    def _commit(self, ledger: Ledger, c: _Pending, end: dict) -> Counter:
        prompts = end["prompts"]
        retry = end.get("retries") or meta.no_retries()
        if c.documents != end["units"]:
            raise FinephraseError(f"chunk {c.index} reached the writer with {c.documents} documents, not "
                                  f"{end['units']} (a step between Rephrase and ChunkWriter dropped or added "
                                  f"some): nothing of it was committed")
        tables = {rel: pa.Table.from_pylist(rows, schema=REJECT_SCHEMA if rel.startswith(f"{REJECTS}/")
                                            else OUTPUT_SCHEMA) for rel, rows in c.rows.items()}
        if c.filtered:
            tables[FILTERED] = pa.Table.from_pylist(c.filtered, schema=FILTERED_SCHEMA)
        published = [r for p in prompts for r in c.rows.get(p, [])]
        generations = published + [r for p in prompts for r in c.rows.get(f"{REJECTS}/{p}", [])]
        rows = {p: len(c.rows.get(p, [])) for p in prompts}
        rejects = Counter(f"{p}/{r['reject_reason']}" for p in prompts for r in c.rows.get(f"{REJECTS}/{p}", []))
        entry = {
            "first": end["first"],  # the chunk covers input documents first..pos.read
            "pos": end["pos"],
            "frac": (end["pos"] or {}).get("frac", 0.0),
            "docs": end["docs"],
            "rows": rows,
            "rejects": dict(rejects),
            "filtered": dict(Counter(f["filter_reason"] for f in c.filtered)),
            "selected_tokens": end["selected_tokens"],
            "input_tokens": _sum(published, "input_tokens"),
            "output_tokens": _sum(published, "output_tokens"),
            # everything the model generated, rejected generations and discarded attempts included (what the GPU
            # spent)
            "generated_tokens": _sum(generations, "output_tokens") + retry["output_tokens"],
            # the prefill of every generation, and the part of it the engine served from its cache
            "prompt_tokens": _sum(generations, "input_tokens") + retry["input_tokens"],
            "cached_tokens": _sum(generations, "cached_tokens") + retry["cached_tokens"],
            # regeneration: attempts discarded (per prompt) and what they generated; attempts of published rows
            "retries": retry["attempts"],
            "retry_tokens": retry["output_tokens"],
            "published_attempts": {p: _sum(c.rows.get(p, []), "attempt") for p in prompts},
            "in_flight": end["in_flight"],  # mean requests in flight since the task's previous commit
            # documents given to the model, and those cut to fit the context: their characters and those kept
            **end.get("truncation", {}),
        }
        ledger.commit(c.index, tables, entry)
        counts = Counter(docs=end["docs"], filtered=len(c.filtered), output_tokens=entry["output_tokens"])
        for p in prompts:
            counts[f"rows/{p}"] += rows[p]
            counts[f"rejects/{p}"] += len(c.rows.get(f"{REJECTS}/{p}", []))
        return counts


def _sum(rows: list[dict], key: str) -> int:
    return sum(r.get(key) or 0 for r in rows)
