"""The FinePhrase production recipe: FineWeb-Edu rephrased into FAQ, math, table and tutorial by
SmolLM2-1.7B-Instruct on vLLM, one H100 per task. Submit it with

    sbatch --array=0-99 slurm/rephrase.sh pipelines/production.py

A datatrove pipeline: a list of steps, read top to bottom. Edit, add or remove steps as you need (docs/pipelines.md):
any datatrove filter can go before Rephrase (what it refuses is listed under OUTPUT/filtered/) or after it (what it
refuses becomes a reject). A rerun resumes; a rerun with changed steps into the same OUTPUT is refused.
"""

from finephrase.pipeline import (  # noqa: F401  (Select, where: for the selection below)
    ChunkWriter,
    QualityFilter,
    Rephrase,
    ResumableReader,
    Sampling,
    Select,
    VllmServer,
    load_prompts,
    run,
    slurm_task,
    where,
)

OUTPUT = "output/finephrase"  # a folder on the shared filesystem

pipeline = [
    ResumableReader("hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"),  # sharded over the array's tasks
    # Select(where("int_score >= 4")),  # source selection, e.g. the HQ pool
    Rephrase(
        load_prompts("faq,math,table,tutorial"),
        VllmServer("HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, gpu_memory_utilization=0.95,
                   extra_args=["--max-num-seqs=2048", "--max-num-batched-tokens=32768",  # speculative: not Gemma-3
                               '--speculative-config={"method": "suffix", "num_speculative_tokens": 32}']),
        Sampling(max_tokens=2048),  # temperature/top-p: the model's generation config (vLLM --generation-config auto)
        max_concurrency=2048,  # keep vLLM's queue full
        # regenerate=Regenerate(max_attempts=2),  # the default on vLLM: a gate reject for a fixable reason (a loop,
        #                                         # a missed shape) is asked again once, hotter (docs/quality.md)
        # constrain_format=True,  # vLLM structured outputs with each template's grammar (docs/quality.md; planned,
        #                         # not yet measured on a GPU)
    ),
    QualityFilter(),  # the quality gate: generations that fail it become rejects (OUTPUT/rejects/<prompt>/)
    ChunkWriter(OUTPUT, chunk_size=2000),  # commits 2,000 source documents at a time, exactly once
]

if __name__ == "__main__":  # required: datatrove's workers re-import this file
    run(pipeline, exit_on_error=True, **slurm_task(OUTPUT))  # rank and task count of this SLURM array task
