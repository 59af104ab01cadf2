"""`finephrase sweep FILE`: list a sweep's points (--dry-run), submit them (--submit) or run them here (--local)."""

from __future__ import annotations

import argparse
import fnmatch
import shlex
import sys

from finephrase.errors import UsageError
from finephrase.sweep.definition import load_sweep
from finephrase.sweep.launch import find_script, run_locally, sbatch_command, submit
from finephrase.sweep.state import active_jobs, point_state, submissions


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="run a grid of runs (prompts x models x sources) from a TOML or Python file",
        description="Expand the grid of FILE (prompts x models x sources, see docs/sweeps.md) into one run per point, "
        "each in ROOT/<source>/<model>/<prompt>/, and list them (--dry-run), submit each as a SLURM array job "
        "(--submit: sbatch --array=0-(tasks-1) slurm/rephrase.sh rephrase ...) or run them one after another here "
        "(--local). Points whose run has finished are skipped; unfinished ones resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase sweep pipelines/sweep_example.toml --dry-run\n"
        "  finephrase sweep pipelines/sweep_example.toml --submit --sbatch-arg=--partition=gpu --sbatch-arg=--qos=low\n"
        "  finephrase sweep my_sweep.py --local --only 'fwe-hq/*/faq'")
    p.add_argument("file", metavar="FILE", help="the sweep definition (.toml, or .py defining SWEEP)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--submit", action="store_true", help="submit one sbatch array job per point to run")
    mode.add_argument("--local", action="store_true", help="run the points one after another on this machine")
    p.add_argument("--dry-run", action="store_true",
                   help="only list the points, what would be done with each and why, and the commands")
    p.add_argument("--only", action="append", default=[], metavar="GLOB",
                   help="only points whose SOURCE/MODEL/PROMPT matches GLOB (repeatable), e.g. 'fwe-hq/*/faq'")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for sbatch (repeatable; write it as --sbatch-arg=--partition=gpu)")
    p.add_argument("--script", default=None,
                   help="the sbatch script (default: slurm/rephrase.sh here, else the repository's)")
    p.add_argument("--resubmit", action="store_true",
                   help="submit points submitted before without asking squeue whether their last job is still "
                   "queued or running (cancel it first: two jobs on one run would write the same tasks twice)")
    p.set_defaults(func=main)


def _states(points, root, resubmit: bool) -> list:
    """(point, State) for each point, asking squeue about the last job of those submitted before."""
    subs = {} if resubmit else submissions(root)
    active = None
    if any(p.key in subs for p in points):
        active = active_jobs(sorted({str(subs[p.key][-1]["job_id"]) for p in points if p.key in subs}))
    return [(p, point_state(p, subs.get(p.key), active)) for p in points]


def main(args) -> int:
    sweep = load_sweep(args.file)
    points = [p for p in sweep.points if not args.only or any(fnmatch.fnmatchcase(p.key, g) for g in args.only)]
    if not points:
        raise UsageError(f"no point of {args.file} matches --only {' '.join(args.only)}")
    states = _states(points, sweep.root, args.resubmit)
    todo = [p for p, s in states if s.action != "skip"]

    w = max(len(p.key) for p in points)
    print(f"sweep {args.file}: {len(sweep.points)} points under {sweep.root}"
          + (f", {len(points)} selected by --only" if args.only else ""))
    for p, s in states:
        print(f"  {s.action:<6}  {p.key:<{w}}  {s.reason}")
    print(f"{len(todo)} to run, {len(points) - len(todo)} skipped")

    if args.submit:
        script = find_script(args.script)
        commands = [(p, sbatch_command(p, script, args.sbatch_arg)) for p in todo]
    else:
        commands = [(p, ["finephrase", *p.rephrase_args()]) for p in todo]
    if args.dry_run or not (args.submit or args.local):
        if commands:
            print("would submit:" if args.submit else "would run (as with these commands):")
            for _, cmd in commands:
                print("  " + shlex.join(cmd))
        if not args.dry_run:
            print("(nothing done: pass --submit or --local)")
        return 0
    failed: list[str] = [p.key for p, s in states if s.problem]  # skipped: needs a decision
    if args.submit and todo:
        failed += submit(commands, sweep.root, str(args.file))
    elif args.local and todo:
        failed += run_locally(todo)
    if failed:
        print(f"not done: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
