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
a compacted folder against its plan and the original inputs (finephrase/compact/verify.py), both bucket by bucket
of ids (buckets.py) and with one verdict for the folder (folders.py). A mix or any other folder is refused with
one line.

Modules: report (Report, Tally, check_ids) <- chunks, buckets, verdicts <- run, dedup, folders <- render, here.
"""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import UsageError
from finephrase.layout import MANIFEST
from finephrase.status import folder_kind, load_manifest, refuse_folder
from finephrase.verify.dedup import verify_dedup
from finephrase.verify.folders import verify_folder
from finephrase.verify.render import main, render
from finephrase.verify.report import Report, Tally, check_ids, examples
from finephrase.verify.run import verify_run

__all__ = ["Report", "Tally", "check_ids", "examples", "main", "render", "verify", "verify_dedup", "verify_run"]


def verify(output_dir: str | Path, share: tuple[int, int] | None = None, workers: int = 1,
           fresh: bool = False) -> Report:
    """Check a rephrase run or a dedup output (see the module's docstring); a UsageError for any other folder.
    `share` (R, N): only the run's tasks R, R+N, ...; `fresh`: ignore recorded verdicts."""
    root = Path(output_dir)
    kind = folder_kind(root)
    manifest = _compacted(root) if kind in ("run", "dedup") else None
    if share is not None and (manifest or kind != "run"):
        raise UsageError(f"--rank/--tasks split a rephrase run's tasks; {root} is a "
                         f"{'compacted folder' if manifest else kind}: verify it without them")
    if manifest:
        from finephrase.compact.verify import verify_compacted

        return verify_folder(root, manifest, lambda: verify_compacted(root, manifest), fresh)
    if kind == "dedup":
        return verify_folder(root, load_manifest(root), lambda: verify_dedup(root), fresh)
    if kind != "run":
        raise refuse_folder(root, kind, "verify", "rephrase runs and dedup outputs")
    return verify_run(root, share, workers, fresh)


def _compacted(root: Path) -> dict | None:
    """The manifest of a compacted folder (`finephrase compact`), else None."""
    manifest = load_manifest(root) if (root / MANIFEST).is_file() else {}
    return manifest if manifest.get("compacted") else None
