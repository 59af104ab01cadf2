"""`finephrase compact RUN --output OUT`: the command (argparse, then core.compact)."""

from __future__ import annotations

from pathlib import Path

from finephrase.argtypes import parse_size
from finephrase.compact.plan import DEFAULT_TARGET_BYTES
from finephrase.errors import UsageError
from finephrase.process.array_task import task_of


def add_parser(sub):
    p = sub.add_parser(
        "compact", help="rewrite a finished run's chunk files into Hub-sized shards (before publishing)",
        description="Rewrite the committed chunk files of a finished run (or dedup output) into shards of about "
        "--target-size each, named the way the Hub and `datasets` expect (<folder>/train-XXXXX-of-YYYYY.parquet), "
        "within the Hub's limits (fewer than 10,000 files per folder). Every row is kept exactly once; OUT keeps "
        "the run's manifest, so `finephrase verify OUT` checks it against the original inputs, and card, dedup, "
        "mix and publish read it like the run. Killed, the same command continues where it stopped. In a SLURM "
        "array (`sbatch --array=0-N slurm/stage.sh compact RUN --output OUT`) each task writes its own shards; "
        "the last one to finish writes the manifest.")
    p.add_argument("run_dir", metavar="RUN", help="a finished run or dedup output")
    p.add_argument("--output", required=True, metavar="OUT", help="a new folder (or the one to continue)")
    p.add_argument("--target-size", default=None, metavar="SIZE",
                   help=f"shard size on disk, e.g. 500MB, 2GB (default {DEFAULT_TARGET_BYTES // 1000**2}MB)")
    p.add_argument("--target-rows", type=int, default=None, metavar="N",
                   help="rows per shard instead of a size (both: whichever comes first)")
    p.add_argument("--rank", type=int, default=None,
                   help="this task of --tasks (default: SLURM_ARRAY_TASK_ID, or 0; docs/slurm.md#which-task-am-i)")
    p.add_argument("--tasks", type=int, default=None,
                   help="tasks sharing the work (default: the size of a whole SLURM array from 0, or 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=main)


def compact_folder(source: str | Path, output: str | Path, target_size: str | int | None = None,
                   target_rows: int | None = None, rank: int | None = None, tasks: int | None = None,
                   quiet: bool = False) -> dict:
    """`finephrase compact` in Python (pipelines/compact.py): check the source, then this task's shards (rank
    and tasks from the SLURM array when not given). Returns what core.compact returns."""
    from finephrase.compact.core import compact
    from finephrase.compact.source import check_source

    source, out = Path(source), Path(output)
    manifest, prompts = check_source(source, out)
    target_bytes = parse_size(target_size) if target_size else (None if target_rows else DEFAULT_TARGET_BYTES)
    if target_rows is not None and target_rows < 1:
        raise UsageError("--target-rows must be at least 1")
    rank, tasks = task_of(rank, tasks)
    return compact(source, out, manifest, prompts, target_bytes, target_rows, rank, tasks, quiet)


def main(args) -> int:
    source, out = Path(args.run_dir), Path(args.output)
    result = compact_folder(source, out, args.target_size, args.target_rows, args.rank, args.tasks, args.quiet)
    rank, _ = task_of(args.rank, args.tasks)
    if result["manifest"] is None:
        print(f"compact: task {rank} done ({result['written']} shards written, {result['skipped']} done before); "
              f"{result['left']} shards left to other tasks")
        return 0
    folders = result["manifest"]["compacted"]["folders"]
    shards = sum(f["shards"] for f in folders.values())
    rows = sum(f["rows"] for f in folders.values())
    per_folder = ", ".join(f"{k} {v['shards']}" for k, v in folders.items())
    print(f"compacted {source} into {out}: {shards:,} shards, {rows:,} rows in {len(folders)} folders "
          f"({per_folder})")
    print(f"check:   finephrase verify {out}")
    print(f"publish: finephrase publish {out} --repo ORG/NAME --private   # or --public; a new repo needs one")
    return 0
