"""What `publish` uploads from a folder: the data files (by pattern, never an empty one), and what it leaves out."""

from __future__ import annotations

from pathlib import Path

from finephrase import card

IGNORE = [".*", "*/.*", "*.tmp", "*.lock", ".ledger/*", "logs/*", ".cache/*", ".dedup/*"]


def data_patterns(prompts: list[str], include_extras: bool = True) -> list[str]:
    pats = [f"{p}/*.parquet" for p in prompts]
    if include_extras:
        pats += [f"rejects/{p}/*.parquet" for p in prompts] + ["filtered/*.parquet"]
        pats += [f"removed/{p}/*.parquet" for p in prompts]
    return pats


def ignore_patterns() -> list[str]:
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS

    return IGNORE + [p for p in DEFAULT_IGNORE_PATTERNS if p not in IGNORE]


def data_files(root: Path, prompts: list[str], include_extras: bool = True
               ) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    """(uploaded [(path, size)], left out [path], empty [path]): the same selection the upload makes (same
    patterns, same matcher). Parquet files with no rows (an older run's) are never uploaded: `datasets` refuses
    them and would fail their whole config."""
    from huggingface_hub.utils import filter_repo_objects

    from finephrase.store import datafiles

    every = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    chosen = set(filter_repo_objects(every, allow_patterns=data_patterns(prompts, include_extras),
                                     ignore_patterns=ignore_patterns()))
    empty = [p for p in every if p in chosen and p.endswith(".parquet") and datafiles.num_rows(root / p) == 0]
    chosen -= set(empty)
    up = [(p, (root / p).stat().st_size) for p in every if p in chosen]
    left = [p for p in every if p not in chosen and p not in empty and p not in (card.CARD, card.MANIFEST)]
    return up, left, empty


def _folder(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] in ("rejects", "removed") and len(parts) > 2 else (
        parts[0] if len(parts) > 1 else ".")
