"""Checking one unit of work (plan.py) in memory bounded by a chunk: a run task's committed chunks, each against the
sources of that chunk only; files without ledger ranges in batches; or files without their sources."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from finephrase.errors import FinephraseError
from finephrase.quality.recheck.plan import FALLBACK_ROWS, Unit, input_columns, make_reader, task_files
from finephrase.quality.recheck.tally import Tally
from finephrase.store.hub_limits import folder_of

ROW_COLUMNS = ["source_id", "text", "finish_reason"]
BATCH_ROWS = 4096  # rows of a data file read at once


class Checker:
    """One process's gate, templates and input reader for a folder (built once per process)."""

    def __init__(self, root: Path, cfg: dict, use_source: bool, examples: int):
        from finephrase.prompts.library import template_now
        from finephrase.quality.gate import QualityGate
        from finephrase.store.layout import read_manifest

        self.root, self.cfg, self.use_source, self.examples = root, cfg, use_source, examples
        self.prompts = list(cfg["prompts"])
        manifest = read_manifest(root)
        self.templates = {n: template_now(n, manifest) for n in self.prompts}
        self.gate = QualityGate()
        self.tasks = int(cfg.get("tasks", 1))
        self.reader = make_reader(cfg) if use_source else None

    def check_unit(self, unit: Unit) -> Tally:
        tally = Tally(self.prompts, self.examples)
        if unit.rank is not None:
            self._check_task(tally, unit.rank)
        elif unit.lookup and self.use_source:
            self._check_by_lookup(tally, list(unit.files), list(range(self.tasks)))
        else:
            for f in unit.files:
                self.check_file(tally, f, None)
        return tally

    def check_file(self, tally: Tally, rel: str, sources: dict | None):
        """Gate-check the rows of one data file (`prompt/NAME.parquet`), read in batches."""
        import pyarrow.parquet as pq

        prompt, name = folder_of(rel), rel.rsplit("/", 1)[-1]
        template, check = self.templates[prompt], self.gate.check
        row = 0
        for batch in pq.ParquetFile(self.root / rel).iter_batches(batch_size=BATCH_ROWS, columns=ROW_COLUMNS):
            ids, texts, reasons = (batch.column(c).to_pylist() for c in ROW_COLUMNS)
            for i, (sid, text, finish) in enumerate(zip(ids, texts, reasons)):
                src = sources.get(sid) if sources else None
                reason = check(text or "", finish, prompt=template, source=src)
                if reason:
                    tally.reject(prompt, (name, row + i), text, reason)
            tally.count(prompt, len(ids))
            row += len(ids)

    # -- a run task ----------------------------------------------------------------------------------------------

    def _check_task(self, tally: Tally, rank: int):
        from finephrase.store.ledger import Ledger

        entries = Ledger(self.root, rank).read().entries
        mine, odd = task_files(self.root, self.prompts, rank, self.tasks)
        if not self.use_source:
            for f in mine + odd:
                self.check_file(tally, f, None)
            return
        on_disk, done = set(mine), set()
        for chunk in self._chunks(rank, entries):
            files = [f for f in chunk.entry.get("files", []) if f in on_disk and f not in done]
            if files:
                sources = {d.id: d.text for d in chunk.docs}
                for f in files:
                    self.check_file(tally, f, sources)
                done.update(files)
        self._check_by_lookup(tally, [f for f in mine if f not in done], [rank])
        self._check_by_lookup(tally, odd, list(range(self.tasks)))

    def _chunks(self, rank: int, entries: list[dict]) -> Iterator:
        """The committed chunks of task `rank`, each with its input documents (gaps left out)."""
        from finephrase.store.task_ranges import iter_chunk_inputs

        if not entries:
            return
        chunks = iter_chunk_inputs(self.reader, rank, self.tasks, entries, columns=input_columns(self.cfg))
        yield from (c for c in _reading(chunks, f"task {rank}") if c.entry is not None)

    # -- files without ledger ranges -----------------------------------------------------------------------------

    def _check_by_lookup(self, tally: Tally, files: list[str], ranks: list[int]):
        """Check files whose rows have no chunk range: in batches of at most FALLBACK_ROWS rows, each with one pass
        over the inputs of `ranks` that keeps the texts of the batch's source ids only."""
        from finephrase.store.datafiles import num_rows

        batch, rows = [], 0
        for f in files:
            n = num_rows(self.root / f)
            if batch and rows + n > FALLBACK_ROWS:
                self._lookup_batch(tally, batch, ranks)
                batch, rows = [], 0
            batch.append(f)
            rows += n
        if batch:
            self._lookup_batch(tally, batch, ranks)

    def _lookup_batch(self, tally: Tally, files: list[str], ranks: list[int]):
        import pyarrow.parquet as pq

        wanted = set()
        for f in files:
            wanted.update(pq.read_table(self.root / f, columns=["source_id"]).column(0).to_pylist())
        sources = {}
        for r in ranks:
            docs = self.reader.iter_documents(r, self.tasks, columns=input_columns(self.cfg))
            for doc in _reading(docs, f"task {r}"):
                if doc.id in wanted:
                    sources[doc.id] = doc.text
        for f in files:
            self.check_file(tally, f, sources)


def _reading(items: Iterable, what: str) -> Iterator:
    """`items` (read from the run's inputs), with a failure to read them as one line."""
    try:
        yield from items
    except FinephraseError:
        raise
    except Exception as e:
        raise FinephraseError(f"reading the inputs of {what} failed ({type(e).__name__}: {e}): make them readable "
                              f"again, or re-check without the copy and off-topic checks (--no-source)") from None


_CHECKERS: dict[tuple, Checker] = {}


def check_unit(root: str, cfg: dict, use_source: bool, examples: int, unit: Unit) -> Tally:
    """One unit, in this process (a worker keeps its Checker for the next unit)."""
    key = (root, use_source, examples)
    if key not in _CHECKERS:
        _CHECKERS.clear()
        _CHECKERS[key] = Checker(Path(root), cfg, use_source, examples)
    return _CHECKERS[key].check_unit(unit)
