"""Rephrase: the sink step. Fans each selected document out to one request per prompt, parses and gates the
generations, and commits them chunk by chunk through the ledger (exactly once).

Threads: the upstream generator (reader + selection) is consumed by a reader thread into a bounded queue;
the request loop (asyncio) keeps up to `max_concurrency` requests in flight and never does blocking I/O;
parquet writing and fsync run in a worker thread. A chunk is committed as soon as its own documents are done,
in any order, so a straggling request holds back only its own chunk; the documents held in uncommitted chunks
are bounded (`max_held_docs`), so memory stays flat however long the input is.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import queue
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from finephrase.drain import DRAIN, Drained
from finephrase.client import ChatClient, RequestRejected, Sampling, ServerUnavailable, request_seed
from finephrase.errors import FinephraseError, UsageError
from finephrase.constrain import request_fields
from finephrase.gate import QualityGate
from finephrase.layout import check_prompt_name
from finephrase.ledger import Ledger, LedgerState, TaskLock
from finephrase.occupancy import InFlight
from finephrase.parsing import parse_output
from finephrase.pipeline.filters.select import doc_tokens
from finephrase.progress import Progress
from finephrase.prompts import PromptTemplate, prefix_groups
from finephrase.schema import FILTERED_SCHEMA, OUTPUT_SCHEMA, REJECT_SCHEMA, passthrough
from finephrase.serving.base import Endpoint, ManagedServer
from finephrase.serving.llamacpp import LlamaCppServer, packaged_gguf_path
from finephrase.tokenizer import GGUFTokenizer
from finephrase.truncation import fit_to_budget

CHAT_TEMPLATE_MARGIN = 32  # role markers and special tokens the chat template adds around the messages
# generations that may wait for a commit, per request slot: at a steady rate of max_concurrency / median latency,
# a straggler of up to ~30x the median latency holds its chunk open without the reader pausing
HELD_GENERATIONS_PER_SLOT = 32
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


@dataclass
class _Chunk:
    index: int
    first: int | None = None  # the input range it covers: documents first..pos["read"] in reading order (from 1)
    docs: int = 0
    pending: int = 0
    closed: bool = False
    pos: dict | None = None
    rows: dict = field(default_factory=lambda: defaultdict(list))
    rejects: dict = field(default_factory=lambda: defaultdict(list))
    filtered: list = field(default_factory=list)
    selected_tokens: int = 0
    failed: bool = False  # a (document, prompt) of it ended without a row or reject: never commit it

    @property
    def complete(self) -> bool:
        return self.closed and self.pending == 0 and not self.failed


def _take(q: queue.Queue, n: int, stop: threading.Event) -> list:
    """Block for one item (waking up to notice `stop`), then drain up to n without blocking."""
    while True:
        try:
            items = [q.get(timeout=0.2)]
            break
        except queue.Empty:
            if stop.is_set():
                return [_END]
    while len(items) < n:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            break
    return items


class Rephrase(PipelineStep):
    name = "✍️ Rephrase"
    type = "🤖 - INFERENCE"

    def __init__(self, output_dir: str, prompts: list[PromptTemplate], server: Endpoint, sampling: Sampling,
                 context_length: int = 8192, chunk_size: int = 1000, max_concurrency: int = 64,
                 request_timeout: float = 600.0, max_retries: int = 3, gate: QualityGate | None = None,
                 progress_interval: float = 30.0, progress_tty: bool | None = None,
                 api_key_env: str | None = "FINEPHRASE_API_KEY", tokenizer_gguf: str | None = None,
                 max_server_restarts: int = 3, chat_template_kwargs: dict | None = None,
                 constrain_style: str | None = None, engine_style: str | None = None,
                 max_held_docs: int | None = None):
        super().__init__()
        if not prompts:
            raise UsageError("no prompts given")
        for p in prompts:  # a hand-built pipeline may bring templates that load_prompts did not check
            check_prompt_name(p.name)
        if chunk_size < 1 or max_concurrency < 1:
            raise UsageError("--chunk-size and --max-concurrency must be at least 1")
        self.output_dir = str(output_dir)
        self.prompts = list(prompts)
        self.server = server
        self.sampling = sampling
        self.context_length = context_length
        self.chunk_size = chunk_size
        self.max_concurrency = max_concurrency
        self.request_timeout = request_timeout
        self.max_retries = max_retries
        self.gate = gate or QualityGate()
        self.progress_interval = progress_interval
        self.progress_tty = progress_tty
        self.api_key_env = api_key_env  # the key itself is read at run time: it never lands in executor.json
        self.tokenizer_gguf = tokenizer_gguf  # count tokens in-process with this GGUF's vocabulary (embedded)
        self.max_server_restarts = max_server_restarts  # a managed server that dies is restarted this often
        self.chat_template_kwargs = chat_template_kwargs  # sent with every request (e.g. Qwen3: thinking off)
        self.constrain_style = constrain_style  # None: unconstrained; "auto": from the server's tokenize endpoint
        # the engine, for the templates' [request.<engine>] fields: "llamacpp" | "vllm" | "auto" | None (send none)
        self.engine_style = engine_style
        self.extra_fields: dict[str, dict] = {}  # per prompt: what each request carries beyond the run's settings
        if max_held_docs is not None and max_held_docs < 2 * chunk_size:
            raise UsageError(f"--max-held-docs must be at least twice --chunk-size ({2 * chunk_size})")
        # the reader pauses while this many documents wait in uncommitted chunks (their rows are in memory)
        self.max_held_docs = max_held_docs or max(
            2 * chunk_size, HELD_GENERATIONS_PER_SLOT * max_concurrency // len(prompts))

    def data_dirs(self) -> list[Path]:
        root = Path(self.output_dir)
        dirs = [root / p.name for p in self.prompts] + [root / "rejects" / p.name for p in self.prompts]
        return dirs + [root / "filtered"]

    # -- entry point --------------------------------------------------------------------------------------------

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if len(groups := prefix_groups(self.prompts)) > 1:
            logger.warning("these prompts begin differently before {{document}}, so each group computes a "
                           "document's prefill again (docs/prompts.md, shared beginning): "
                           + " | ".join(", ".join(g) for g in groups))
        with TaskLock(self.output_dir, rank):
            yield from self._run_locked(data, rank, world_size)

    def _run_locked(self, data: DocumentsPipeline, rank: int, world_size: int) -> DocumentsPipeline:
        ledger = Ledger(self.output_dir, rank)
        state = ledger.recover(self.data_dirs())
        if state.finished:
            logger.info(f"task {rank}: already finished ({len(state.entries)} chunks committed)")
            return
        started = False
        if isinstance(self.server, ManagedServer) and not self.server.alive():
            self.server.start()
            started = True
        try:
            summary = asyncio.run(self._run_async(data, rank, world_size, ledger, state))
        finally:
            if started:
                self.server.stop()
        if summary.pop("drained", False):
            raise Drained(f"task {rank} drained: {summary.get('docs', 0)} more documents committed")
        ledger.mark_finished(summary)
        if False:  # a sink: nothing goes downstream
            yield

    # -- the request loop ---------------------------------------------------------------------------------------

    async def _run_async(self, data, rank, world_size, ledger: Ledger, state) -> dict:
        client = ChatClient(self.server.base_url, self.server.model, timeout=self.request_timeout,
                            max_retries=self.max_retries, max_connections=self.max_concurrency + 4,
                            api_key=os.environ.get(self.api_key_env) if self.api_key_env else None,
                            chat_template_kwargs=self.chat_template_kwargs)
        gguf = self.tokenizer_gguf
        if gguf is None and isinstance(self.server, LlamaCppServer):
            gguf = str(self.server.gguf or packaged_gguf_path())
        async with client:
            if gguf:
                self._count = GGUFTokenizer(gguf).count
            elif await client.detect_tokenizer() != "none":
                self._count = client.count_tokens
            else:
                self._count = None
            engine = self.engine_style or self.constrain_style
            if engine == "auto":  # an endpoint: told apart by its tokenize endpoint (detected above, or now)
                found = client.tokenize_style or await client.detect_tokenizer()
                engine = "llamacpp" if found in ("llamacpp", "llama-cpp-python") else "vllm"
            style = engine if self.constrain_style == "auto" else self.constrain_style
            # each template's [request.<engine>] fields, and with constrained generation its [check] grammar, sent
            # the way this engine reads it
            self.extra_fields = {p.name: {**p.request_fields(engine), **request_fields(p.check.get("grammar"), style)}
                                 for p in self.prompts}
            template_tokens = {}
            for p in self.prompts:
                n = await self._count(p.overhead_text()) if self._count else None
                template_tokens[p.name] = n if n is not None else len(p.overhead_text().encode())
            budgets = {p.name: self.context_length - self.sampling.max_tokens - template_tokens[p.name]
                       - CHAT_TEMPLATE_MARGIN for p in self.prompts}
            for name, b in budgets.items():
                if b <= 0:
                    raise UsageError(
                        f"no room for the document with prompt '{name}': context {self.context_length} - max tokens "
                        f"{self.sampling.max_tokens} - template {template_tokens[name]} tokens <= 0; "
                        f"lower --max-tokens or raise --context-length")
            return await self._loop(data, rank, world_size, ledger, state, client, budgets)

    async def _loop(self, data, rank, world_size, ledger, state, client, budgets) -> dict:
        q: queue.Queue = queue.Queue(maxsize=max(256, 2 * self.max_concurrency))
        stop = threading.Event()

        def produce():
            try:
                for doc in data:
                    while not stop.is_set():
                        try:
                            q.put(doc, timeout=0.2)
                            break
                        except queue.Full:
                            pass
                    if stop.is_set():
                        return
                q.put(_END)
            except BaseException as e:  # forwarded to the loop, raised there
                q.put(_Failure(e))

        inflight = InFlight(self.max_concurrency)
        progress = Progress(rank, world_size, len(self.prompts), self.progress_interval, self.progress_tty,
                            start_docs=state.committed_docs, start_frac=state.prefix_frac,
                            snapshot_path=ledger.path.with_name(f"rank_{rank:05d}.progress.json"),
                            inflight=inflight)
        outcome = "failed"
        sem = asyncio.Semaphore(self.max_concurrency)
        open_chunks: dict[int, _Chunk] = {}
        changed = asyncio.Event()  # a chunk completed or was committed
        fatal: list[BaseException] = []
        tasks: set[asyncio.Task] = set()
        totals = Counter()

        def settle(chunk: _Chunk):
            chunk.pending -= 1
            if chunk.complete:
                changed.set()

        restarts = {"count": 0, "generation": 0}
        restart_lock = asyncio.Lock()

        async def recover(seen_generation: int) -> bool:
            """Restart a managed server that died (once for all the requests that saw it die)."""
            if not isinstance(self.server, ManagedServer):
                return False
            # everything is decided under the lock: while one request restarts the server, `proc` is briefly None,
            # and a request that fails in that window must wait for the restart, not give up
            async with restart_lock:
                if restarts["generation"] != seen_generation:
                    return True  # another request restarted it already
                if self.server.proc is None:  # not a server this task started (nothing to restart)
                    return False
                if self.server.alive() or restarts["count"] >= self.max_server_restarts:
                    return False
                restarts["count"] += 1
                logger.warning(f"task {rank}: model server died; restart {restarts['count']}/"
                               f"{self.max_server_restarts}")
                progress.note(f"model server died: restart {restarts['count']}/{self.max_server_restarts}")
                await asyncio.to_thread(self.server.stop)
                await asyncio.to_thread(self.server.start)
                client.base_url = self.server.base_url
                restarts["generation"] += 1
                return True

        async def one(doc: Document, prompt: PromptTemplate, chunk: _Chunk, fit):
            try:
                while True:
                    generation = restarts["generation"]
                    try:
                        kind, row = await self._process(doc, prompt, client, fit, inflight, chunk.index)
                        break
                    except ServerUnavailable:
                        if not await recover(generation):
                            raise
                (chunk.rows if kind == "row" else chunk.rejects)[prompt.name].append(row)
                progress.finished_unit(row.get("output_tokens") or 0, row.get("reject_reason"))
            except ServerUnavailable as e:
                chunk.failed = True
                if isinstance(self.server, ManagedServer) and restarts["count"]:
                    e = ServerUnavailable(f"{e}; the model server died {restarts['count'] + 1} times, restarts "
                                          f"exhausted (see {self.server.log_path or 'its log'})")
                fatal.append(e)
                changed.set()
            except asyncio.CancelledError:
                chunk.failed = True
                raise
            except Exception as e:  # our own bug: stop rather than lose the document
                chunk.failed = True
                fatal.append(e)
                changed.set()
            finally:
                sem.release()
                settle(chunk)

        budget = min(budgets.values())  # one cut of the document for all prompts: their prompts share a prefix

        async def document(doc: Document, chunk: _Chunk):
            """All prompts of one document, the first alone: its prefill is cached by the engine (llama.cpp slot
            and prompt cache, vLLM prefix caching) before the others ask for the same prefix. It runs on the
            request slot the loop took for it; each sibling takes its own, so requests in flight stay at the limit
            (other documents fill the engine meanwhile)."""
            cut: list = []

            async def fitted():  # the document cut to the budget, once (a failed attempt is tried again)
                if not cut:
                    cut.append(await fit_to_budget(doc.text, budget, self._count))
                return cut[0]

            first, *rest = self.prompts
            await one(doc, first, chunk, fitted)
            siblings = []
            for p in rest:
                if fatal:  # stopping: the chunk is failed and will not be committed
                    chunk.failed = True
                    settle(chunk)
                    continue
                await sem.acquire()
                siblings.append(asyncio.create_task(one(doc, p, chunk, fitted)))
            if siblings:
                await asyncio.gather(*siblings)

        async def committer():
            """Commits every complete chunk, in whatever order they complete (also when the task is about to
            stop): a chunk waits only for its own documents."""
            while True:
                await changed.wait()
                changed.clear()
                for c in [c for c in open_chunks.values() if c.complete]:
                    await asyncio.to_thread(self._commit, ledger, c, inflight.take_since_commit())
                    for k, v in self._chunk_counts(c).items():
                        totals[k] += v
                    del open_chunks[c.index]
                    held["docs"] -= c.docs
                    progress.committed(c.docs)
                if fatal or (done_reading and not open_chunks):
                    return

        async def ticker():  # progress lines and snapshots keep coming while requests are long
            while True:
                await asyncio.sleep(1.0)
                inflight.sample()
                progress.maybe_print()

        thread = threading.Thread(target=produce, name=f"finephrase-reader-{rank}", daemon=True)
        thread.start()
        tick_task = asyncio.create_task(ticker())
        done_reading = drained = False
        resumed = _ResumeCheck(state) if state.entries else None
        commit_task = asyncio.create_task(committer())
        chunk = _Chunk(state.next_chunk)
        held = {"docs": 0}  # documents read and not yet committed (open chunks and the one being filled)

        def close(c: _Chunk):
            c.closed = True
            open_chunks[c.index] = c
            if c.complete:
                changed.set()

        try:
            while not done_reading:
                items = await asyncio.to_thread(_take, q, 256, stop)
                for item in items:
                    if fatal or commit_task.done():
                        break
                    if DRAIN.is_set() and item is not _END:  # stop taking documents; commit what is in hand
                        drained = done_reading = True
                        if chunk.docs:
                            close(chunk)
                        changed.set()
                        break
                    if item is _END:
                        done_reading = True
                        if chunk.docs:
                            close(chunk)
                        changed.set()
                        break
                    if isinstance(item, _Failure):
                        raise item.exc
                    doc: Document = item
                    read = doc.metadata["_fp_pos"]["read"]
                    if resumed:
                        resumed.check(read)
                    # a chunk never spans a committed range the reader skipped
                    if chunk.docs and resumed and resumed.between(chunk.pos["read"], read):
                        close(chunk)
                        chunk = _Chunk(chunk.index + 1)
                    if chunk.first is None:
                        chunk.first = read
                    chunk.docs += 1
                    held["docs"] += 1
                    chunk.pos = {**doc.metadata["_fp_pos"], "frac": doc.metadata.get("_fp_frac", 0.0)}
                    progress.pulled_doc(doc.metadata.get("_fp_frac", 0.0))
                    if reason := doc.metadata.get("_fp_reject"):
                        for p in self.prompts:
                            chunk.rejects[p.name].append(self._reject_row(doc, p, reason))
                        for _ in self.prompts:
                            progress.finished_unit(reject=reason)
                    elif reason := doc.metadata.get("_fp_filtered"):
                        chunk.filtered.append({"source_id": doc.id, "filter_reason": reason})
                        progress.finished_unit(units=len(self.prompts))
                    else:
                        chunk.selected_tokens += doc_tokens(doc)
                        await sem.acquire()
                        chunk.pending += len(self.prompts)
                        t = asyncio.create_task(document(doc, chunk))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)
                    if chunk.docs >= self.chunk_size:
                        close(chunk)
                        chunk = _Chunk(chunk.index + 1)
                    while held["docs"] >= self.max_held_docs and not (fatal or commit_task.done() or DRAIN.is_set()):
                        await asyncio.sleep(0.05)  # memory bound: wait for commits (stragglers hold only their own)
                if fatal or commit_task.done():
                    break
            if tasks:
                await asyncio.gather(*tasks)
            changed.set()
            await commit_task
            if not fatal:
                outcome = "drained" if drained else "finished"
        except (KeyboardInterrupt, asyncio.CancelledError):
            outcome = "interrupted"
            raise
        finally:
            stop.set()
            tick_task.cancel()
            for t in tasks:
                t.cancel()
            if not commit_task.done():
                commit_task.cancel()
            progress.close(outcome)
        if commit_task.done() and not commit_task.cancelled() and commit_task.exception():
            raise commit_task.exception()
        if fatal:
            e = fatal[0]
            if isinstance(e, FinephraseError):
                raise e
            raise RuntimeError(f"task {rank} stopped: {type(e).__name__}: {e}") from e
        return {**totals, "drained": drained}


    # -- one (document, prompt) ---------------------------------------------------------------------------------

    def _base(self, doc: Document, prompt: PromptTemplate) -> dict:
        return {"source_id": doc.id, "prompt": prompt.name, "prompt_hash": prompt.hash, **passthrough(doc.metadata)}

    def _reject_row(self, doc, prompt, reason, detail=None, **known) -> dict:
        return {**self._base(doc, prompt), "reject_reason": reason, "reject_detail": detail, **known}

    async def _process(self, doc: Document, prompt: PromptTemplate, client: ChatClient, fit, inflight: InFlight,
                       chunk: int):
        """One generation for (doc, prompt) from the document's text as `await fit()` cuts it to the context:
        a published row or a reject row."""
        known = {"model": client.model}
        try:
            fitted = await fit()
            known["input_truncated"] = fitted.truncated
            key, ok = inflight.begin(doc.id, prompt.name, chunk), False
            try:
                res = await client.chat(prompt.render(fitted.text), self.sampling,
                                        request_seed(self.sampling.seed, doc.id, prompt.name),
                                        extra=self.extra_fields.get(prompt.name))
                ok = True
            finally:
                inflight.end(key, ok)
        except RequestRejected as e:
            return "reject", self._reject_row(doc, prompt, e.reason, e.detail or None, **known)
        parsed = parse_output(res.text, prompt.extract_tag)
        known.update(finish_reason=res.finish_reason, input_tokens=res.prompt_tokens,
                     cached_tokens=res.cached_tokens, output_tokens=res.completion_tokens)
        reason = parsed.problem or self.gate.check(parsed.text, res.finish_reason, prompt=prompt, source=fitted.text)
        if reason:
            return "reject", self._reject_row(doc, prompt, reason, None, text=res.text, **known)
        return "row", {"id": f"{doc.id}/{prompt.name}", **self._base(doc, prompt), "text": parsed.text,
                       "reasoning": parsed.reasoning, **known}

    # -- commit -------------------------------------------------------------------------------------------------

    def _chunk_counts(self, c: _Chunk) -> Counter:
        out = Counter(docs=c.docs, filtered=len(c.filtered))
        for p in self.prompts:
            out[f"rows/{p.name}"] += len(c.rows[p.name])
            out[f"rejects/{p.name}"] += len(c.rejects[p.name])
            out["output_tokens"] += sum(r.get("output_tokens") or 0 for r in c.rows[p.name])
        return out

    def _commit(self, ledger: Ledger, c: _Chunk, in_flight: float | None):
        tables = {}
        rejects = Counter()
        for p in self.prompts:
            if c.rows[p.name]:
                tables[p.name] = pa.Table.from_pylist(c.rows[p.name], schema=OUTPUT_SCHEMA)
            if c.rejects[p.name]:
                tables[f"rejects/{p.name}"] = pa.Table.from_pylist(c.rejects[p.name], schema=REJECT_SCHEMA)
                rejects.update(f"{p.name}/{r['reject_reason']}" for r in c.rejects[p.name])
        if c.filtered:
            tables["filtered"] = pa.Table.from_pylist(c.filtered, schema=FILTERED_SCHEMA)
        rows = {p.name: len(c.rows[p.name]) for p in self.prompts}
        generations = [r for p in self.prompts for r in (*c.rows[p.name], *c.rejects[p.name])]  # rejects with them
        entry = {
            "first": c.first,  # the chunk covers input documents first..pos.read
            "pos": c.pos,
            "frac": (c.pos or {}).get("frac", 0.0),
            "docs": c.docs,
            "rows": rows,
            "rejects": dict(rejects),
            "filtered": dict(Counter(f["filter_reason"] for f in c.filtered)),
            "selected_tokens": c.selected_tokens,
            "input_tokens": sum(r.get("input_tokens") or 0 for p in self.prompts for r in c.rows[p.name]),
            "output_tokens": sum(r.get("output_tokens") or 0 for p in self.prompts for r in c.rows[p.name]),
            # everything the model generated, rejected generations included (what the GPU spent)
            "generated_tokens": sum(r.get("output_tokens") or 0 for r in generations),
            # the prefill of every generation, and the part of it the engine served from its cache
            "prompt_tokens": sum(r.get("input_tokens") or 0 for r in generations),
            "cached_tokens": sum(r.get("cached_tokens") or 0 for r in generations),
            "in_flight": in_flight,  # mean requests in flight since the task's previous commit
        }
        ledger.commit(c.index, tables, entry)


class _ResumeCheck:
    """A resumed task must get only documents outside the committed ranges: one inside would be a duplicate row
    (a reader that did not resume, or resumed from another ledger)."""

    def __init__(self, state: LedgerState):
        self.ranges = state.ranges()
        self.firsts = [r[0] for r in self.ranges]

    def between(self, a: int, b: int) -> bool:
        """Whether a committed range lies between documents #a and #b (the reader skipped it)."""
        i = bisect.bisect_right(self.firsts, a)
        return i < len(self.firsts) and self.firsts[i] < b

    def check(self, read: int):
        i = bisect.bisect_right(self.firsts, read) - 1
        if i >= 0 and read <= self.ranges[i][1]:
            first, last, _ = self.ranges[i]
            raise FinephraseError(
                f"the reader did not resume around the committed chunks (document #{read} is in committed range "
                f"#{first}-#{last}): give ResumableReader resume_dir=<the output folder>, or this would duplicate "
                f"rows")
