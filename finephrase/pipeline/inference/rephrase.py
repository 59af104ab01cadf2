"""Rephrase: the inference step. Fans each selected document out to one request per prompt and passes the
generations downstream (one document per source document and prompt, see generations.py), chunk by chunk, to
the gate steps and the ChunkWriter that commits them.

It owns the request loop (request_loop.py: requests in flight, server restarts, drain, the memory bound); the
document's truncation (truncation.py) and the output's parsing (parsing.py) are small modules it calls. Chunks
are formed here (`chunk_size`: the pipeline's ChunkWriter's, which `finephrase.run.run` gives the run's copy of
this step) because this is where documents wait for their requests; the writer decides nothing about them but
checks they add up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from finephrase.errors import UsageError
from finephrase.pipeline.inference.loop_settings import LoopSettings
from finephrase.pipeline.inference.request_loop import RequestLoop
from finephrase.process.drain import Drained
from finephrase.prompts.templates import PromptTemplate, prefix_groups
from finephrase.quality.constrain import request_fields, style_for
from finephrase.quality.regenerate import Regenerate, default_attempts
from finephrase.serving.base import Endpoint
from finephrase.serving.client import ChatClient, Sampling
from finephrase.serving.handle import ServerHandle
from finephrase.serving.llamacpp import LlamaCppServer, packaged_gguf_path
from finephrase.serving.tokenizer import GGUFTokenizer
from finephrase.store.layout import LEDGER_DIR, check_prompt_name
from finephrase.store.ledger import Ledger, LedgerState

CHAT_TEMPLATE_MARGIN = 32  # role markers and special tokens the chat template adds around the messages
# generations that may wait for a commit, per request slot: at a steady rate of max_concurrency / median latency,
# a straggler of up to ~30x the median latency holds its chunk open without the reader pausing
HELD_GENERATIONS_PER_SLOT = 32


class Rephrase(PipelineStep):
    name = "✍️ Rephrase"
    type = "🤖 - INFERENCE"

    def __init__(self, prompts: list[PromptTemplate], server: Endpoint, sampling: Sampling,
                 context_length: int | None = None, max_concurrency: int = 64, request_timeout: float = 600.0,
                 max_retries: int = 3, progress_interval: float = 30.0, progress_tty: bool | None = None,
                 api_key_env: str | None = "FINEPHRASE_API_KEY", tokenizer_gguf: str | None = None,
                 max_server_restarts: int = 3, chat_template_kwargs: dict | None = None,
                 constrain_style: str | None = None, engine_style: str | None = None,
                 max_held_docs: int | None = None, *, constrain_format: bool | None = None,
                 chunk_size: int | None = None, resume_dir: str | None = None, regenerate: Regenerate | None = None):
        super().__init__()
        if not prompts:
            raise UsageError("no prompts given")
        for p in prompts:  # a hand-built pipeline may bring templates that load_prompts did not check
            check_prompt_name(p.name)
        if max_concurrency < 1:
            raise UsageError("--max-concurrency must be at least 1")
        self.prompts = list(prompts)
        self.server = server
        self.sampling = sampling
        # tokens per request: the server's context when it has one (LlamaCppServer, VllmServer), else the paper's
        self.context_length = context_length or getattr(server, "context_length", None) or 8192
        self.max_concurrency = max_concurrency
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.progress_interval = progress_interval
        self.progress_tty = progress_tty
        self.api_key_env = api_key_env  # the key itself is read at run time: it never lands in executor.json
        self.tokenizer_gguf = tokenizer_gguf  # count tokens in-process with this GGUF's vocabulary (embedded)
        self.max_server_restarts = max_server_restarts  # a managed server that dies is restarted this often
        self.chat_template_kwargs = chat_template_kwargs  # sent with every request (e.g. Qwen3: thinking off)
        # constrained generation (constrain_format=True; None: on with the embedded engine, whose small model rarely
        # writes the format otherwise): each template's [check] grammar goes with its requests, the way this
        # server's engine reads it; constrain_style None: unconstrained; "auto": from the server's tokenize endpoint
        if constrain_format is None:
            constrain_format = server.backend == "embedded"
        self.constrain_style = constrain_style or (style_for(server.backend) if constrain_format else None)
        # the engine, for the templates' [request.<engine>] fields: "llamacpp" | "vllm" | "auto" (from the server)
        self.engine_style = engine_style or style_for(server.backend)
        self.max_held_docs = max_held_docs  # None: from chunk_size and max_concurrency (held_limit)
        # rejects a new sample can fix are asked again (regenerate.py): by default 3 attempts on the embedded
        # engine, 2 on a GPU server or an endpoint; Regenerate(max_attempts=1) turns it off
        self.regenerate = regenerate or Regenerate(max_attempts=default_attempts(server.backend))
        # source documents per chunk, and the output folder whose ledger says what is committed: the ChunkWriter's
        # chunk size and folder. run() takes them from the ChunkWriter (in its own copy of the step); give them
        # here to run the list with a plain datatrove executor
        self.chunk_size = chunk_size
        self.resume_dir = resume_dir

    def held_limit(self) -> int:
        """The reader pauses while this many documents wait in uncommitted chunks (their rows are in memory)."""
        if self.max_held_docs is not None and self.max_held_docs < 2 * self.chunk_size:
            raise UsageError(f"--max-held-docs must be at least twice --chunk-size ({2 * self.chunk_size})")
        return self.max_held_docs or max(2 * self.chunk_size,
                                         HELD_GENERATIONS_PER_SLOT * self.max_concurrency // len(self.prompts))

    # -- entry point --------------------------------------------------------------------------------------------

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if not self.chunk_size or self.chunk_size < 1:
            raise UsageError("Rephrase has no chunk_size: run the pipeline with finephrase.run.run (it takes it "
                             "from the ChunkWriter), or pass chunk_size=")
        held = self.held_limit()
        if len(groups := prefix_groups(self.prompts)) > 1:
            logger.warning("these prompts begin differently before {{document}}, so each group computes a "
                           "document's prefill again (docs/prompts.md, shared beginning): "
                           + " | ".join(", ".join(g) for g in groups))
        state = Ledger(self.resume_dir, rank).read() if self.resume_dir else LedgerState()
        # a server the run started is used as it is; one that is not running (this step run on its own, or in a
        # process of its own) is started here and stopped at the end
        with ServerHandle(self.server, self.max_server_restarts) as server:
            summary = yield from self._bridge(data, rank, world_size, state, server, held)
        if summary["drained"]:
            raise Drained(f"task {rank} drained: {summary['committed']} more documents committed")

    def _bridge(self, data, rank, world_size, state, server: ServerHandle, held: int):
        """Run the request loop in its own thread and yield each chunk it finishes here, in the pipeline's
        thread (the steps downstream commit it before the loop hears back). Returns the loop's summary."""
        handed: queue.Queue = queue.Queue()
        loop_ready = concurrent.futures.Future()

        async def handoff(docs):
            done = concurrent.futures.Future()
            handed.put(("chunk", docs, done))
            await asyncio.wrap_future(done)

        async def main():
            loop_ready.set_result((asyncio.get_running_loop(), asyncio.current_task()))
            return await self._run_async(data, rank, world_size, state, handoff, server, held)

        def in_thread():
            try:
                handed.put(("done", asyncio.run(main()), None))
            except BaseException as e:  # raised in the pipeline's thread
                handed.put(("error", e, None))

        thread = threading.Thread(target=in_thread, name=f"finephrase-requests-{rank}", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    kind, value, done = handed.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise value
                if kind == "done":
                    return value
                yield from value  # a step downstream that fails (or Ctrl-C) leaves through the finally below
                done.set_result(None)
        finally:
            if thread.is_alive() and loop_ready.done():  # stopped from here (Ctrl-C, a failing step downstream)
                loop, task = loop_ready.result()
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop closed meanwhile: nothing left to cancel
                    pass
            thread.join(timeout=60)

    def snapshot_path(self, rank: int) -> Path | None:
        return Path(self.resume_dir) / LEDGER_DIR / f"rank_{rank:05d}.progress.json" if self.resume_dir else None

    async def _run_async(self, data, rank, world_size, state, handoff, server: ServerHandle, held: int) -> dict:
        client = ChatClient(server, self.server.model, timeout=self.request_timeout,
                            max_retries=self.max_retries, max_connections=self.max_concurrency + 4,
                            api_key=os.environ.get(self.api_key_env) if self.api_key_env else None,
                            chat_template_kwargs=self.chat_template_kwargs)
        async with client:
            count = await self._token_counter(client)
            settings = LoopSettings(
                prompts=self.prompts, sampling=self.sampling, max_concurrency=self.max_concurrency,
                chunk_size=self.chunk_size, max_held_docs=held, budget=await self._budget(count),
                extra_fields=await self._extra_fields(client), progress_interval=self.progress_interval,
                progress_tty=self.progress_tty, cpu_engine=isinstance(self.server, LlamaCppServer),
                pin_slots=self._pins_slots(), regenerate=self.regenerate)
            loop = RequestLoop(settings, data, rank, world_size, state, client, count, server, handoff,
                               self.snapshot_path(rank))
            return await loop.run()

    def _pins_slots(self) -> bool:
        """The embedded engine this task owns, with a sequence for each request slot: a document's prompts then go
        to the sequence that holds its prefix (slot_reuse.py measured every sibling's prefix cached, 0.71x the
        wall time of letting llama.cpp pick). Not for a server other tasks share (their numbers would collide)."""
        return isinstance(self.server, LlamaCppServer) and self.server.slots >= self.max_concurrency

    async def _token_counter(self, client: ChatClient):
        """The served model's token count: in-process from a GGUF (embedded), else the server's tokenize
        endpoint, else None (documents are then cut by bytes)."""
        gguf = self.tokenizer_gguf
        if gguf is None and isinstance(self.server, LlamaCppServer):
            gguf = str(self.server.gguf or packaged_gguf_path())
        if gguf:
            return GGUFTokenizer(gguf).count
        return client.count_tokens if await client.detect_tokenizer() != "none" else None

    async def _extra_fields(self, client: ChatClient) -> dict[str, dict]:
        """Per prompt, what each request carries beyond the run's settings: the template's [request.<engine>]
        fields, and with constrained generation its [check] grammar, the way this engine reads them."""
        engine = self.engine_style or self.constrain_style
        if engine == "auto":  # an endpoint: told apart by its tokenize endpoint (detected already, or now)
            found = client.tokenize_style or await client.detect_tokenizer()
            engine = "llamacpp" if found in ("llamacpp", "llama-cpp-python") else "vllm"
        style = engine if self.constrain_style == "auto" else self.constrain_style
        return {p.name: {**p.request_fields(engine), **request_fields(p.check.get("grammar"), style)}
                for p in self.prompts}

    async def _budget(self, count) -> int:
        """Tokens left for the document in every prompt's request (one cut for all: they share a prefix)."""
        template_tokens = {}
        for p in self.prompts:
            n = await count(p.overhead_text()) if count else None
            template_tokens[p.name] = n if n is not None else len(p.overhead_text().encode())
        budgets = {p.name: self.context_length - self.sampling.max_tokens - template_tokens[p.name]
                   - CHAT_TEMPLATE_MARGIN for p in self.prompts}
        for name, b in budgets.items():
            if b <= 0:
                raise UsageError(
                    f"no room for the document with prompt '{name}': context {self.context_length} - max tokens "
                    f"{self.sampling.max_tokens} - template {template_tokens[name]} tokens <= 0; "
                    f"lower --max-tokens or raise --context-length")
        return min(budgets.values())
