"""The paper's main training mix: 50% synthetic + 50% source tokens, shuffled, as sharded parquet.

A pipeline definition to copy and edit (docs/mixing.md). Run it from the repository root after `make sample`:

    python pipelines/mix.py           # writes output/mix-50-50/train/*.parquet and output/mix-50-50/mix.json

The same as `finephrase mix --synthetic output/sample --source data/sample/python-docs.parquet
--synthetic-share 0.5 --output output/mix-50-50`.
"""

from finephrase.mix import MixConfig, build_mix

config = MixConfig(
    # finephrase run folders (every prompt in them), or one prompt folder such as "output/sample/faq";
    # "name=path" sets the name in the `source` column (default: the folder's name)
    synthetic=["output/sample"],
    # the data mixed in (the paper: its choice is a major driver of the result): parquet / jsonl / jsonl.gz
    # files, folders, globs or hf:// paths,
    # e.g. "fwe=hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet"
    sources=["data/sample/python-docs.parquet"],
    output="output/mix-50-50",
    synthetic_share=0.5,  # the paper's main results; 0.7 still helped
    synthetic_weights=None,  # e.g. [2, 1] for two synthetic runs; default: proportional to their tokens
    source_weights=None,
    tokenizer="smollm2-135m",  # built in (no download); or a tokenizer.json, or a Hugging Face tokenizer id
    seed=0,
    max_tokens=None,  # cap on the mix's total tokens
    allow_repeats=False,  # True: keep every synthetic token and repeat source rows if the source is too small
    shard_rows=100_000,  # rows per output file
    bucket_bytes=64 << 20,  # rows shuffled in memory at a time: bounds the memory (about 3x this)
    tasks=None,  # a SLURM array shares the mix: rank and tasks from SLURM (docs/mixing.md, "A SLURM array")
)

if __name__ == "__main__":
    build_mix(config)
