"""Rephrase part of the bundled sample into FAQs and tutorials with the embedded CPU model.

A pipeline definition to copy and edit (docs/pipelines.md). Run it from the repository root:

    python pipelines/sample_faq.py            # rerun to resume; `finephrase verify output/sample-faq` to check
"""

from datatrove.pipeline.filters import LambdaFilter

from finephrase.client import Sampling
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import Select, where
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.writers.chunk_writer import ChunkWriter
from finephrase.prompts import load_prompts
from finephrase.run import run
from finephrase.serving import LlamaCppServer

OUTPUT = "output/sample-faq"

pipeline = [
    ResumableReader("data/sample/python-docs.parquet", limit=8),  # files, folders, globs or hf:// paths
    # source selection: documents refused here are listed under OUTPUT/filtered/ with the reason, not rephrased
    Select(where("int_score >= 4")),  # FineWeb-Edu's high-quality pool; "int_score <= 1" for the low-quality one
    LambdaFilter(lambda doc: "python" in doc.text.lower()),  # any datatrove filter, as a step of its own
    Rephrase(
        load_prompts("faq,tutorial"),  # any names from `finephrase prompts`
        LlamaCppServer(context_length=2048, slots=4),  # the packaged SmolLM2-135M-Instruct (or gguf=PATH)
        Sampling(temperature=0.2, top_p=0.9, seed=0, max_tokens=512),
        max_concurrency=4,
        constrain_format=True,  # the templates' grammars: without them the 135M model rarely writes either format
    ),
    QualityFilter(),  # generations that fail the gate become rejects, with the reason
    ChunkWriter(OUTPUT, chunk_size=4),  # documents per committed chunk
]

if __name__ == "__main__":  # required: datatrove's workers re-import this file
    run(pipeline)
