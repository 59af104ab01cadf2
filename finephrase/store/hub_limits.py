"""The Hugging Face Hub's limits on a dataset repo, and the checks against them.

From huggingface.co/docs/hub/repositories-recommendations (fewer than 10k entries per folder, fewer than 100k
files per repo, files under 20 GB, fewer than 100 files per commit through the HTTP API); the commit rate (about
128 commits per hour per repo, past which the Hub answers 429) is what users report in public issue threads,
not a documented number. `compact` sizes its shards to stay inside them and `publish` refuses a selection that
would break one, before anything is uploaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

ENTRIES_PER_FOLDER = 10_000  # an upload needs fewer than this many entries in any folder
FILES_PER_REPO = 100_000
FILE_BYTES = 20 * 1000**3
FILES_PER_COMMIT = 100
COMMITS_PER_HOUR = 128


@dataclass(frozen=True)
class HubLimits:
    """The limits a publish is checked and paced against (the tests' stand-in Hub is given smaller ones)."""

    entries_per_folder: int = ENTRIES_PER_FOLDER
    files_per_repo: int = FILES_PER_REPO
    file_bytes: int = FILE_BYTES
    files_per_commit: int = FILES_PER_COMMIT
    commits_per_hour: int = COMMITS_PER_HOUR


def folder_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def violations(files: list[tuple[str, int]], limits: HubLimits = HubLimits(), extra_files: int = 0) -> list[str]:
    """What in a selection of (repo path, bytes) would break a limit, one phrase each (empty when none).
    `extra_files`: files uploaded beside them (the card, the manifest)."""
    out = []
    per_folder = Counter(folder_of(p) for p, _ in files)
    for folder, n in sorted(per_folder.items(), key=lambda kv: -kv[1]):
        if n >= limits.entries_per_folder:
            out.append(f"{n:,} files in {folder or 'the top folder'}/ (the Hub allows fewer than "
                       f"{limits.entries_per_folder:,} per folder)")
    if len(files) + extra_files >= limits.files_per_repo:
        out.append(f"{len(files) + extra_files:,} files (the Hub allows fewer than {limits.files_per_repo:,} per repo)")
    big = [(p, s) for p, s in files if s >= limits.file_bytes]
    if big:
        p, s = max(big, key=lambda x: x[1])
        out.append(f"{len(big)} file(s) of {limits.file_bytes / 1e9:.0f} GB or more (largest: {p}, {s / 1e9:.1f} GB)")
    return out


def commits_needed(files: int, limits: HubLimits = HubLimits()) -> int:
    """Commits for `files` data files, as `publish` batches them (fewer than files_per_commit each)."""
    per = limits.files_per_commit - 1
    return -(-files // per) if files else 0
