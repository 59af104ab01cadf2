"""Rephrase: the inference step. Fans each selected document out to one request per prompt and passes the
generations downstream (one document per source document and prompt, see generations.py), chunk by chunk, to
the gate steps and the ChunkWriter that commits them.

Its settings are one frozen `RephraseSettings` (settings.py). It owns the request loop (request_loop.py: requests
in flight, server restarts, drain, the memory bound); the document's truncation (truncation.py) and the output's
parsing (parsing.py) are small modules it calls. Chunks are formed here (`chunk_size`: the pipeline's
ChunkWriter's, which `finephrase.run.run` gives the run's copy of this step) because this is where documents
wait for their requests; the writer decides nothing about them but checks they add up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from dataclasses import replace
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from finephrase.errors import UsageError
from finephrase.pipeline.inference.loop_settings import LoopSettings
from finephrase.pipeline.inference.request_loop import RequestLoop
from finephrase.pipeline.inference.settings import RephraseSettings
from finephrase.process.drain import Drained
from finephrase.prompts.templates import PromptTemplate, prefix_groups
from finephrase.quality.constrain import request_fields
from finephrase.serving.base import Endpoint
from finephrase.serving.client import ChatClient, Sampling, api_key_from
from finephrase.serving.handle import ServerHandle
from finephrase.serving.llamacpp import LlamaCppServer
from finephrase.serving.tokenizer import GGUFTokenizer
from finephrase.store.layout import LEDGER_DIR, check_prompt_name
from finephrase.store.ledger import Ledger, LedgerState

CHAT_TEMPLATE_MARGIN = 32  # role markers and special tokens the chat template adds around the messages


class Rephrase(PipelineStep):
    """`Rephrase(prompts, server, sampling, settings=None, **settings)`: the settings are a `RephraseSettings`
    (settings.py), given whole, by name (`max_concurrency=512`), or both (the names change the object given).
    The step keeps them as they are built and never changes them; the run uses a copy built by `for_run`."""

    name = "✍️ Rephrase"
    type = "🤖 - INFERENCE"

    def __init__(self, prompts: list[PromptTemplate], server: Endpoint, sampling: Sampling,
                 settings: RephraseSettings | None = None, **changes):
        super().__init__()
        if not prompts:
            raise UsageError("no prompts given")
        for p in prompts:  # a hand-built pipeline may bring templates that load_prompts did not check
            check_prompt_name(p.name)
        self.prompts = list(prompts)
        self.server = server
        self.sampling = sampling
        self.settings = RephraseSettings.of(settings, **changes).resolved(server)

    def for_run(self, server: Endpoint | None = None, **changes) -> "Rephrase":
        """A new step like this one for a run: another server handle and/or settings changed (checked again)."""
        return type(self)(self.prompts, server or self.server, self.sampling, replace(self.settings, **changes))

    # -- entry point --------------------------------------------------------------------------------------------

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        settings = self.settings
        held = settings.held_limit(len(self.prompts))
        if len(groups := prefix_groups(self.prompts)) > 1:
            logger.warning("these prompts begin differently before {{document}}, so each group computes a "
                           "document's prefill again (docs/prompts.md, shared beginning): "
                           + " | ".join(", ".join(g) for g in groups))
        state = Ledger(settings.resume_dir, rank).read() if settings.resume_dir else LedgerState()
        # a server the run started is used as it is; one that is not running (this step run on its own, or in a
        # process of its own) is started here and stopped at the end
        with ServerHandle(self.server, settings.max_server_restarts) as server:
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
        folder = self.settings.resume_dir
        return Path(folder) / LEDGER_DIR / f"rank_{rank:05d}.progress.json" if folder else None

    async def _run_async(self, data, rank, world_size, state, handoff, server: ServerHandle, held: int) -> dict:
        s = self.settings
        client = ChatClient(server, self.server.model, timeout=s.request_timeout,
                            max_retries=s.max_retries, max_connections=s.max_concurrency + 4,
                            api_key=api_key_from(s.api_key_env),
                            chat_template_kwargs=s.chat_template_kwargs)
        async with client:
            count = await self._token_counter(client)
            loop_settings = LoopSettings(
                prompts=self.prompts, sampling=self.sampling, max_concurrency=s.max_concurrency,
                chunk_size=s.chunk_size, max_held_docs=held, budget=await self._budget(count),
                extra_fields=await self._extra_fields(client), progress_interval=s.progress_interval,
                progress_tty=s.progress_tty, cpu_engine=isinstance(self.server, LlamaCppServer),
                pin_slots=self._pins_slots(), regenerate=s.regenerate)
            loop = RequestLoop(loop_settings, data, rank, world_size, state, client, count, server, handoff,
                               self.snapshot_path(rank))
            return await loop.run()

    def _pins_slots(self) -> bool:
        """The embedded engine this task owns, with a sequence for each request slot: a document's prompts then go
        to the sequence that holds its prefix (slot_reuse.py measured every sibling's prefix cached, 0.71x the
        wall time of letting llama.cpp pick). Not for a server other tasks share (their numbers would collide)."""
        return isinstance(self.server, LlamaCppServer) and self.server.slots >= self.settings.max_concurrency

    async def _token_counter(self, client: ChatClient):
        """The served model's token count: in-process from a GGUF (embedded), else the server's tokenize
        endpoint, else None (documents are then cut by bytes)."""
        gguf = self.settings.tokenizer_gguf
        if gguf is None and isinstance(self.server, LlamaCppServer):
            gguf = str(self.server.gguf_path)
        if gguf:
            return GGUFTokenizer(gguf).count
        return client.count_tokens if await client.detect_tokenizer() != "none" else None

    async def _extra_fields(self, client: ChatClient) -> dict[str, dict]:
        """Per prompt, what each request carries beyond the run's settings: the template's [request.<engine>]
        fields, and with constrained generation its [check] grammar, the way this engine reads them."""
        engine, constrain = self.settings.engine_style, self.settings.constrain_style
        if engine == "auto":  # an endpoint: told apart by its tokenize endpoint (detected already, or now)
            found = client.tokenize_style or await client.detect_tokenizer()
            engine = "llamacpp" if found in ("llamacpp", "llama-cpp-python") else "vllm"
        style = engine if constrain == "auto" else constrain
        return {p.name: {**p.request_fields(engine), **request_fields(p.check.get("grammar"), style)}
                for p in self.prompts}

    async def _budget(self, count) -> int:
        """Tokens left for the document in every prompt's request (one cut for all: they share a prefix)."""
        template_tokens = {}
        for p in self.prompts:
            n = await count(p.overhead_text()) if count else None
            template_tokens[p.name] = n if n is not None else len(p.overhead_text().encode())
        context = self.settings.context_length
        budgets = {p.name: context - self.sampling.max_tokens - template_tokens[p.name]
                   - CHAT_TEMPLATE_MARGIN for p in self.prompts}
        for name, b in budgets.items():
            if b <= 0:
                raise UsageError(
                    f"no room for the document with prompt '{name}': context {context} - max tokens "
                    f"{self.sampling.max_tokens} - template {template_tokens[name]} tokens <= 0; "
                    f"lower --max-tokens or raise --context-length")
        return min(budgets.values())
