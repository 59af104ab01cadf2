"""Uploading data files within the Hub's limits: commits of fewer than `files_per_commit` files each, no more
than `commits_per_hour` of them in any hour (the Hub answers 429 past about 128), and on a rerun only the files
the repo does not hold yet (a commit is atomic: a file in the repo is whole)."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

from finephrase.formatting import duration
from finephrase.store.hub_limits import HubLimits, commits_needed


class CommitPace:
    """At most `per_hour` commits in any sliding hour: `wait()` before each commit sleeps as long as needed."""

    def __init__(self, per_hour: int, clock=time.monotonic, sleep=time.sleep, window: float = 3600.0):
        self.per_hour, self.clock, self.sleep, self.window = per_hour, clock, sleep, window
        self.times: deque[float] = deque()

    def wait(self) -> float:
        """Sleep until one more commit keeps the rate; returns the seconds slept."""
        now = self.clock()
        while self.times and now - self.times[0] >= self.window:
            self.times.popleft()
        slept = 0.0
        if len(self.times) >= self.per_hour:
            slept = self.window - (now - self.times[0])
            print(f"publish: {len(self.times)} commits in the last hour: waiting {duration(slept)} to stay under "
                  f"the Hub's commit rate", file=sys.stderr, flush=True)
            self.sleep(slept)
            self.times.popleft()
        self.times.append(self.clock())
        return slept


def batches(files: list[tuple[str, int]], limits: HubLimits) -> list[list[tuple[str, int]]]:
    """The files in commits of fewer than `limits.files_per_commit`, in path order (a folder's files together)."""
    per = limits.files_per_commit - 1
    files = sorted(files)
    return [files[i:i + per] for i in range(0, len(files), per)]


def upload_in_commits(api, publisher, repo: str, revision: str, root: Path, up: list[tuple[str, int]],
                      limits: HubLimits, pace: CommitPace) -> int:
    """Upload the files of `up` the repo does not hold yet; returns the commits made."""
    from huggingface_hub import CommitOperationAdd

    info = publisher.call("listing the repo", lambda: api.repo_info(repo, repo_type="dataset", revision=revision),
                          retries=max(publisher.retries, 5), base_wait=1)
    held = {s.rfilename for s in info.siblings or []}
    todo = [(p, s) for p, s in up if p not in held]
    if len(todo) < len(up):
        print(f"publish: {len(up) - len(todo):,} of {len(up):,} data files are in the repo already (an earlier "
              f"upload): skipped", file=sys.stderr, flush=True)
    groups = batches(todo, limits)
    t0 = time.monotonic()
    for i, group in enumerate(groups, start=1):
        pace.wait()
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(root / p)) for p, _ in group]
        message = f"finephrase data {i}/{len(groups)} ({group[0][0]} .. {group[-1][0]})"
        # a commit is atomic and a retry skips what the repo holds: retried like the single requests
        publisher.call(f"commit {i}/{len(groups)}", lambda: api.create_commit(
            repo, repo_type="dataset", revision=revision, operations=ops, commit_message=message),
            retries=max(publisher.retries, 5), base_wait=1)
        done = sum(len(g) for g in groups[:i])
        rate = done / max(time.monotonic() - t0, 1e-9)
        print(f"publish: commit {i}/{len(groups)}: {done:,}/{len(todo):,} files | ETA "
              f"{duration((len(todo) - done) / rate if rate else None)}", file=sys.stderr, flush=True)
    return len(groups)


__all__ = ["CommitPace", "batches", "commits_needed", "upload_in_commits"]
