"""`finephrase verify DIR`: prove that every (input document, prompt) has exactly one row in outputs or rejects.

A rephrase run is checked task by task and, within a task, chunk by chunk (chunks.py): the task's input is read
once (ids only, with the run's own reader, sharding and limit); the ranges of its ledger lines must tile it; and
each chunk's files must hold exactly the ids of its own range, once per prompt in rows or rejects, or be filtered.
Memory is bounded by a chunk. Missing ids, duplicated ids, ids out of their chunk's range, gaps and overlaps
between ranges, files that no ledger line commits, tasks that have not finished and changed inputs are all
reported; any of them makes the exit code non-zero.

Each task's verdict is recorded in DIR/.verify/ (verdicts.py) and reused while its ledger and committed files are
unchanged, so `--rank R --tasks N` shares of an array job (run.py) and a later plain verify, card or publish
merge them instead of re-reading everything. `--workers K` checks tasks in K processes.

A dedup output (`finephrase dedup RUN --output DIR`, dedup.py) is checked against its manifest's `dedup` record,
a compacted folder against its plan and the original inputs (finephrase/verify/compacted.py), both bucket by bucket
of ids (buckets.py) and with one verdict for the folder (folders.py). A mix or any other folder is refused with
one line.

Modules: report (Report, Tally, check_ids) <- chunks, buckets, verdicts <- run, dedup, folders <- render, here.
"""

from __future__ import annotations

from finephrase.verify.check import verify
from finephrase.verify.dedup import verify_dedup
from finephrase.verify.render import main, render
from finephrase.verify.report import Report, Tally, check_ids, examples
from finephrase.verify.run import verify_run

__all__ = ["Report", "Tally", "check_ids", "examples", "main", "render", "verify", "verify_dedup", "verify_run"]
