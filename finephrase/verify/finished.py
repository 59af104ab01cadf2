"""Is DIR a finished run (or a consistent dedup output) that card, publish and compact may read: one answer for
all of them. A run must be marked finished in its manifest and pass `finephrase verify` (which reuses the tasks'
recorded verdicts), or, without verify, have every task's `finished` ledger line; a dedup output's files must
hold the rows its manifest says were kept and removed."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import FinephraseError, UsageError
from finephrase.store.datafiles import parquet_files, rows_in, split_empty
from finephrase.store.folders import load_manifest
from finephrase.store.layout import MANIFEST


def load_run_manifest(root: Path) -> dict:
    """The manifest of a run or dedup output (one-line errors for a missing or unreadable one, or one that lists
    no prompts)."""
    m = load_manifest(root)
    if not m["config"].get("prompts"):
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config with prompts)")
    return m


def _rows_in(folder: Path) -> int:
    return rows_in(split_empty(parquet_files(folder))[0])


def check_finished(root: Path, manifest: dict, verify: bool = True) -> None:
    """Refuse (one line) anything but a finished run that passes verify, or a consistent dedup output. Verify
    reuses the tasks' verdicts recorded in DIR/.verify/ while what they covered is unchanged (after an array
    verify it re-reads nothing) and checks the others again, so a run changed since is never passed."""
    status = manifest.get("status")
    dedup = manifest.get("dedup")
    if status != "finished" and not (dedup and status is None):
        raise UsageError(f"{root} is not a finished run (manifest status: {status}): finish or resume it first "
                         f"(`finephrase status {root}`)")
    prompts = list(manifest["config"]["prompts"])
    if dedup:
        kept = dedup.get("kept") or {}
        removed = dedup.get("removed") or {}
        for p in prompts:
            n = _rows_in(root / p)
            if p in kept and kept[p] != n:
                raise UsageError(f"{root}: {p}/ holds {n} rows but the dedup manifest says {kept[p]} were kept: "
                                 f"an unfinished or altered dedup output")
            if (root / "removed" / p).is_dir() and p in removed:
                r = _rows_in(root / "removed" / p)
                want = sum(v for v in removed[p].values() if isinstance(v, int)) \
                    if isinstance(removed[p], dict) else removed[p]
                if r != want:
                    raise UsageError(f"{root}: removed/{p}/ holds {r} rows but the dedup manifest says {want} were "
                                     f"removed: an unfinished or altered dedup output")
        return
    if verify:
        from finephrase.verify.check import verify as run_verify

        try:
            report = run_verify(root)
        except FinephraseError:
            raise
        except Exception as e:
            raise UsageError(f"cannot verify {root} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                             f"run this from the folder the run was started in (relative inputs), or pass "
                             f"--no-verify") from None
        if not report.ok:
            raise UsageError(f"{root} does not pass `finephrase verify` ({len(report.problems)} problem(s); first: "
                             f"{report.problems[0]}): resume or repair the run first")
    else:
        from finephrase.store.ledger import all_ledgers

        tasks = int(manifest["config"].get("tasks", 1))
        done = sum(1 for s in all_ledgers(root).values() if s.finished)
        if done != tasks:
            raise UsageError(f"{root}: {done} of {tasks} tasks have finished: finish or resume the run first")
