"""The command line of `finephrase dedup`: its argparse parser and `main`."""

from __future__ import annotations

import argparse
import textwrap

from finephrase.argtypes import positive_int
from finephrase.dedup.plan import DEFAULT_MINHASH, EXACT_NORMALIZATION, SCOPES, DedupPlan, minhash_config
from finephrase.dedup.render import render_summary
from finephrase.run.stage import quiet_datatrove, run_command


def add_parser(sub):
    p = sub.add_parser(
        "dedup", help="remove exact and near duplicates from a finished run's rows (datatrove MinHash)",
        description=textwrap.fill(
            "Deduplicate the rows of a finished run RUN_DIR into OUT_DIR, which gets the same layout as a run "
            "(OUT_DIR/<prompt>/*.parquet with the same schema, and manifest.json: the run's, with the kept counts "
            "and a `dedup` key). Exact duplicates (same text after case folding and whitespace collapsing) go "
            "first, then near duplicates (MinHash LSH). One row of each group is kept; each removed row goes to "
            "OUT_DIR/removed/<prompt>/ with `dedup_reason` (exact, near) and `duplicate_of` (the id of the row it "
            "duplicates). Intermediate files, logs and completion markers: OUT_DIR/.dedup/. Rerun the same command "
            "to resume; on a finished OUT_DIR it says so. See docs/dedup.md; pipelines/dedup.py runs the same "
            "stages as dependent SLURM jobs.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase dedup output/hq --output output/hq-dedup\n"
        "  finephrase dedup output/hq --output output/hq-dedup-run --scope run --tasks 8 --workers 8")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run (finephrase rephrase's output folder)")
    p.add_argument("--output", "-o", required=True, metavar="OUT_DIR",
                   help="where the deduplicated run goes (a new folder, or this command's earlier output)")
    p.add_argument("--scope", choices=SCOPES, default="prompt",
                   help="prompt (default): compare rows only within each prompt; run: across all prompts too, so a "
                   "row may be removed as a duplicate of another prompt's row")
    g = p.add_argument_group("near duplicates (datatrove MinhashConfig)")
    g.add_argument("--ngrams", type=positive_int, default=DEFAULT_MINHASH["n_grams"],
                   help="words per shingle (5)")
    g.add_argument("--buckets", type=positive_int, default=DEFAULT_MINHASH["num_buckets"],
                   help="LSH buckets (bands) (14); also the task count of the buckets stage")
    g.add_argument("--hashes-per-bucket", type=positive_int, default=DEFAULT_MINHASH["hashes_per_bucket"],
                   help="hashes per bucket (8). Pairs of texts more similar (Jaccard of shingles) than about "
                   "(1/buckets)^(1/hashes-per-bucket) are found: 0.72 with the defaults; fewer buckets or more "
                   "hashes per bucket: stricter")
    g.add_argument("--seed", type=int, default=DEFAULT_MINHASH["seed"], help="seed of the MinHash functions (1)")
    g = p.add_argument_group("execution")
    g.add_argument("--tasks", type=positive_int, default=1,
                   help="shards of the rows (by file) for the read/filter stages (1); part of the settings: a "
                   "rerun into OUT_DIR must use the same")
    g.add_argument("--workers", type=positive_int, default=1, help="tasks run at once on this machine (1)")
    g.add_argument("--verify", action="store_true",
                   help="also run `finephrase verify RUN_DIR` first (re-reads the run's inputs). Without it RUN_DIR "
                   "is checked from its own files: finished status and ledgers, every file committed, row counts")
    g.add_argument("--overwrite", action="store_true", help="delete an earlier dedup in OUT_DIR and start over")
    p.set_defaults(func=main)


def main(args) -> int:
    quiet_datatrove()
    minhash = minhash_config(n_grams=args.ngrams, num_buckets=args.buckets, hashes_per_bucket=args.hashes_per_bucket,
                             seed=args.seed)
    plan = DedupPlan(args.run_dir, args.output, scope=args.scope, tasks=args.tasks, minhash=minhash,
                     verify=args.verify, overwrite=args.overwrite)
    prm = plan.record["params"]
    return run_command(plan, args.output, f"already deduplicated from {plan.run}", lambda: (
        f"dedup {plan.run} -> {plan.output}: scope {plan.scope}, {len(plan.prompts)} prompts, {plan.tasks} "
        f"task{'s' if plan.tasks != 1 else ''}, {args.workers} worker{'s' if args.workers != 1 else ''}; exact "
        f"({EXACT_NORMALIZATION}), then MinHash {prm['n_grams']}-grams, {prm['num_buckets']} buckets x "
        f"{prm['hashes_per_bucket']} hashes (~{prm['approx_threshold']:.2f} similarity)"), args.workers, render_summary)
