"""What `compact` accepts as its source: a finished run or a consistent dedup or decontaminated output, not already
compacted."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import UsageError


def check_source(source: Path, out: Path) -> tuple[dict, list[str]]:
    """(manifest, prompts) of a source `compact` can read; one line (a UsageError) for anything else."""
    from finephrase.store.folders import folder_kind, refuse_folder
    from finephrase.verify.finished import check_finished, load_run_manifest

    kind = folder_kind(source)
    if kind not in ("run", "dedup", "decontaminated"):
        raise refuse_folder(source, kind, "compact", "finished rephrase runs, dedup and decontaminated outputs")
    manifest = load_run_manifest(source)
    if manifest.get("compacted"):
        raise UsageError(f"{source} is compacted already (from {manifest['compacted'].get('source')}): publish it "
                         f"as it is")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise UsageError(f"--output {out} is inside the source {source}: choose a folder outside it")
    check_finished(source, manifest, verify=False)  # `finephrase verify` checks rows; here: the status
    return manifest, list(manifest["config"]["prompts"])
