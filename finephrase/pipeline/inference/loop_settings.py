"""What one task's request loop is told: a frozen settings object that Rephrase builds at run time from its own
settings and what it learned from the server (token budget, per-prompt request fields). The loop reads nothing
else from the step, and the step keeps none of it on itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from finephrase.prompts.templates import PromptTemplate
from finephrase.quality.regenerate import Regenerate
from finephrase.serving.client import Sampling


@dataclass(frozen=True)
class LoopSettings:
    prompts: tuple[PromptTemplate, ...]
    sampling: Sampling
    max_concurrency: int  # requests in flight
    chunk_size: int  # source documents per chunk
    max_held_docs: int  # documents read and not yet committed, at most
    budget: int  # tokens of the document in a request (one cut for all prompts: they share a prefix)
    extra_fields: Mapping[str, dict] = field(default_factory=dict)  # per prompt: more request fields
    progress_interval: float = 30.0
    progress_tty: bool | None = None
    cpu_engine: bool = False  # the embedded engine: the progress line watches the CPU's load
    pin_slots: bool = False  # a document's prompts one after another on the engine sequence of its slot (id_slot)
    regenerate: Regenerate = field(default_factory=lambda: Regenerate(max_attempts=1))  # rejects asked again

    def __post_init__(self):
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "extra_fields", MappingProxyType(dict(self.extra_fields)))
