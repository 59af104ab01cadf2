"""The paper's third axis, on the bundled sample: rephrase the high-quality pool (int_score >= 4) and the
low-quality pool (int_score <= 1) with the same prompt into two folders, to compare what each yields.

    python pipelines/source_pools.py
"""

from finephrase.pipeline import (
    ChunkWriter,
    LlamaCppServer,
    QualityFilter,
    Rephrase,
    ResumableReader,
    Sampling,
    Select,
    TokenBudget,
    load_prompts,
    run,
    where,
)

POOLS = {"hq": "int_score >= 4", "lq": "int_score <= 1"}


def pool_pipeline(condition: str, output: str) -> list:
    return [
        ResumableReader("data/sample/python-docs.parquet"),
        Select(where(condition)),
        TokenBudget(20_000),  # source tokens to select per pool (token_count column)
        Rephrase(
            load_prompts("faq"),
            LlamaCppServer(context_length=2048, slots=4),
            Sampling(temperature=0.2, top_p=0.9, seed=0, max_tokens=512),
            max_concurrency=4,
            constrain_format=True,  # the FAQ grammar (docs/quality.md): the 135M model rarely writes one without it
        ),
        QualityFilter(),
        ChunkWriter(output, chunk_size=20),
    ]


if __name__ == "__main__":
    for pool, condition in POOLS.items():
        run(pool_pipeline(condition, f"output/pools/{pool}"))
