"""Rephrase part of the bundled sample into FAQs and tutorials with the embedded CPU model.

A pipeline definition to copy and edit. Run it from the repository root:

    python pipelines/sample_faq.py            # rerun to resume; `finephrase verify output/sample-faq` to check
"""

from finephrase.pipeline.filters.select import NamedFilter
from finephrase.prompts import load_prompts
from finephrase.run import RunConfig, execute

OUTPUT = "output/sample-faq"

config = RunConfig.for_backend(
    "embedded",  # or "vllm" (model=Hub id), or "endpoint" (endpoint_url=...)
    inputs=["data/sample/python-docs.parquet"],  # files, folders, globs or hf:// paths
    output=OUTPUT,
    prompts=load_prompts("faq,tutorial"),  # any names from `finephrase prompts`
    # source selection: documents refused here are counted and listed under OUTPUT/filtered/, not rephrased
    where=["int_score >= 4"],  # FineWeb-Edu's high-quality pool; "int_score <= 1" for the low-quality one
    filters=[NamedFilter(lambda doc: "python" in doc.text.lower(), "mentions_python")],  # any datatrove filter
    limit=8,  # documents read per task
    max_tokens=512,
    constrain_format=True,  # the templates' grammars: without them the 135M model rarely writes either format
    seed=0,
    chunk_size=4,  # documents per committed chunk
)

if __name__ == "__main__":  # required: datatrove's workers re-import this file
    execute(config)
