"""A rephrasing run's settings (`RunConfig`: what `finephrase rephrase`'s flags and the sweeps set) and the
pipeline they stand for (`build_pipeline`): the same list of steps a pipeline definition spells out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import Select, TokenBudget, language_is, length_between, sample, where
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.inference.settings import RephraseSettings
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.writers.chunk_writer import ChunkWriter
from finephrase.process.array_task import worker_processes
from finephrase.prompts.templates import PromptTemplate
from finephrase.quality.regenerate import Regenerate, default_attempts
from finephrase.run.preflight import check_settings
from finephrase.serving import Endpoint, LlamaCppServer, VllmServer, packaged_gguf_path
from finephrase.serving.client import Sampling, api_key_from
from finephrase.serving.models import apply_preset

# Per-backend defaults: the embedded CPU model is small and slow (short contexts, small chunks, a short queue);
# a GPU server wants the paper's 8,192 context / 2,048 output tokens, big chunks and a full queue.
BACKEND_DEFAULTS = {
    "embedded": dict(model="SmolLM2-135M-Instruct", context_length=2048, max_tokens=512, temperature=0.2,
                     top_p=0.9, chunk_size=20, max_concurrency=4),
    "vllm": dict(model="HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, max_tokens=2048,
                 temperature=None, top_p=None, chunk_size=1000, max_concurrency=512),
    "endpoint": dict(model=None, context_length=8192, max_tokens=2048, temperature=None, top_p=None,
                     chunk_size=1000, max_concurrency=64),
}


@dataclass(frozen=True)
class RunConfig:
    """`finephrase rephrase`'s settings, frozen once `for_backend` has checked them (a sweep's point builds its own)."""

    inputs: list[str]
    output: str
    prompts: list[PromptTemplate]
    backend: str = "embedded"
    model: str | None = None
    endpoint_url: str | None = None
    context_length: int = 2048
    sampling: Sampling = field(default_factory=Sampling)
    text_column: str = "text"
    id_column: str | None = None  # None: "id" if the input has it, else positional ids; given: the input must have it
    limit: int = -1
    tasks: int = 1
    workers: int = 1
    chunk_size: int = 20
    max_concurrency: int = 4
    max_held_docs: int | None = None  # None: RephraseSettings.held_limit's default (32 per slot)
    request_timeout: float = 600.0
    max_retries: int = 3
    where: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    min_chars: int | None = None
    max_chars: int | None = None
    sample_rate: float | None = None
    token_budget: int | None = None
    progress_interval: float = 30.0
    api_key_env: str | None = "FINEPHRASE_API_KEY"
    gguf: str | None = None  # embedded: another GGUF than the packaged SmolLM2-135M-Instruct
    vllm_args: list[str] = field(default_factory=list)
    engine_args: list[str] = field(default_factory=list)  # embedded: llama.cpp parameters, NAME=VALUE
    gpu_memory_utilization: float = 0.9
    filters: list = field(default_factory=list)  # extra datatrove filters (pipeline definitions)
    gpus_per_task: int | None = None  # for GPU-hours; None: run()'s default (1 with vllm, 0 otherwise)
    rank: int | None = None  # run only this task of `tasks` (one SLURM array task); None: all of them
    chat_template_kwargs: dict | None = None  # sent with every request (e.g. Qwen3: thinking off)
    constrain_format: bool | None = None  # each template's [check] grammar with its requests; None: on if embedded
    max_attempts: int | None = None  # generations per (document, prompt), rejects regenerated; None: the backend's
    allow_short_documents: bool = False  # run even when less than a quarter of the context is left for the document

    @classmethod
    def for_backend(cls, backend: str = "embedded", *, max_tokens: int | None = None,
                    temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                    seed: int | None = None, **kw) -> "RunConfig":
        """A config with the backend's defaults for everything not given (None = use the default)."""
        if backend not in BACKEND_DEFAULTS:
            raise UsageError(f"unknown backend '{backend}': choose one of {', '.join(BACKEND_DEFAULTS)}")
        d = BACKEND_DEFAULTS[backend]
        kw = {k: v for k, v in kw.items() if v is not None}
        if backend == "embedded" and kw.get("model"):
            if not str(kw["model"]).endswith(".gguf"):
                raise UsageError("the embedded backend takes a GGUF file as model (default: the packaged "
                                 "SmolLM2-135M-Instruct)")
            if not Path(kw["model"]).is_file():
                raise UsageError(f"GGUF file {kw['model']} does not exist")
            kw["gguf"], kw["model"] = str(kw["model"]), Path(kw["model"]).stem
        kw = apply_preset(backend, kw)  # a short model name (finephrase.serving.models): Hub id, context, flags
        for k in ("model", "context_length", "chunk_size", "max_concurrency"):
            kw.setdefault(k, d[k])
        kw["sampling"] = Sampling(
            temperature=temperature if temperature is not None else d["temperature"],
            top_p=top_p if top_p is not None else d["top_p"],
            top_k=top_k, seed=seed, max_tokens=max_tokens or d["max_tokens"])
        if backend == "endpoint" and not kw.get("endpoint_url"):
            raise UsageError("the endpoint backend needs an endpoint URL (--endpoint-url URL)")
        cfg = cls(backend=backend, **kw)
        cfg = replace(cfg, workers=worker_processes(cfg.workers, cfg.tasks, cfg.rank))
        cfg.selection()  # validate conditions before anything starts
        cfg.rephrase_settings()  # the step's settings check themselves (pipeline/inference/settings.py)
        check_settings(cfg)
        return cfg

    def rephrase_settings(self) -> RephraseSettings:
        """What the Rephrase step of these settings is given, whole (the server decides the rest)."""
        return RephraseSettings(
            context_length=self.context_length, max_concurrency=self.max_concurrency,
            request_timeout=self.request_timeout, max_retries=self.max_retries, max_held_docs=self.max_held_docs,
            chunk_size=self.chunk_size, resume_dir=self.output, progress_interval=self.progress_interval,
            progress_tty=None if self.workers == 1 else False, api_key_env=self.api_key_env,
            tokenizer_gguf=(self.gguf or str(packaged_gguf_path())) if self.backend == "embedded" else None,
            chat_template_kwargs=self.chat_template_kwargs, constrain_format=self.constrain_format,
            regenerate=Regenerate(max_attempts=self.max_attempts or default_attempts(self.backend)))

    def selection(self) -> list:
        filters = [where(c) for c in self.where]
        if self.languages:
            filters.append(language_is(*self.languages))
        if self.min_chars is not None or self.max_chars is not None:
            filters.append(length_between(self.min_chars, self.max_chars))
        if self.sample_rate is not None:
            filters.append(sample(self.sample_rate, self.sampling.seed or 0))
        return filters + list(self.filters)

    def fingerprint(self, input_files) -> dict:
        """What defines the output (the fingerprint of the pipeline these settings build)."""
        from finephrase.pipeline.shape import inspect_pipeline
        from finephrase.run.manifest import fingerprint

        return fingerprint(inspect_pipeline(build_pipeline(self)), self.tasks, input_files)

    def api_key(self) -> str | None:
        return api_key_from(self.api_key_env)


def build_pipeline(cfg: RunConfig) -> list:
    """The pipeline `cfg` stands for: reader, selection, rephrase, gate, writer (the server not started)."""
    steps = [ResumableReader(cfg.inputs, text_column=cfg.text_column, id_column=cfg.id_column, limit=cfg.limit,
                             resume_dir=cfg.output)]
    selection = cfg.selection()
    if selection:
        steps.append(Select(*selection))
    if cfg.token_budget:
        steps.append(TokenBudget(cfg.token_budget, resume_dir=cfg.output))
    steps.append(Rephrase(cfg.prompts, make_server(cfg), cfg.sampling, cfg.rephrase_settings()))
    steps += [QualityFilter(), ChunkWriter(cfg.output, chunk_size=cfg.chunk_size)]
    return steps


def make_server(cfg: RunConfig) -> Endpoint:
    """The model server of `cfg.backend`, not started (`finephrase.run.run` starts it)."""
    if cfg.backend == "endpoint":
        return Endpoint(cfg.endpoint_url, cfg.model, api_key=cfg.api_key())
    if cfg.backend == "vllm":
        return VllmServer(cfg.model, context_length=cfg.context_length,
                          gpu_memory_utilization=cfg.gpu_memory_utilization, extra_args=cfg.vllm_args)
    # llama.cpp with one slot per request in flight (of all the tasks sharing it), `context_length` tokens each
    return LlamaCppServer(gguf=cfg.gguf, context_length=cfg.context_length, model_name=cfg.model,
                          slots=cfg.max_concurrency * cfg.workers, engine_args=cfg.engine_args)
