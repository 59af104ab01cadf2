"""Rephrase's request loop (asyncio): keeps up to `max_concurrency` requests in flight, restarts a managed server
that dies, stops taking documents on a drain, and hands each chunk downstream as soon as its own documents are
done, in any order (a straggling request holds back only its own chunk).

Threads: the upstream generator (reader + selection) is consumed by a reader thread into a bounded queue; the
loop never does blocking I/O; a finished chunk is handed to the pipeline's consumer thread (the gate and the
writer run there) and the loop waits for it to be committed. The documents held in chunks not yet committed are
bounded (`max_held_docs`), so memory stays flat however long the input is.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from datatrove.data import Document
from datatrove.utils.logging import logger

from finephrase.errors import FinephraseError
from finephrase.monitor.occupancy import InFlight
from finephrase.monitor.progress import Progress
from finephrase.pipeline.filters.select import doc_tokens
from finephrase.pipeline.inference.generations import Chunk, ResumeCheck, generation
from finephrase.pipeline.inference.loop_settings import LoopSettings
from finephrase.pipeline.inference.reader_queue import END, Failure, produce, take
from finephrase.pipeline.inference.slots import RequestSlots
from finephrase.process.drain import DRAIN
from finephrase.prompts.templates import PromptTemplate
from finephrase.quality.parsing import parse_output
from finephrase.quality.regenerate import attempt_seed
from finephrase.serving.client import RequestRejected, ServerUnavailable, request_seed
from finephrase.serving.counters import EngineCounter
from finephrase.serving.handle import ServerHandle
from finephrase.serving.truncation import fit_to_budget
from finephrase.store import metadata as meta

COUNTER_INTERVAL_S = 2.0  # how often the engine is asked how many tokens it generated


class RequestLoop:
    """One task's requests. `settings`: what the loop is told (LoopSettings); `count(text)`: awaitable token count
    of the served model's tokenizer (None: none known); `server`: the ServerHandle (its address, restarts);
    `handoff(docs)`: awaitable that returns once the pipeline downstream has committed the chunk `docs`."""

    def __init__(self, settings: LoopSettings, data, rank: int, world_size: int, state, client, count,
                 server: ServerHandle, handoff, snapshot_path):
        self.settings, self.data, self.rank, self.client, self.handoff = settings, data, rank, client, handoff
        self.count, self.server = count, server
        self.prompts: tuple[PromptTemplate, ...] = settings.prompts
        self.inflight = InFlight(settings.max_concurrency)
        self.progress = Progress(rank, world_size, len(self.prompts), settings.progress_interval,
                                 settings.progress_tty, start_docs=state.committed_docs,
                                 start_frac=state.prefix_frac, snapshot_path=snapshot_path, inflight=self.inflight,
                                 cpu_engine=settings.cpu_engine)
        self.engine_counter = EngineCounter(client)
        self.resumed = ResumeCheck(state) if state.entries else None
        self.chunk = Chunk(state.next_chunk)
        self.slots = RequestSlots(settings.max_concurrency)  # the oldest chunk's requests first
        self.open_chunks: dict[int, Chunk] = {}
        self.changed = asyncio.Event()  # a chunk completed or was committed
        self.fatal: list[BaseException] = []
        self.tasks: set[asyncio.Task] = set()
        self.held = 0  # documents read and not yet committed (open chunks and the one being filled)
        self.committed = 0
        self.done_reading = self.drained = False
        self.generation = 0  # server restarts seen
        self.restart_lock = asyncio.Lock()
        self.queue: queue.Queue = queue.Queue(maxsize=max(256, 2 * settings.max_concurrency))
        self.stop = threading.Event()
        self.commit_task: asyncio.Task | None = None

    # -- the whole loop -----------------------------------------------------------------------------------------

    async def run(self) -> dict:
        thread = threading.Thread(target=produce, args=(self.data, self.queue, self.stop),
                                  name=f"finephrase-reader-{self.rank}", daemon=True)
        thread.start()
        tick_task = asyncio.create_task(self._ticker())
        count_task = asyncio.create_task(self._engine_counts())
        self.commit_task = commit_task = asyncio.create_task(self._committer())
        outcome = "failed"
        try:
            while not self.done_reading:
                items = await asyncio.to_thread(take, self.queue, 256, self.stop)
                for item in items:
                    if self.fatal or commit_task.done() or not await self._accept(item):
                        break
                if self.fatal or commit_task.done():
                    break
            if self.tasks:
                await asyncio.gather(*self.tasks)
            self.changed.set()
            await commit_task
            if not self.fatal:
                outcome = "drained" if self.drained else "finished"
        except (KeyboardInterrupt, asyncio.CancelledError):
            outcome = "interrupted"
            raise
        finally:
            self.stop.set()
            tick_task.cancel()
            count_task.cancel()
            for t in self.tasks:
                t.cancel()
            if not commit_task.done():
                commit_task.cancel()
            self.progress.close(outcome)
        if commit_task.done() and not commit_task.cancelled() and commit_task.exception():
            raise commit_task.exception()
        if self.fatal:
            e = self.fatal[0]
            if isinstance(e, FinephraseError):
                raise e
            raise RuntimeError(f"task {self.rank} stopped: {type(e).__name__}: {e}") from e
        return {"drained": self.drained, "committed": self.committed}

    # -- taking documents ---------------------------------------------------------------------------------------

    async def _accept(self, item) -> bool:
        """Take one item from the reader; False when reading is over (the input ended, or a drain)."""
        if item is END or DRAIN.is_set():  # a drain: stop taking documents; commit what is in hand
            self.drained = item is not END
            self.done_reading = True
            if self.chunk.docs:
                self._close(self.chunk)
            self.changed.set()
            return False
        if isinstance(item, Failure):
            raise item.exc
        doc: Document = item
        read = meta.read_count(doc)
        if self.resumed:
            self.resumed.check(read)
            if self.chunk.docs and self.resumed.between(self.chunk.pos["read"], read):
                self._next_chunk()  # a chunk never spans a committed range the reader skipped
        c = self.chunk
        if c.first is None:
            c.first = read
        c.docs += 1
        self.held += 1
        c.pos = {**doc.metadata[meta.POSITION], "frac": doc.metadata.get(meta.FRACTION, 0.0)}
        self.progress.pulled_doc(doc.metadata.get(meta.FRACTION, 0.0))
        await self._start_document(doc, c)
        if c.docs >= self.settings.chunk_size:
            self._next_chunk()
        stopping = lambda: self.fatal or self.commit_task.done() or DRAIN.is_set()  # noqa: E731
        while self.held >= self.settings.max_held_docs and not stopping():
            await asyncio.sleep(0.05)  # memory bound: wait for commits (stragglers hold only their own)
        return True

    async def _start_document(self, doc: Document, c: Chunk):
        if reason := doc.metadata.get(meta.REJECTED):  # an unreadable source record: a reject for every prompt
            for p in self.prompts:
                c.add(generation(doc, p, reject=reason))
            self.progress.finished_unit(units=len(self.prompts))
        elif meta.FILTERED in doc.metadata:  # refused by the selection: passed on as it is (its id is listed)
            c.add(doc)
            self.progress.finished_unit(units=len(self.prompts))
        else:
            c.selected_tokens += doc_tokens(doc)
            slot = await self.slots.acquire((c.index, meta.read_count(doc)))
            c.pending += len(self.prompts)
            t = asyncio.create_task(self._document(doc, c, slot))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    def _close(self, c: Chunk):
        c.closed = True
        self.open_chunks[c.index] = c
        if c.complete:
            self.changed.set()

    def _next_chunk(self):
        self._close(self.chunk)
        self.chunk = Chunk(self.chunk.index + 1)

    # -- committing ---------------------------------------------------------------------------------------------

    async def _committer(self):
        """Hands every complete chunk downstream, in whatever order they complete (also when the task is about to
        stop): a chunk waits only for its own documents."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            for c in [c for c in self.open_chunks.values() if c.complete]:
                await self.handoff(c.finish([p.name for p in self.prompts], self.inflight.take_since_commit()))
                del self.open_chunks[c.index]
                self.held -= c.docs
                self.committed += c.docs
                self.progress.committed(c.docs, c.reject_reasons())
            if self.fatal or (self.done_reading and not self.open_chunks):
                return

    async def _ticker(self):
        """Progress lines and snapshots keep coming while requests are long: once a second the requests in flight,
        and during a drain the requests left."""
        while True:
            await asyncio.sleep(1.0)
            self.inflight.sample()
            if DRAIN.is_set():
                self.progress.draining(self.requests_left())
            self.progress.sample()

    async def _engine_counts(self):  # apart from the ticker: a slow answer from the engine never delays it
        while True:
            await asyncio.sleep(COUNTER_INTERVAL_S)
            self.progress.engine_count(await self.engine_counter.read())

    def requests_left(self) -> int:
        """(document, prompt) requests started or still to send for the documents in hand."""
        return sum(c.pending for c in self.open_chunks.values()) + (self.chunk.pending if not self.chunk.closed
                                                                   else 0)

    # -- one document, one request --------------------------------------------------------------------------------

    async def _document(self, doc: Document, c: Chunk, slot: int):
        """All prompts of one document, the first alone: its prefill is cached by the engine (llama.cpp slot and
        prompt cache, vLLM prefix caching) before the others ask for the same prefix. It runs on the request slot
        the loop took for it, which then goes straight to the first sibling (a new document waiting for a slot
        would take it otherwise); each other sibling takes its own, before any request of a younger chunk, so
        requests in flight stay at the limit and chunks complete in reading order when they can.

        With `pin_slots` (the embedded engine, one sequence per request slot) the document keeps its slot and its
        prompts follow each other on the engine's sequence of that number (`id_slot`), where its prefix is: every
        sibling finds it cached, where llama.cpp's own choice (the least recently used idle sequence) often sends
        a sibling elsewhere to compute it again."""
        cut: list = []

        async def fitted():  # the document cut to the budget, once (a failed attempt is tried again)
            if not cut:
                cut.append(await fit_to_budget(doc.text, self.settings.budget, self.count))
                c.fitted(doc.text, cut[0])
            return cut[0]

        if self.settings.pin_slots:
            return await self._document_on_its_slot(doc, c, fitted, slot)
        first, *rest = self.prompts
        await self._one(doc, first, c, fitted, slot, keep_slot=bool(rest))
        siblings = []
        for i, p in enumerate(rest):
            if self.fatal:  # stopping: the chunk is failed and will not be committed
                if i == 0:
                    self.slots.release(slot)  # the slot kept from the first prompt
                c.failed = True
                self._settle(c)
                continue
            if i > 0:
                slot = await self.slots.acquire((c.index, meta.read_count(doc)))
            siblings.append(asyncio.create_task(self._one(doc, p, c, fitted, slot)))
        if siblings:
            await asyncio.gather(*siblings)

    async def _document_on_its_slot(self, doc: Document, c: Chunk, fitted, slot: int):
        """The prompts of one document one after another on request slot `slot`, given back at the end."""
        try:
            for p in self.prompts:
                if self.fatal:  # stopping: the chunk is failed and will not be committed
                    c.failed = True
                    self._settle(c)
                    continue
                await self._one(doc, p, c, fitted, slot, keep_slot=True)
        finally:
            self.slots.release(slot)

    def _settle(self, c: Chunk):
        c.pending -= 1
        if c.complete:
            self.changed.set()

    async def _one(self, doc: Document, prompt: PromptTemplate, c: Chunk, fit, slot: int, keep_slot: bool = False):
        """One request on slot `slot`, taken for it; `keep_slot`: the slot is not given back (the caller hands it
        on)."""
        try:
            out = await self._attempts(doc, prompt, fit, c, slot)
            c.add(out)
            self.progress.finished_unit(out.metadata[meta.FIELDS].get("output_tokens") or 0)
        except ServerUnavailable as e:
            c.failed = True
            if self.server.managed and self.server.restarts:
                e = ServerUnavailable(f"{e}; the model server died {self.server.restarts + 1} times, restarts "
                                      f"exhausted (see {self.server.log_path or 'its log'})")
            self.fatal.append(e)
            self.changed.set()
        except asyncio.CancelledError:
            c.failed = True
            raise
        except Exception as e:  # our own bug: stop rather than lose the document
            c.failed = True
            self.fatal.append(e)
            self.changed.set()
        finally:
            if not keep_slot:
                self.slots.release(slot)
            self._settle(c)

    async def _attempts(self, doc: Document, prompt: PromptTemplate, fit, c: Chunk, slot: int) -> Document:
        """Generations of (doc, prompt) until the gate publishes one or a reason no new sample fixes comes up, at
        most `max_attempts` (regenerate.py); the last one goes downstream, with its attempt number and the earlier
        attempts' reasons. A discarded attempt's tokens are counted in its chunk (what retries cost)."""
        regen = self.settings.regenerate
        reasons: list[str] = []
        for attempt in range(1, regen.max_attempts + 1):
            out = await self._served(doc, prompt, fit, c.index, attempt, slot)
            if attempt == regen.max_attempts:
                break
            m = out.metadata
            reason = m.get(meta.REJECTED) or regen.judge(out.text, m[meta.FIELDS].get("finish_reason"), prompt,
                                                         m.get(meta.SOURCE_TEXT))
            if reason is None or not regen.retryable(reason):
                break
            reasons.append(reason)
            c.retried(prompt.name, m[meta.FIELDS])
            self.progress.finished_unit(m[meta.FIELDS].get("output_tokens") or 0, units=0)
        return meta.with_attempts(out, attempt, reasons)

    async def _served(self, doc: Document, prompt: PromptTemplate, fit, chunk: int, attempt: int,
                      slot: int) -> Document:
        """One generation, restarting a managed server that died under it (the request is then sent again)."""
        while True:
            seen = self.generation
            try:
                return await self._request(doc, prompt, fit, chunk, attempt, slot)
            except ServerUnavailable:
                if not await self._restart_server(seen):
                    raise

    async def _request(self, doc: Document, prompt: PromptTemplate, fit, chunk: int, attempt: int = 1,
                       slot: int | None = None) -> Document:
        """One generation for (doc, prompt) from the document's text as `await fit()` cuts it to the context, on
        the engine's sequence `slot` when the loop pins them."""
        known = {"model": self.client.model}
        try:
            fitted = await fit()
            known["input_truncated"] = fitted.truncated
            key, ok = self.inflight.begin(doc.id, prompt.name, chunk), False
            try:
                regen, sampling = self.settings.regenerate, self.settings.sampling
                seed = attempt_seed(request_seed(sampling.seed, doc.id, prompt.name), attempt)
                extra = self.settings.extra_fields.get(prompt.name) or {}
                if self.settings.pin_slots and slot is not None:
                    extra = {**extra, "id_slot": slot}
                res = await self.client.chat(prompt.render(fitted.text), regen.sampling(sampling, attempt), seed,
                                             extra=extra or None)
                ok = True
            finally:
                self.inflight.end(key, ok)
        except RequestRejected as e:
            return generation(doc, prompt, reject=e.reason, detail=e.detail or None, **known)
        parsed = parse_output(res.text, prompt.extract_tag)
        known.update(finish_reason=res.finish_reason, input_tokens=res.prompt_tokens,
                     cached_tokens=res.cached_tokens, output_tokens=res.completion_tokens)
        if parsed.problem:
            return generation(doc, prompt, res.text, reject=parsed.problem, raw=res.text,
                              source_text=fitted.text, **known)
        return generation(doc, prompt, parsed.text, raw=res.text, source_text=fitted.text,
                          reasoning=parsed.reasoning, **known)

    async def _restart_server(self, seen_generation: int) -> bool:
        """Restart a managed server that died (once for all the requests that saw it die); the client asks the
        handle for the address, so it follows."""
        # everything is decided under the lock: while one request restarts the server, it is briefly down, and a
        # request that fails in that window must wait for the restart, not give up
        async with self.restart_lock:
            if self.generation != seen_generation:
                return True  # another request restarted it already
            if not await asyncio.to_thread(self.server.can_restart):  # not ours, alive, or restarts exhausted
                return False
            limit = self.server.max_restarts
            logger.warning(f"task {self.rank}: model server died; restart {self.server.restarts + 1}/{limit}")
            self.progress.note(f"model server died: restart {self.server.restarts + 1}/{limit}")
            await asyncio.to_thread(self.server.restart)
            self.generation += 1
            return True
