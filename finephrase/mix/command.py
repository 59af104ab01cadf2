"""`finephrase mix` on the command line: its options, parsed into a MixConfig."""

from __future__ import annotations

import argparse
import sys

from finephrase.argtypes import positive_int
from finephrase.errors import UsageError
from finephrase.mix.build import build_mix
from finephrase.mix.config import DEFAULT_SHARD_ROWS, DEFAULT_TOKENIZER, MixConfig


def _share(v: str) -> float:
    try:
        x = float(v.split("=", 1)[1] if v.startswith("synthetic=") else v)
    except ValueError:
        raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {v}") from None
    if not 0 < x < 1:
        raise UsageError(f"synthetic share must be a number strictly between 0 and 1, got {v}")
    return x


def _weights(v: str | None, flag: str) -> list[float] | None:
    if v is None:
        return None
    try:
        return [float(x) for x in v.split(",")]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated numbers, got {v}") from None


def add_parser(sub):
    p = sub.add_parser(
        "mix", help="build a training mix of synthetic outputs and source data at given token shares",
        description="Mix one or more synthetic outputs (finephrase run folders) with one or more source\n"
        "datasets at a token share (default 50/50), counted with a named tokenizer, shuffled with a seed, into\n"
        "OUT/train/NNNNN.parquet (columns text, source, id, tokens) and OUT/mix.json. No row is repeated\n"
        "unless --allow-repeats is given. See docs/mixing.md.",
        epilog="example:\n  finephrase mix --synthetic output/fwe --source data/fwe.parquet --synthetic-share 0.7 "
        "--output output/mix-70",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", action="append", default=[], metavar="[NAME=]DIR", required=True,
                   help="a finephrase run folder (every DIR/<prompt>/) or one prompt folder DIR/<prompt> "
                   "(repeatable); rows are labelled synthetic:NAME/<prompt> (NAME: the run folder's name)")
    p.add_argument("--source", action="append", default=[], metavar="[NAME=]PATH", required=True,
                   help="parquet / jsonl / jsonl.gz file, folder, glob or hf:// path (repeatable); rows are "
                   "labelled source:NAME (NAME: the file or folder name)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (a previous mix in it "
                   "is replaced)")
    p.add_argument("--synthetic-share", "--share", default="0.5", metavar="P",
                   help="share of synthetic tokens, strictly between 0 and 1 (default 0.5; also synthetic=P)")
    p.add_argument("--synthetic-weights", metavar="W,W,...",
                   help="relative weights of the --synthetic inputs, in order (default: their token counts)")
    p.add_argument("--source-weights", metavar="W,W,...",
                   help="relative weights of the --source inputs, in order (default: their token counts)")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="smollm2-135m (built in, default), a .gguf file, a tokenizer.json (or a folder with one), "
                   "or a Hugging Face tokenizer id (needs the `tokenizers` package)")
    p.add_argument("--seed", type=int, default=0, help="seed of the selection and the shuffle (default 0)")
    p.add_argument("--max-tokens", type=positive_int, metavar="N", help="cap on the mix's total tokens")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="mix the committed rows of a synthetic run that has not finished (refused otherwise)")
    p.add_argument("--allow-repeats", action="store_true",
                   help="use every synthetic token and repeat source rows if the source is too small (with "
                   "--max-tokens: repeat any input as needed); default: never repeat a row")
    p.add_argument("--shard-rows", type=positive_int, default=DEFAULT_SHARD_ROWS, metavar="N",
                   help=f"rows per output file (default {DEFAULT_SHARD_ROWS:,})")
    p.add_argument("--text-column", default="text", help="text column of the --source inputs (default: text)")
    p.add_argument("--id-column", default="id",
                   help="id column of the --source inputs (default: id; without it: FILE:ROW)")
    p.add_argument("--workers", type=positive_int, default=0,
                   help="above 1: count tokens on all cores (tokenizers' thread pool), 1: in one thread "
                   "(default: CPUs, at most 8)")
    p.add_argument("--bucket-size", default=None, metavar="SIZE",
                   help="rows shuffled in memory at a time, and the write buffer, e.g. 64MB (default), 1GB: "
                   "bounds the memory (about 3x this), whatever the mix's size")
    p.add_argument("--rank", type=int, default=None,
                   help="this task of --tasks (default: SLURM_ARRAY_TASK_ID, or 0); see docs/mixing.md")
    p.add_argument("--tasks", type=int, default=None,
                   help="tasks of a SLURM array sharing the mix (default: the size of a whole array from 0, or 1)")
    p.set_defaults(func=main)


def main(args) -> int:
    cfg = MixConfig(
        synthetic=args.synthetic, sources=args.source, output=args.output,
        synthetic_share=_share(args.synthetic_share),
        synthetic_weights=_weights(args.synthetic_weights, "--synthetic-weights"),
        source_weights=_weights(args.source_weights, "--source-weights"),
        tokenizer=args.tokenizer, seed=args.seed, max_tokens=args.max_tokens, allow_repeats=args.allow_repeats,
        allow_unfinished=args.allow_unfinished,
        shard_rows=args.shard_rows, text_column=args.text_column, id_column=args.id_column,
        workers=args.workers, rank=args.rank, tasks=args.tasks,
    )
    if args.bucket_size:
        from finephrase.argtypes import parse_size

        cfg.bucket_bytes = parse_size(args.bucket_size)
    build_mix(cfg, command=sys.argv)
    return 0
