"""`finephrase mix`: a training mix of synthetic rows and source documents at given token shares.

    finephrase mix --synthetic output/fwe --source data/fwe.parquet --output output/mix-50   # 50/50
    finephrase mix --synthetic output/fwe/faq --synthetic output/fwe2 --source fwe=hf://datasets/... \\
        --synthetic-share 0.7 --seed 1 --output output/mix-70

How (docs/mixing.md):

1. every usable row of every input is tokenized once with the named tokenizer (rows whose text is missing,
   null, not a string or blank are skipped and counted); each file's per-row counts go to a spill file on disk,
   only per-part totals stay in memory;
2. each input gets a fraction of the total: the synthetic share split over the synthetic inputs (by their token
   counts, or by --synthetic-weights), the rest over the source inputs likewise;
3. the total T is the largest for which no input needs more tokens than it has (one input is used completely,
   the others are sampled), capped by --max-tokens; with --allow-repeats, rows may be repeated instead;
4. each input's rows are ordered by a seeded key computed on the fly from (seed, input, file, row) and taken in
   that order while they fit its budget: a histogram of the keys finds where the order crosses the budget, and
   only the rows near that point are looked at one by one (passed over if they overshoot, as before): each budget
   is met to within 0.1% (or one row);
5. the selected rows are shuffled by a second seeded key: appended to on-disk buckets by its top bits, each
   bucket sorted in memory and streamed into OUT/train/NNNNN.parquet (zstd; columns text, source, id, tokens);
   OUT/mix.json records the request, the inputs and the achieved shares.

Memory is bounded by --bucket-size (one bucket sorted at a time, one write buffer), not by the mix's size; the
same seed gives the same files whatever the bucket size or the number of tasks. A SLURM array shares the work
(--rank/--tasks; stages.py: per-task commit markers and two barriers). The mix is complete when OUT/mix.json
exists: OUT/train/ is swapped in just before mix.json is written, so an interrupted mix never leaves a
complete-looking result; one process reruns from the start, an array's task continues where it stopped.

Modules: config (MixConfig, defaults), sources (the inputs, their files as units), counting (the tokenizer, spill
files), keys (the seeded keys), compute (fractions, the total, the selection rule), scatter (rows into buckets),
write (buckets, shards, swap-in), stages (the commit points and barriers), report (mix.json), render (the
printed table), build (build_mix), command (the CLI options).
"""

from finephrase.mix.build import build_mix
from finephrase.mix.command import add_parser, main
from finephrase.mix.compute import FILL_SCAN, FILL_TOLERANCE, fractions, plan_total, select
from finephrase.mix.config import (
    DEFAULT_BUCKET_BYTES,
    DEFAULT_SHARD_ROWS,
    DEFAULT_TOKENIZER,
    MIX_FILE,
    TMP_DIR,
    TOLERANCE,
    TRAIN_DIR,
    MixConfig,
)
from finephrase.mix.counting import COUNT_BATCH, TokenCounter, count_unit, load_tokenizer
from finephrase.mix.render import format_report
from finephrase.mix.sources import (
    NOT_PROMPTS,
    MixInput,
    Part,
    Unit,
    list_units,
    resolve_source,
    resolve_synthetic,
    split_name,
)
from finephrase.mix.write import MIX_SCHEMA

__all__ = [
    "COUNT_BATCH",
    "DEFAULT_BUCKET_BYTES",
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
    "Unit",
    "add_parser",
    "build_mix",
    "count_unit",
    "format_report",
    "fractions",
    "list_units",
    "load_tokenizer",
    "main",
    "plan_total",
    "resolve_source",
    "resolve_synthetic",
    "select",
    "split_name",
]
