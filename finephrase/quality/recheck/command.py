"""`finephrase gate DIR`: the command (argparse, the printed report, the array form's flags)."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.process.array_task import share_from_flags


def main(args) -> int:
    from finephrase.quality.recheck.core import check, report
    from finephrase.quality.recheck.parts import digest, merge_parts, write_part
    from finephrase.quality.recheck.plan import make_plan
    from finephrase.quality.recheck.tally import EXAMPLES

    root = Path(args.run_dir)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.merge and args.rank is not None:
        raise UsageError("--merge adds up the parts of all tasks: leave out --rank")
    task = None if args.merge else share_from_flags(args.rank, args.tasks)
    plan = make_plan(root, use_source=not args.no_source)
    if args.merge:
        tally = merge_parts(plan, EXAMPLES, tasks=args.tasks)
    elif task is not None:
        rank, tasks = task
        settings = digest(plan, EXAMPLES)  # before checking: a run that changes meanwhile makes the part stale
        tally = check(plan, plan.units[rank::tasks], args.workers, EXAMPLES)
        path = write_part(plan, rank, tasks, tally, settings)
        rows = sum(p["rows"] for p in tally.prompts.values())
        what = "run tasks" if plan.kind == "run" else "file groups"
        print(f"gate: task {rank} of {tasks}: {rows:,} rows re-checked ({len(plan.units[rank::tasks])} of "
              f"{len(plan.units)} {what}); part written to {path}; `finephrase gate {root} --merge` once all "
              f"{tasks} parts are there")
        return 0
    else:
        tally = check(plan, plan.units, args.workers, EXAMPLES)
    print_report(root, report(plan, tally), args.json)
    return 0


def print_report(root: Path, rep: dict, as_json: bool = False):
    if as_json:
        print(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"{root}: published rows re-checked with the current gate (nothing is rewritten)")
    if not rep["source_checks"]:
        print(f"  (copy and off-topic checks skipped: {rep.get('source_skipped')})")
    for name, p in rep["prompts"].items():
        keep = p["rows"] - p["would_reject"]
        share = f"{keep / p['rows']:.0%}" if p["rows"] else "-"
        print(f"  {name:<12} rows {p['rows']:>6}   would stay {keep:>6} ({share})   would be rejected "
              f"{p['would_reject']:>6}" + (f" ({', '.join(f'{k} {v}' for k, v in p['reasons'].items())})"
                                           if p["reasons"] else ""))
        for reason, texts in p["examples"].items():
            for t in texts:
                print(f"      {reason}: {t}")


def add_parser(sub):
    p = sub.add_parser(
        "gate", help="re-check a run's published rows with the current quality gate (read-only)",
        description="Re-check every published row of the run in DIR with the current quality gate (format checks "
        "from the templates' [check] tables, non-answer, copy, off-topic and language checks) and print, per "
        "prompt, how many rows would now be rejected and why, with examples. Nothing is rewritten. It streams "
        "chunk by chunk (memory bounded by a chunk), in --workers processes, or as a SLURM array: each task "
        "(--rank, --tasks) writes DIR/.gate/part_RRRRR_of_NNNNN.json and --merge prints the report of all parts. "
        "See docs/quality.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase gate output/sample\n  finephrase gate output/sample --workers 8\n"
               "  sbatch --array=0-15 slurm/stage.sh gate out/run --rank auto   # then:\n"
               "  finephrase gate out/run --merge")
    p.add_argument("run_dir", metavar="DIR", help="a run's output folder (or a dedup output, a compacted folder)")
    p.add_argument("--no-source", action="store_true",
                   help="skip the checks that need the source documents (copy, off-topic): no input is read")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--workers", type=int, default=1, help="processes checking run tasks at once (default 1)")
    p.add_argument("--rank", default=None, metavar="R|auto",
                   help="check only run tasks R::N (of --tasks N) and write DIR/.gate/part_RRRRR_of_NNNNN.json; "
                        "`auto`: the SLURM array task's rank and the array's size")
    p.add_argument("--tasks", type=int, default=None, help="array tasks sharing the re-check (with --rank or "
                   "--merge)")
    p.add_argument("--merge", action="store_true",
                   help="print the report of the parts of one complete array (refused if parts are missing or stale)")
    p.set_defaults(func=main)
