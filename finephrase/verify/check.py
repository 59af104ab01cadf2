"""`verify(DIR)`: the check of any folder finephrase writes, by its kind: a rephrase run (verify/run.py), a dedup
or decontaminated output (verify/dedup.py) or a compacted folder (verify/compacted.py), each through its recorded
verdict (verify/folders.py) when nothing it covered changed."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import UsageError
from finephrase.store.folders import folder_kind, load_manifest, refuse_folder
from finephrase.store.layout import MANIFEST
from finephrase.verify.dedup import verify_dedup
from finephrase.verify.folders import verify_folder
from finephrase.verify.report import Report
from finephrase.verify.run import verify_run


def verify(output_dir: str | Path, share: tuple[int, int] | None = None, workers: int = 1,
           fresh: bool = False) -> Report:
    """Check a rephrase run or a dedup output (see the module's docstring); a UsageError for any other folder.
    `share` (R, N): only the run's tasks R, R+N, ...; `fresh`: ignore recorded verdicts."""
    root = Path(output_dir)
    kind = folder_kind(root)
    manifest = _compacted(root) if kind in ("run", "dedup", "decontaminated") else None
    if share is not None and (manifest or kind != "run"):
        raise UsageError(f"--rank/--tasks split a rephrase run's tasks; {root} is a "
                         f"{'compacted folder' if manifest else kind}: verify it without them")
    if manifest:
        from finephrase.verify.compacted import verify_compacted

        return verify_folder(root, manifest, lambda: verify_compacted(root, manifest), fresh)
    if kind in ("dedup", "decontaminated"):
        return verify_folder(root, load_manifest(root), lambda: verify_dedup(root), fresh)
    if kind != "run":
        raise refuse_folder(root, kind, "verify", "rephrase runs, dedup and decontaminated outputs")
    return verify_run(root, share, workers, fresh)


def _compacted(root: Path) -> dict | None:
    """The manifest of a compacted folder (`finephrase compact`), else None."""
    manifest = load_manifest(root) if (root / MANIFEST).is_file() else {}
    return manifest if manifest.get("compacted") else None
