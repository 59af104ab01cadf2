"""`finephrase status DIR`: the command, its subparser and entry point (once, or redrawn with --watch)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

from finephrase.argtypes import non_negative_float, non_negative_int, positive_float
from finephrase.monitor.status.rendering import render, render_dedup
from finephrase.monitor.status.summary import DEFAULT_RECENT_MINUTES, collect, dedup_summary
from finephrase.store.folders import folder_kind, load_manifest, refuse_folder


def add_parser(sub):
    p = sub.add_parser(
        "status", help="where a run stands: documents done, rows, rejects, tokens/s, ETA, GPU-hours, cost",
        description="Show the progress of the run in DIR, per task and in total, from its manifest, ledgers and "
        "progress snapshots: documents done / total, rows and rejects, tokens, output tokens/s, ETA, state, "
        "GPU-hours and cost. Works while the run goes on (locally or on SLURM: it only reads DIR) and after it.")
    p.add_argument("run_dir", metavar="DIR", help="the run's output folder")
    p.add_argument("--watch", nargs="?", type=positive_float, const=10.0, default=None, metavar="SECONDS",
                   help="redraw every SECONDS (default 10) until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --watch: one per refresh)")
    p.add_argument("--price-per-gpu-hour", type=non_negative_float, metavar="USD",
                   help="price of one GPU-hour, for a cost estimate")
    p.add_argument("--gpus-per-task", type=non_negative_int, metavar="N",
                   help="GPUs each task holds (default: the manifest's, 1 for vllm and 0 otherwise)")
    p.add_argument("--recent-minutes", type=positive_float, default=DEFAULT_RECENT_MINUTES, metavar="N",
                   help="window of the recent output tokens/s (default 10)")
    p.add_argument("--no-exact-total", action="store_true",
                   help="do not read the inputs' parquet footers for exact totals (one request per file for "
                   "hf:// inputs); use the tasks' estimates")
    p.set_defaults(func=main)


def _print_once(text: str):
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `finephrase status DIR --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _compaction_summary(root: Path) -> str | None:
    """What `status` says of a compacted folder (`finephrase compact`): it is finished, its shards and rows."""
    manifest = load_manifest(root)
    c = manifest.get("compacted")
    if not c:
        return None
    folders = c.get("folders") or {}
    shards, rows = sum(f["shards"] for f in folders.values()), sum(f["rows"] for f in folders.values())
    size = sum(f["bytes"] for f in folders.values())
    return (f"{root}: FINISHED compaction of {c.get('source')} ({c.get('created_at')}): {shards:,} shards, "
            f"{rows:,} rows, {size / 1e6:,.1f} MB in {len(folders)} folders ("
            + ", ".join(f"{k} {v['shards']}" for k, v in folders.items())
            + f"). `finephrase verify {root}` checks it; `finephrase status {c.get('source')}` shows the run")


def main(args) -> int:
    kind = folder_kind(args.run_dir)
    if kind in ("run", "dedup", "decontaminated") and (text := _compaction_summary(Path(args.run_dir))):
        _print_once(orjson.dumps(load_manifest(Path(args.run_dir))["compacted"]).decode() if args.json else text)
        return 0
    if kind in ("dedup", "decontaminated"):  # complete when it exists: nothing to watch
        rep = dedup_summary(args.run_dir)
        _print_once(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() if args.json else render_dedup(rep))
        return 0
    if kind != "run":
        raise refuse_folder(Path(args.run_dir), kind, "status", "rephrase runs, dedup and decontaminated outputs")
    cache: dict = {}

    def once() -> dict:
        return collect(args.run_dir, gpus_per_task=args.gpus_per_task, price_per_gpu_hour=args.price_per_gpu_hour,
                       recent_minutes=args.recent_minutes, exact_totals=not args.no_exact_total,
                       _totals_cache=cache)

    if args.watch is None:
        rep = once()
        _print_once(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode() if args.json else render(rep))
        return 0
    tty = sys.stdout.isatty()
    try:
        while True:
            rep = once()
            if args.json:
                print(orjson.dumps(rep).decode(), flush=True)
            else:
                text = render(rep) + f"\n\n(every {args.watch:g}s, Ctrl-C to stop; {time.strftime('%H:%M:%S')})"
                sys.stdout.write(("\x1b[H\x1b[2J" if tty else "\n") + text + "\n")
                sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        if tty and not args.json:
            sys.stdout.write("\n")
        return 0
