"""`publish --dry-run`: what would go up, by folder, and nothing uploaded."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from finephrase.formatting import human_bytes
from finephrase.publish.selection import _folder


def dry_run(root: Path, repo: str, url: str, revision: str, visibility: str, up, left, empty, card_bytes: int,
            card_note: str, manifest_bytes: int) -> int:
    """The plan, on stdout; exit 0. The Hub is not asked (no token needed), so whether the repo exists is not known:
    `visibility` says what the real run does either way (without --private or --public it creates nothing)."""
    from huggingface_hub import get_token

    print(f"dry run: nothing is uploaded. Target: {url} (dataset repo, revision {revision})")
    print(f"visibility: {visibility}")
    w = max([len(f"{s:,}") for _, s in up] + [len(f"{card_bytes:,}"), 5])
    print(f"{card_bytes:>{w},}  README.md  ({card_note}; committed last)")
    print(f"{manifest_bytes:>{w},}  manifest.json  (committed last)")
    for path, size in up:
        print(f"{size:>{w},}  {path}")
    groups = defaultdict(lambda: [0, 0])
    for path, size in up:
        groups[_folder(path)][0] += 1
        groups[_folder(path)][1] += size
    print("by folder: " + "; ".join(f"{k}/ {n:,} files {human_bytes(b)}" for k, (n, b) in groups.items()))
    total = sum(s for _, s in up) + card_bytes + manifest_bytes
    print(f"total: {len(up) + 2:,} files, {human_bytes(total)} ({total:,} bytes)")
    if left:
        lg = defaultdict(int)
        for p in left:
            lg[p.split("/")[0] + ("/" if "/" in p else "")] += 1
        print("left out: " + ", ".join(f"{k} ({n:,} files)" for k, n in sorted(lg.items())))
    if empty:
        more = f" (+{len(empty) - 20:,} more)" if len(empty) > 20 else ""
        print(f"left out, empty (0 rows; `datasets` refuses such files): {', '.join(empty[:20])}{more}")
    print("token: " + ("found" if get_token() else "none found: run `hf auth login` or set HF_TOKEN before "
                       "publishing"))
    return 0
