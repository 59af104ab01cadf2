"""The paper's third axis, on the bundled sample: rephrase the high-quality pool (int_score >= 4) and the
low-quality pool (int_score <= 1) with the same prompt into two folders, to compare what each yields.

    python pipelines/source_pools.py
"""

from finephrase.prompts import load_prompts
from finephrase.run import RunConfig, execute

POOLS = {"hq": "int_score >= 4", "lq": "int_score <= 1"}

if __name__ == "__main__":
    for pool, condition in POOLS.items():
        execute(RunConfig.for_backend(
            "embedded",
            inputs=["data/sample/python-docs.parquet"],
            output=f"output/pools/{pool}",
            prompts=load_prompts("faq"),
            where=[condition],
            token_budget=20_000,  # source tokens to select per pool (token_count column)
            max_tokens=512,
            constrain_format=True,  # the FAQ grammar (docs/quality.md): the 135M model rarely writes one without it
            seed=0,
        ))
