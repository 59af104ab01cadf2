"""The command line of `finephrase score`: its argparse parser and `main`."""

from __future__ import annotations

import argparse
import textwrap

from finephrase.argtypes import positive_int
from finephrase.score.plan import ScorePlan
from finephrase.run.stage import add_stage_options, quiet_datatrove, run_command
from finephrase.score.render import render_summary


def add_parser(sub):
    p = sub.add_parser(
        "score", help="quality scores of the rows (and their source documents) with fastText or Hugging Face "
        "classifiers",
        description=textwrap.fill(
            "Score every row of a finished run, dedup or decontaminated output SOURCE with one or more classifiers "
            "(a DCLM-style fastText model: the probability of its positive label; a Hugging Face "
            "sequence-classification model such as the FineWeb-Edu classifier: its regression output), and with "
            "--sources the source document each row was written from (read again with the run's own reader), so "
            "the card can say whether rephrasing raised the scores. OUT gets <prompt>/*.parquet (id, source_id, "
            "score_<name>, score_<name>_source) and scores.json (per prompt: means, quantiles, histograms, the "
            "mean change). SOURCE is not changed. It runs on the CPU (fastText) or on a GPU if torch sees one (Hugging "
            "Face), in its own SLURM stage after the rephrasing. See docs/quality.md.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="classifier specs: NAME=fasttext:PATH[#LABEL] or NAME=hf:MODEL_OR_PATH[#LABEL_INDEX] (the column is "
        "score_NAME)\nexamples:\n  finephrase score output/hq-clean --classifiers dclm=fasttext:models/dclm.bin "
        "--sources --output output/hq-scores\n  finephrase card output/hq-final --scores output/hq-scores")
    p.add_argument("source", metavar="SOURCE", help="a finished run, dedup or decontaminated output")
    p.add_argument("--classifiers", "-c", nargs="+", required=True, metavar="SPEC", help="classifiers (see below)")
    p.add_argument("--output", "-o", required=True, metavar="OUT_DIR", help="a new folder (or this command's "
                   "earlier output, to resume)")
    p.add_argument("--sources", action="store_true", help="also score the source documents (the run's inputs, read "
                   "again) and the change per row")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="texts per classifier call (1024)")
    add_stage_options(p, "shares of the data files for the rows stage", "earlier scores")
    p.set_defaults(func=main)


def main(args) -> int:
    quiet_datatrove()
    plan = ScorePlan(args.source, args.output, args.classifiers, sources=args.sources, tasks=args.tasks,
                     batch_size=args.batch_size, overwrite=args.overwrite)
    return run_command(plan, args.output, f"already scored from {plan.source}", lambda: (
        f"score {plan.source} -> {plan.output}: {', '.join(plan.specs_text)}; {len(plan.prompts)} prompts"
        f"{', and the source documents' if args.sources else ''}; {plan.tasks} task"
        f"{'s' if plan.tasks != 1 else ''}, {plan.buckets} bucket{'s' if plan.buckets != 1 else ''}"),
        args.workers, render_summary)
