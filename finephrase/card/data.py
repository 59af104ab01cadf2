"""Reading DIR: its manifest (which must list the run's prompts), its parquet files, and the check that it is a
finished run that passes `finephrase verify` (or a dedup output whose manifest's counts match its files)."""

from __future__ import annotations

from pathlib import Path

from finephrase import datafiles
from finephrase.errors import FinephraseError, UsageError
from finephrase.layout import ALL_CONFIG, FILTERED, MANIFEST, REJECTS, REMOVED

RESERVED_CONFIGS = (ALL_CONFIG, REJECTS, FILTERED, REMOVED)  # the configs the card adds beside the prompts


def load_manifest(root: Path) -> dict:
    """The run's manifest (status.load_manifest: one-line errors for a missing or unreadable one), which must
    list the run's prompts."""
    from finephrase import status

    m = status.load_manifest(root)
    if not m["config"].get("prompts"):
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config with prompts)")
    return m


def prompt_names(manifest: dict) -> list[str]:
    names = list(manifest["config"]["prompts"])
    clash = [n for n in names if n in RESERVED_CONFIGS]
    if clash:
        raise UsageError(f"prompt name '{clash[0]}' clashes with a config the card adds ({', '.join(RESERVED_CONFIGS)})"
                         f": rename the prompt")
    return names


def row_files(d: Path) -> list[Path]:
    """The parquet files of a folder that hold rows: a run's RRRRR_CCCCCC.parquet, a dedup output's RRRRR.parquet
    and removed/<prompt>/{exact,near}_RRRRR.parquet. Never a file being written (hidden: `.NAME.tmp`), nor an empty
    file of an older run (`datasets` refuses those; publish leaves them out too)."""
    return datafiles.split_empty(datafiles.parquet_files(d))[0]


def num_rows(paths) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def check_finished(root: Path, manifest: dict, verify: bool = True) -> None:
    """Refuse (one line) anything but a finished run that passes verify, or a consistent dedup output. Verify
    reuses the tasks' verdicts recorded in DIR/.verify/ while what they covered is unchanged (after an array
    verify it re-reads nothing) and checks the others again, so a run changed since is never passed."""
    status = manifest.get("status")
    dedup = manifest.get("dedup")
    if status != "finished" and not (dedup and status is None):
        raise UsageError(f"{root} is not a finished run (manifest status: {status}): finish or resume it first "
                         f"(`finephrase status {root}`)")
    prompts = prompt_names(manifest)
    if dedup:
        kept = dedup.get("kept") or {}
        removed = dedup.get("removed") or {}
        for p in prompts:
            n = num_rows(row_files(root / p))
            if p in kept and kept[p] != n:
                raise UsageError(f"{root}: {p}/ holds {n} rows but the dedup manifest says {kept[p]} were kept: "
                                 f"an unfinished or altered dedup output")
            if (root / "removed" / p).is_dir() and p in removed:
                r = num_rows(row_files(root / "removed" / p))
                want = sum(v for v in removed[p].values() if isinstance(v, int)) \
                    if isinstance(removed[p], dict) else removed[p]
                if r != want:
                    raise UsageError(f"{root}: removed/{p}/ holds {r} rows but the dedup manifest says {want} were "
                                     f"removed: an unfinished or altered dedup output")
        return
    if verify:
        from finephrase.verify import verify as run_verify

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
        from finephrase.ledger import all_ledgers

        tasks = int(manifest["config"].get("tasks", 1))
        done = sum(1 for s in all_ledgers(root).values() if s.finished)
        if done != tasks:
            raise UsageError(f"{root}: {done} of {tasks} tasks have finished: finish or resume the run first")


def extras_root(root: Path, manifest: dict) -> tuple[Path | None, str]:
    """Where the rejects and filtered files are: DIR; for a dedup output without them, its source run (when
    that folder is still there), else nowhere (the manifest's counts are used)."""
    dedup = manifest.get("dedup")
    if not dedup or (root / "rejects").is_dir() or (root / "filtered").is_dir():
        return root, "here"
    src = Path(dedup.get("source") or "")
    if dedup.get("source") and (src / MANIFEST).is_file():
        return src, "source"
    return None, "manifest"

