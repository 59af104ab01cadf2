"""A baseline for the FinePhrase comparison: FineWeb-Edu rephrased with the five Nemotron-CC prompts (distill,
diverse QA pairs, extract knowledge, knowledge list, Wikipedia-style rephrasing) by SmolLM2-1.7B-Instruct on
vLLM, one H100 per task, with the same serving recipe as pipelines/production.py. Submit it with

    sbatch --array=0-99 slurm/rephrase.sh pipelines/nemotron_baseline.py

Nemotron-CC itself applied Wikipedia-style rephrasing to its low-quality data and the other four prompts to its
high-quality data; here all five see the same documents, so that they compare with FinePhrase's formats. For the
original split, make two configs: `where=["int_score <= 1"]` with "wikipedia_style_rephrasing" and
`where=["int_score >= 4"]` with the other four, each with its own OUTPUT.

Edit what you need; everything here is a plain setting.
"""

from finephrase.prompts import load_prompts
from finephrase.run import RunConfig, execute, slurm_task

OUTPUT = "output/nemotron-baseline"  # a folder on the shared filesystem

config = RunConfig.for_backend(
    "vllm",
    # the preset (finephrase/models.py, `finephrase models`): HuggingFaceTB/SmolLM2-1.7B-Instruct served with the
    # paper's flags (--max-num-seqs 2048, --max-num-batched-tokens 32768, suffix-32 speculative decoding) and
    # 2,048 requests in flight per task; vllm_args=[...] below would come after them and win
    model="smollm2-1.7b",
    inputs=["hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"],
    output=OUTPUT,
    prompts=load_prompts("distill,diverse_qa_pairs,extract_knowledge,knowledge_list,wikipedia_style_rephrasing"),
    context_length=8192,
    max_tokens=2048,  # sampling: the model's generation config (vLLM --generation-config auto)
    gpu_memory_utilization=0.95,
    chunk_size=2000,
    **slurm_task(OUTPUT),  # rank and task count of this SLURM array task
)

if __name__ == "__main__":
    execute(config)
