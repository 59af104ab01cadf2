"""`finephrase mix`: a training mix of synthetic rows and source documents at given token shares.

    finephrase mix --synthetic output/fwe --source data/fwe.parquet --output output/mix-50   # 50/50
    finephrase mix --synthetic output/fwe/faq --synthetic output/fwe2 --source fwe=hf://datasets/... \\
        --synthetic-share 0.7 --seed 1 --output output/mix-70

How (docs/mixing.md):

1. every usable row of every input is tokenized once with the named tokenizer (rows whose text is missing,
   null, not a string or blank are skipped and counted);
2. each input gets a fraction of the total: the synthetic share split over the synthetic inputs (by their token
   counts, or by --synthetic-weights), the rest over the source inputs likewise;
3. the total T is the largest for which no input needs more tokens than it has (one input is used completely,
   the others are sampled), capped by --max-tokens; with --allow-repeats, rows may be repeated instead;
4. each input's rows are shuffled with (seed, input name) and taken in that order while they fit its budget;
   near the end, rows that would overshoot are passed over, and one overshooting row is taken only if it brings
   the total closer: each budget is met to within 0.1% (or one row);
5. the selected rows are shuffled together with the seed and written to OUT/train/NNNNN.parquet (zstd) with
   columns text, source, id, tokens; OUT/mix.json records the request, the inputs and the achieved shares.

Memory: per input row, its token count and length (8 bytes) are kept; texts are streamed a second time into
per-shard bucket files under OUT/.mix-tmp/, then each shard is ordered and written. The mix is complete when
OUT/mix.json exists: OUT/train/ is swapped in just before mix.json is written, so an interrupted mix never
leaves a complete-looking result; a rerun starts over.

Modules: config (MixConfig, defaults), sources (the inputs), counting (the tokenizer, token counts), compute
(fractions, the total, selection), write (buckets, shards, swap-in), report (mix.json), render (the printed
table), build (build_mix), command (the CLI options).
"""

from finephrase.mix.build import build_mix
from finephrase.mix.command import add_parser, main
from finephrase.mix.compute import FILL_SCAN, FILL_TOLERANCE, fractions, plan_total, select
from finephrase.mix.config import (
    DEFAULT_SHARD_ROWS,
    DEFAULT_TOKENIZER,
    MIX_FILE,
    TMP_DIR,
    TOLERANCE,
    TRAIN_DIR,
    MixConfig,
)
from finephrase.mix.counting import COUNT_BATCH, TokenCounter, count_part, load_tokenizer
from finephrase.mix.render import format_report
from finephrase.mix.sources import NOT_PROMPTS, MixInput, Part, resolve_source, resolve_synthetic, split_name
from finephrase.mix.write import MIX_SCHEMA

__all__ = [
    "COUNT_BATCH",
    "DEFAULT_SHARD_ROWS",
    "DEFAULT_TOKENIZER",
    "FILL_SCAN",
    "FILL_TOLERANCE",
    "MIX_FILE",
    "MIX_SCHEMA",
    "NOT_PROMPTS",
    "TMP_DIR",
    "TOLERANCE",
    "TRAIN_DIR",
    "MixConfig",
    "MixInput",
    "Part",
    "TokenCounter",
    "add_parser",
    "build_mix",
    "count_part",
    "format_report",
    "fractions",
    "load_tokenizer",
    "main",
    "plan_total",
    "resolve_source",
    "resolve_synthetic",
    "select",
    "split_name",
]
