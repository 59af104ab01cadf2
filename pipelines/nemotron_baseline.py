"""A baseline for the FinePhrase comparison: FineWeb-Edu rephrased with the five Nemotron-CC prompts (distill,
diverse QA pairs, extract knowledge, knowledge list, Wikipedia-style rephrasing) by SmolLM2-1.7B-Instruct on
vLLM, one H100 per task, with the same serving recipe as pipelines/production.py. Submit it with

    sbatch --array=0-99 slurm/rephrase.sh pipelines/nemotron_baseline.py

Nemotron-CC itself applied Wikipedia-style rephrasing to its low-quality data and the other four prompts to its
high-quality data; here all five see the same documents, so that they compare with FinePhrase's formats. For the
original split, make two pipelines: `Select(where("int_score <= 1"))` with "wikipedia_style_rephrasing" and
`Select(where("int_score >= 4"))` with the other four, each with its own OUTPUT.

A datatrove pipeline: a list of steps (docs/pipelines.md).
"""

from finephrase.pipeline import (
    ChunkWriter,
    QualityFilter,
    Rephrase,
    ResumableReader,
    Sampling,
    VllmServer,
    get_preset,
    load_prompts,
    run,
    slurm_task,
)

OUTPUT = "output/nemotron-baseline"  # a folder on the shared filesystem
# the preset (finephrase/serving/models.py, `finephrase models`): HuggingFaceTB/SmolLM2-1.7B-Instruct served with the
# paper's flags (--max-num-seqs 2048, --max-num-batched-tokens 32768, suffix-32 speculative decoding) and 2,048
# requests in flight per task; flags added after preset.serve_args() win
preset = get_preset("smollm2-1.7b")

pipeline = [
    ResumableReader("hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"),
    Rephrase(
        load_prompts("distill,diverse_qa_pairs,extract_knowledge,knowledge_list,wikipedia_style_rephrasing"),
        VllmServer(preset.hub_id, context_length=8192, gpu_memory_utilization=0.95, extra_args=preset.serve_args()),
        Sampling(max_tokens=2048),  # temperature/top-p: the model's generation config (vLLM --generation-config auto)
        max_concurrency=preset.max_concurrency,
    ),
    QualityFilter(),
    ChunkWriter(OUTPUT, chunk_size=2000),
]

if __name__ == "__main__":  # required: datatrove's workers re-import this file
    run(pipeline, exit_on_error=True, **slurm_task(OUTPUT))  # rank and task count of this SLURM array task
