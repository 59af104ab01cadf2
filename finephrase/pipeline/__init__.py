"""Everything a pipeline definition needs, in one import (docs/pipelines.md):

    from finephrase.pipeline import (ChunkWriter, NamedFilter, QualityFilter, Rephrase, ResumableReader, Sampling,
                                     Select, VllmServer, load_prompts, run, where)

The names are loaded on first use (PEP 562), so importing one part of `finephrase.pipeline` (or the CLI) does not
load the others.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ResumableReader": "finephrase.pipeline.readers.resumable",
    "Select": "finephrase.pipeline.filters.select",
    "NamedFilter": "finephrase.pipeline.filters.select",
    "TokenBudget": "finephrase.pipeline.filters.select",
    "where": "finephrase.pipeline.filters.select",
    "language_is": "finephrase.pipeline.filters.select",
    "length_between": "finephrase.pipeline.filters.select",
    "sample": "finephrase.pipeline.filters.select",
    "Accounted": "finephrase.pipeline.filters.marking",
    "MarkingFilter": "finephrase.pipeline.filters.marking",
    "Rephrase": "finephrase.pipeline.inference.rephrase",
    "RephraseSettings": "finephrase.pipeline.inference.settings",
    "QualityFilter": "finephrase.pipeline.filters.quality",
    "QualityGate": "finephrase.quality.gate",
    "Regenerate": "finephrase.quality.regenerate",
    "ChunkWriter": "finephrase.pipeline.writers.chunk_writer",
    "Sampling": "finephrase.serving.client",
    "load_prompts": "finephrase.prompts.library",
    "LlamaCppServer": "finephrase.serving",
    "VllmServer": "finephrase.serving",
    "Endpoint": "finephrase.serving",
    "get_preset": "finephrase.serving.models",
    "run": "finephrase.run.runner",
    "slurm_task": "finephrase.run.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'finephrase.pipeline' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly next time
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
