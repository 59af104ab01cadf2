"""Reading DIR for its card: the prompts' names (none may clash with a config the card adds), its parquet files,
and where its rejects and filtered files are. Whether DIR is a finished run is verify's answer
(finephrase/verify/finished.py)."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import UsageError
from finephrase.store import datafiles
from finephrase.store.folders import derivation, source_run
from finephrase.store.layout import ALL_CONFIG, FILTERED, MANIFEST, REJECTS, REMOVED

RESERVED_CONFIGS = (ALL_CONFIG, REJECTS, FILTERED, REMOVED)  # the configs the card adds beside the prompts


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


def extras_root(root: Path, manifest: dict) -> tuple[Path | None, str]:
    """Where the rejects and filtered files are: DIR; for a dedup or decontaminated output without them, the run it
    came from (when that folder is still there), else nowhere (the manifest's counts are used)."""
    run = source_run(manifest)
    if not derivation(manifest) or (root / "rejects").is_dir() or (root / "filtered").is_dir():
        return root, "here"
    if run and (Path(run) / MANIFEST).is_file():
        return Path(run), "source"
    return None, "manifest"

