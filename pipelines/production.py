"""The FinePhrase production recipe: FineWeb-Edu rephrased into FAQ, math, table and tutorial by
SmolLM2-1.7B-Instruct on vLLM, one H100 per task. Submit it with

    sbatch --array=0-99 slurm/rephrase.sh pipelines/production.py

Edit what you need; everything here is a plain setting.
"""

from finephrase.prompts import load_prompts
from finephrase.run import RunConfig, execute, slurm_task

OUTPUT = "output/finephrase"  # a folder on the shared filesystem

config = RunConfig.for_backend(
    "vllm",
    model="HuggingFaceTB/SmolLM2-1.7B-Instruct",
    inputs=["hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"],
    output=OUTPUT,
    prompts=load_prompts("faq,math,table,tutorial"),
    context_length=8192,
    max_tokens=2048,  # sampling: the model's generation config (vLLM --generation-config auto)
    gpu_memory_utilization=0.95,
    vllm_args=[
        "--max-num-seqs=2048",
        "--max-num-batched-tokens=32768",
        '--speculative-config={"method": "suffix", "num_speculative_tokens": 32}',  # not for Gemma-3
    ],
    max_concurrency=2048,  # keep vLLM's queue full
    # constrain_format=True,  # vLLM structured outputs with each template's grammar (docs/quality.md; planned,
    #                         # not yet measured on a GPU)
    chunk_size=2000,
    **slurm_task(OUTPUT),  # rank and task count of this SLURM array task
)

if __name__ == "__main__":
    execute(config)
