"""The command line of `finephrase decontaminate`: its argparse parser and `main`."""

from __future__ import annotations

import argparse
import textwrap

from finephrase.argtypes import positive_int
from finephrase.contamination.benchmarks import LAYOUTS
from finephrase.contamination.index import DEFAULTS
from finephrase.decontam.plan import DecontamPlan
from finephrase.decontam.render import render_summary
from finephrase.run.stage import add_stage_options, quiet_datatrove, run_command


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None


def add_parser(sub):
    p = sub.add_parser(
        "decontaminate", help="remove (or flag) rows that reproduce benchmark text (n-gram overlap)",
        description=textwrap.fill(
            "Check every row of a finished run or dedup output SOURCE against benchmark files: a row that contains "
            "one of a benchmark's n-grams (default 10 words, normalized) goes to OUT/removed/<prompt>/ with "
            "decontam_reason = contaminated:<benchmark>, the matched n-gram and the item's number; the others go "
            "to OUT/<prompt>/ (same layout and schema as a run, and manifest.json with a `decontamination` "
            "record). --audit-only keeps every row and writes copies of the overlapping ones to "
            "OUT/flagged/<prompt>/. Rerun the same command to resume. Order: dedup -> decontaminate -> compact -> "
            "card -> publish. See docs/decontamination.md; pipelines/decontaminate.py runs the same stages as "
            "SLURM jobs.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmark specs: NAME=PATH[#LAYOUT] or NAME=PATH#COLUMN,COLUMN (PATH: .parquet, .jsonl, .json, a "
        "glob, or hf://...); layouts: " + ", ".join(LAYOUTS) + " (detected from the columns when not given)\n"
        "examples:\n  finephrase decontaminate output/hq-dedup --benchmarks gsm8k=bench/gsm8k-test.parquet "
        "mmlu=bench/mmlu/*.parquet#mmlu --output output/hq-clean\n"
        "  finephrase decontaminate output/hq --benchmarks my=bench/items.jsonl#question,answer --audit-only "
        "--check-sources --output output/hq-audit")
    p.add_argument("source", metavar="SOURCE", help="a finished run or dedup output")
    p.add_argument("--benchmarks", "-b", nargs="+", required=True, metavar="SPEC", help="benchmark files (see below)")
    p.add_argument("--output", "-o", required=True, metavar="OUT_DIR", help="a new folder (or this command's "
                   "earlier output, to resume)")
    p.add_argument("--ngram", type=positive_int, default=DEFAULTS["n"], help="words per n-gram (10)")
    p.add_argument("--boilerplate-share", type=_share, default=DEFAULTS["boilerplate_share"],
                   help="leave out of the index an n-gram that more than this share of a benchmark's items have "
                   f"(and at least {DEFAULTS['boilerplate_min']}): instructions every item repeats (0.01)")
    p.add_argument("--audit-only", action="store_true", help="remove nothing: keep every row, list the overlapping "
                   "ones in OUT/flagged/<prompt>/ and count them in the manifest (and the card)")
    p.add_argument("--check-sources", action="store_true", help="also check the run's source documents (its "
                   "inputs, read again): each overlapping row says whether its source page had an overlap too "
                   "(source_overlap), to tell what the model brought from what the page had")
    add_stage_options(p, "shares of the data files", "an earlier decontamination")
    p.set_defaults(func=main)


def main(args) -> int:
    quiet_datatrove()
    plan = DecontamPlan(args.source, args.output, args.benchmarks, n=args.ngram,
                        boilerplate_share=args.boilerplate_share, tasks=args.tasks, audit_only=args.audit_only,
                        check_sources=args.check_sources, overwrite=args.overwrite)
    return run_command(plan, args.output, f"already decontaminated from {plan.source}", lambda: (
        f"decontaminate {plan.source} -> {plan.output}: {len(plan.specs)} benchmark"
        f"{'s' if len(plan.specs) != 1 else ''} ({', '.join(s.name for s in plan.specs)}), {plan.n}-word n-grams, "
        f"{len(plan.prompts)} prompts, {plan.tasks} task{'s' if plan.tasks != 1 else ''}"
        f"{', audit only' if args.audit_only else ''}"), args.workers, render_summary)
