"""`finephrase verify` on a rephrase run: task by task (chunks.check_task), each task's verdict recorded in
DIR/.verify/ (verdicts.py) and reused while what it covered is unchanged; a share of the tasks (`--rank R --tasks
N`: tasks R, R+N, ...) for an array job, and `--workers K` processes on one machine.

The whole-run report is the merge of the tasks' verdicts, plus what is cheap to see again every time: whether the
inputs changed since the run, and files that no ledger line commits (a scan of the data folders' names).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.process.children import helper_init
from finephrase.store.layout import LEDGER_DIR, MANIFEST, read_manifest
from finephrase.store.ledger import Ledger
from finephrase.verify.chunks import check_task, committed_files, scan_chunk_files
from finephrase.verify.report import Report, examples
from finephrase.verify.verdicts import fingerprint, load, record, task_path, task_signature

_READERS: dict = {}  # one reader per process and run (workers check several tasks each)


def make_reader(cfg: dict):
    from finephrase.pipeline.readers.resumable import ResumableReader

    return ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"],
                           limit=cfg["limit"])


def load_run_manifest(root: Path) -> dict:
    if not (root / MANIFEST).exists():
        raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
    return read_manifest(root)


def _check_one(job: tuple) -> tuple[int, dict]:
    """Check task `rank` and record its verdict under `key` (run in this process or in a worker)."""
    root, cfg, rank, key = job
    reader = _READERS.get(root)
    if reader is None:
        reader = _READERS[root] = make_reader(cfg)
    problems, stats = check_task(Path(root), cfg, reader, rank, Ledger(root, rank).read())
    return rank, record(task_path(Path(root), rank), key, problems, stats, rank=rank,
                                 tasks=cfg["tasks"])


def _check_tasks(root: Path, cfg: dict, todo: list[tuple[int, dict]], workers: int, reader) -> dict[int, dict]:
    """{rank: verdict} of the tasks in `todo`, checked here or in `workers` processes (forkserver)."""
    jobs = [(str(root), cfg, rank, key) for rank, key in todo]
    if workers <= 1 or len(jobs) <= 1:
        _READERS[str(root)] = reader
        try:
            return dict(map(_check_one, jobs))
        finally:
            _READERS.pop(str(root), None)
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(min(workers, len(jobs)), initializer=helper_init, initargs=(os.getpid(),)) as pool:  # children.py
        return dict(pool.imap_unordered(_check_one, jobs))


def _ledger_ranks(root: Path) -> set[int]:
    d = root / LEDGER_DIR
    return {int(p.stem.split("_")[1]) for p in d.glob("rank_*.jsonl")} if d.is_dir() else set()


def _plan(root: Path, prompts: list[str], ranks: list[int], whole: bool, key: dict, fresh: bool):
    """(reused verdicts {rank: verdict}, tasks to check [(rank, key)], files no ledger line commits). The whole
    run (`whole`) also looks at ranks beyond the run's tasks that left a ledger or files."""
    wanted = set(ranks)
    on_disk = scan_chunk_files(root, prompts, None if whole else wanted)
    extra = (_ledger_ranks(root) | set(on_disk)) - wanted if whole else set()
    reused, todo, leftovers = {}, [], []
    for rank in sorted(wanted | extra):
        files = committed_files(Ledger(root, rank).read())
        leftovers += sorted(on_disk.pop(rank, set()) - files)
        if rank not in wanted:
            continue
        task_key = {**key, "signature": task_signature(root, rank, files)}
        v = None if fresh else load(task_path(root, rank), task_key)
        if v is not None:
            reused[rank] = v
        else:
            todo.append((rank, task_key))
    return reused, todo, leftovers


def verify_run(root: Path, share: tuple[int, int] | None = None, workers: int = 1, fresh: bool = False) -> Report:
    """Check a rephrase run against its inputs: exactly one row or reject per (document, prompt). `share` (R, N):
    only tasks R, R+N, ...; recorded verdicts still valid are reused unless `fresh`."""
    manifest = load_run_manifest(root)
    cfg = manifest["config"]
    prompts, tasks = list(cfg["prompts"]), cfg["tasks"]
    ranks = list(range(tasks)) if share is None else list(range(share[0], tasks, share[1]))
    report = Report()
    reader = make_reader(cfg)
    from finephrase.run.manifest import input_listing

    now = input_listing(reader.files)
    if now != cfg["input_files"]:
        report.problem(f"the inputs changed since the run ({now['count']} files now, {cfg['input_files']['count']} "
                       f"then, or their names or sizes differ): the check below is against today's inputs")
    key = {"fingerprint": fingerprint(manifest), "inputs": now["sha256"]}
    reused, todo, leftovers = _plan(root, prompts, ranks, share is None, key, fresh)
    if leftovers:
        report.problem(f"{len(leftovers)} files not committed by any ledger line (an interrupted run; rerun the "
                       f"same command to clean up and resume): {examples(leftovers)}")
    found = {**reused, **_check_tasks(root, cfg, todo, workers, reader)}
    totals = Counter({"input_documents": 0, "filtered": 0, **{f"{k}/{p}": 0 for p in prompts
                                                              for k in ("rows", "rejects")}})
    for rank in ranks:
        for line in found[rank]["problems"]:
            report.problem(line)
        totals.update(found[rank]["stats"])
    report.stats = {**totals, "kind": "run", "prompts": prompts, "tasks": tasks}
    if share is not None:
        report.stats["share"] = {"rank": share[0], "of": share[1], "tasks_checked": len(ranks)}
    report.reused, report.checked = len(reused), len(todo)
    return report
