"""A dedup output or a compacted folder as one unit of verify: one verdict for the whole folder
(DIR/.verify/folder.json), reused while the folder's manifest and files (and the source run's files, or the
inputs of a compacted run) are unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from finephrase.store.folders import derivation
from finephrase.verify.report import Report
from finephrase.verify.verdicts import fingerprint, folder_path, folder_signature, load, record, stats_hash


def _key(root: Path, manifest: dict) -> dict:
    from finephrase.verify.dedup import dedup_source

    extra = {}
    compact = root / ".compact"
    if compact.is_dir():
        extra["compact"] = stats_hash(compact, sorted(p.name for p in compact.iterdir() if p.is_file()))
    if manifest.get("compacted") and derivation(manifest) is None:
        from finephrase.run.manifest import input_listing
        from finephrase.verify.run import make_reader

        extra["inputs"] = input_listing(make_reader(manifest["config"]).files)["sha256"]
    source = dedup_source(root, manifest) if derivation(manifest) else None
    return {"fingerprint": fingerprint(manifest), "signature": folder_signature(root, extra, source)}


def verify_folder(root: Path, manifest: dict, check: Callable[[], Report], fresh: bool = False) -> Report:
    """`check()` the folder, or the verdict recorded for it while it still holds for what is there now."""
    key = _key(root, manifest)
    v = None if fresh else load(folder_path(root), key)
    if v is not None:
        return Report(ok=v["ok"], problems=list(v["problems"]), stats=v["stats"], kind=v["kind"], reused=1)
    report = check()
    record(folder_path(root), key, report.problems, report.stats, kind=report.kind)
    report.checked = 1
    return report
