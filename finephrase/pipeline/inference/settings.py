"""How the rephrasing step works, declared once: `RephraseSettings`, a frozen object that checks itself when it is
built. `finephrase rephrase` makes it from its flags (`RunConfig.rephrase_settings`) and a pipeline file from the
keywords it gives Rephrase; the step takes it whole and never changes it. The run's own copy of the step is a new
step built with changed settings (`Rephrase.for_run`), so the user's list stays as it was written.

What the server decides (its context, its engine's request style, how often a rejected generation is asked again)
is filled in once, when the step is built (`resolved`): a settings object held by a step is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from finephrase.errors import UsageError
from finephrase.quality.constrain import style_for
from finephrase.quality.regenerate import Regenerate, default_attempts

PAPER_CONTEXT = 8192  # tokens per request when neither the settings nor the server say
# generations that may wait for a commit, per request slot: at a steady rate of max_concurrency / median latency,
# a straggler of up to ~30x the median latency holds its chunk open without the reader pausing
HELD_GENERATIONS_PER_SLOT = 32


@dataclass(frozen=True)
class RephraseSettings:
    """Every setting of the rephrasing step, with its default; built checked, never changed (`replace` makes a new
    one, checked again)."""

    # tokens per request; None: the server's context when it has one (LlamaCppServer, VllmServer), else 8192
    context_length: int | None = None
    max_concurrency: int = 64  # requests in flight per task
    request_timeout: float = 600.0  # seconds one request may take
    max_retries: int = 3  # tries again after a transport error or a 5xx
    # documents read and not yet committed, at most; None: from chunk_size and max_concurrency (held_limit)
    max_held_docs: int | None = None
    # source documents per chunk and the output folder whose ledger says what is committed: the ChunkWriter's.
    # finephrase.run.run gives them to its copy of the step; give them here to run the list with a plain executor
    chunk_size: int | None = None
    resume_dir: str | None = None
    progress_interval: float = 30.0  # seconds between progress lines
    progress_tty: bool | None = None  # None: a live line when stderr is a terminal
    api_key_env: str | None = "FINEPHRASE_API_KEY"  # the key itself is read at run time, never stored or logged
    tokenizer_gguf: str | None = None  # count tokens in-process with this GGUF's vocabulary (embedded)
    max_server_restarts: int = 3  # a managed server that dies is restarted this often
    chat_template_kwargs: dict | None = None  # sent with every request (e.g. Qwen3: thinking off)
    # constrained generation: each template's [check] grammar goes with its requests, the way this server's engine
    # reads it. None: on with the embedded engine (its small model rarely writes the format otherwise)
    constrain_format: bool | None = None
    constrain_style: str | None = None  # None: unconstrained; "auto": from the server's tokenize endpoint
    engine_style: str | None = None  # for the templates' [request.<engine>] fields: "llamacpp" | "vllm" | "auto"
    # rejects a new sample can fix are asked again (quality/regenerate.py); None: 3 attempts on the embedded
    # engine, 2 on a GPU server or an endpoint; Regenerate(max_attempts=1) turns it off
    regenerate: Regenerate | None = None

    def __post_init__(self):
        if self.chat_template_kwargs is not None:  # its own copy: the caller's dict may change after
            object.__setattr__(self, "chat_template_kwargs", dict(self.chat_template_kwargs))
        if self.max_concurrency < 1:
            raise UsageError(f"--max-concurrency {self.max_concurrency}: must be at least 1")
        if self.request_timeout <= 0:
            raise UsageError(f"--request-timeout {self.request_timeout}: must be above 0 seconds")
        if self.max_retries < 0:
            raise UsageError(f"--max-retries {self.max_retries}: must be 0 or more")
        if self.context_length is not None and self.context_length < 1:
            raise UsageError(f"--context-length {self.context_length}: must be at least 1 token")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise UsageError(f"--chunk-size {self.chunk_size}: must be at least 1")
        if self.max_held_docs is not None and self.chunk_size is not None and \
                self.max_held_docs < 2 * self.chunk_size:
            raise UsageError(f"--max-held-docs {self.max_held_docs}: must be at least twice --chunk-size "
                             f"({2 * self.chunk_size}), or a chunk could not close")

    @classmethod
    def of(cls, given: "RephraseSettings | None" = None, **changes) -> "RephraseSettings":
        """`given` (or the defaults) with `changes`; a name that is not a setting is one line, not a TypeError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise UsageError(f"Rephrase has no setting {', '.join(unknown)} (its settings: {', '.join(sorted(names))})")
        if given is not None and not isinstance(given, cls):
            raise UsageError(f"Rephrase's fourth argument is its RephraseSettings, not {type(given).__name__}: "
                             f"give the other settings by name (e.g. context_length=2048)")
        return replace(given, **changes) if given is not None else cls(**changes)

    def resolved(self, server) -> "RephraseSettings":
        """These settings with what `server` decides filled in (idempotent: a resolved object stays as it is)."""
        backend = server.backend
        constrain = self.constrain_format if self.constrain_format is not None else backend == "embedded"
        return replace(
            self,
            context_length=self.context_length or getattr(server, "context_length", None) or PAPER_CONTEXT,
            constrain_format=constrain,
            constrain_style=self.constrain_style or (style_for(backend) if constrain else None),
            engine_style=self.engine_style or style_for(backend),
            regenerate=self.regenerate or Regenerate(max_attempts=default_attempts(backend)))

    def held_limit(self, prompts: int) -> int:
        """The reader pauses while this many documents wait in uncommitted chunks (their rows are in memory)."""
        if not self.chunk_size:
            raise UsageError("Rephrase has no chunk_size: run the pipeline with finephrase.run.run (it takes it "
                             "from the ChunkWriter), or pass chunk_size=")
        return self.max_held_docs or max(2 * self.chunk_size,
                                         HELD_GENERATIONS_PER_SLOT * self.max_concurrency // prompts)
