"""The FinePhrase paper's run, as its published launcher ran it: FineWeb-Edu (sample-350BT) rephrased by
SmolLM2-1.7B-Instruct on vLLM with the paper's own four prompts (format/faq, math, table, tutorial), read from a
checkout of huggingface/finephrase that you point FINEPHRASE_PAPER_PROMPTS at. Submit it with

    git clone https://github.com/huggingface/finephrase ~/finephrase-paper      # once, where there is internet
    export FINEPHRASE_PAPER_PROMPTS=~/finephrase-paper/prompts
    sbatch --array=0-99 slurm/rephrase.sh pipelines/finephrase_paper.py

What is identical to the paper's requests and what differs (truncation by tokens, the quality gate, the four
prompts in one pass): docs/reproducing.md. A datatrove pipeline: a list of steps, read top to bottom.
"""

import os
from pathlib import Path

from finephrase.pipeline import ChunkWriter, QualityFilter, Rephrase, ResumableReader, Sampling, VllmServer, run
from finephrase.pipeline import load_prompts, slurm_task

OUTPUT = "output/finephrase-paper"  # a folder on the shared filesystem
PAPER_PROMPTS = Path(os.environ.get("FINEPHRASE_PAPER_PROMPTS", "finephrase-paper/prompts")).expanduser()
if not (PAPER_PROMPTS / "format").is_dir():
    raise SystemExit(f"error: no paper prompts at {PAPER_PROMPTS}/format: set FINEPHRASE_PAPER_PROMPTS to the prompts/ "
                     "folder of a checkout of https://github.com/huggingface/finephrase")

pipeline = [
    ResumableReader("hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"),  # sharded over the array's tasks
    Rephrase(
        load_prompts("format/faq,format/math,format/table,format/tutorial", PAPER_PROMPTS),  # the files as they are
        VllmServer("HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, gpu_memory_utilization=0.90,
                   extra_args=["--max-num-seqs=2048", "--max-num-batched-tokens=16384",  # the launcher's (OOM-safe)
                               '--speculative-config={"method": "suffix", "num_speculative_tokens": 32}']),
        Sampling(max_tokens=2048),  # temperature/top-p: the model's generation config, as the launcher used it
        max_concurrency=2048,  # keep vLLM's queue full (its max-num-seqs)
    ),
    QualityFilter(),  # the quality gate with each file's well-known check: what fails it becomes a reject
    ChunkWriter(OUTPUT, chunk_size=2000),  # commits 2,000 source documents at a time, exactly once
]

if __name__ == "__main__":  # required: datatrove's workers re-import this file
    run(pipeline, exit_on_error=True, **slurm_task(OUTPUT))  # rank and task count of this SLURM array task
