"""Rephrase part of the bundled sample into FAQs and tutorials with the embedded CPU model.

A pipeline definition to copy and edit (docs/pipelines.md). Run it from the repository root:

    python pipelines/sample_faq.py            # rerun to resume; `finephrase verify output/sample-faq` to check
"""

from finephrase.pipeline import (
    ChunkWriter,
    LlamaCppServer,
    NamedFilter,
    QualityFilter,
    Rephrase,
    ResumableReader,
    Sampling,
    Select,
    load_prompts,
    run,
    where,
)

OUTPUT = "output/sample-faq"

pipeline = [
    ResumableReader("data/sample/python-docs.parquet", limit=8),  # files, folders, globs or hf:// paths
    # source selection: documents refused here are listed under OUTPUT/filtered/ with the reason, not rephrased
    Select(where("int_score >= 4")),  # FineWeb-Edu's high-quality pool; "int_score <= 1" for the low-quality one
    # any datatrove filter, as a step of its own; a NamedFilter gives what it refuses a readable reason. A change
    # to the lambda (or to a filter's parameters) is a changed run: a rerun into OUTPUT is then refused
    NamedFilter(lambda doc: "python" in doc.text.lower(), "no_python"),
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
    run(pipeline, exit_on_error=True)  # errors end the script with one line and an exit code
