"""How much of a document's prefill its sibling prompts reuse on the embedded engine, by slot placement.

    python benchmarks/slot_reuse.py                   # 8 documents of <= 400 tokens, max_tokens 32, 5 variants
    python benchmarks/slot_reuse.py --variants all --doc-tokens 1200 --repeats 3 --threads 1
    python benchmarks/slot_reuse.py --quick           # 2 documents of <= 200 tokens, max_tokens 8, a and b-own

Each document is rephrased with faq, math, table and tutorial (the document first in each, so they share it as a
prefix) as the request loop sends them: the first prompt alone, then the other three together, at most 4 requests
in flight (`RequestSlots`, the oldest document first), several documents in progress at once. Each variant gets a
fresh `LlamaCppServer` (4 slots of 2,048 tokens, as the embedded backend starts it, plus `verbosity=4` for the log
counts); the variants of a repeat run one after another (`--repeats`: default 1, medians):

- a: no slot hint (llama.cpp: an idle slot with a similar prompt, else the least recently used one): what the
  request loop did before it pinned slots, and still does with a server other workers share;
- b-doc: every request names its slot, `id_slot` = document index mod slots (same schedule);
- b-own: the client owns the slots: a document takes a free slot and sends its four prompts one after another on
  it (`id_slot`), 4 documents at once: siblings serialised, every slot busy (the request loop's schedule on the
  embedded engine since: `pin_slots`);
- c-lru, c-0.5: `slot_prompt_similarity` 0 (LRU only) and 0.5 (llama.cpp's default, in a: 0.1);
- d-noram: `cache_ram_mib=0` (host-memory prompt cache off; default 8,192 MiB); d-noidle: `cache_idle_slots=false`
  (default: idle slots are saved to it when a task starts); d-unified: `kv_unified=true`.

Per variant: wall s, the engine's CPU s, prompt and cached tokens (`usage.prompt_tokens_details.cached_tokens`),
wall / a, wall / the 1-prompt run (faq only, as a), the log's counts: slots chosen by id, LCP similarity, LRU, and
prompts restored from the host-memory cache; and the ideal (each prompt's common prefix with any earlier one).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import base_parser, fmt, machine, machine_line, median, sample_texts, table, write_results  # noqa: E402

from finephrase.prompts.library import load_prompts  # noqa: E402
from finephrase.serving.client import ChatClient, RequestRejected, Sampling, request_seed  # noqa: E402

NAME = "slot_reuse"
PROMPTS4 = "faq,math,table,tutorial"
SLOTS, CONTEXT = 4, 2048
SEED, TEMPERATURE, TOP_P = 0, 0.2, 0.9
# name: (engine args, slot hint: None | "doc" | "own")
VARIANTS = {
    "a": ([], None),
    "b-doc": ([], "doc"),
    "b-own": ([], "own"),
    "c-lru": (["slot_prompt_similarity=0"], None),
    "c-0.5": (["slot_prompt_similarity=0.5"], None),
    "d-noram": (["cache_ram_mib=0"], None),
    "d-noidle": (["cache_idle_slots=false"], None),
    "d-unified": (["kv_unified=true"], None),
}
DEFAULT_VARIANTS, QUICK_VARIANTS = "a,b-doc,b-own,c-lru,d-noram", "a,b-own"
LOG_EVENTS = {"by id": r"selected slot by id", "by LCP": r"selected slot by LCP", "by LRU": r"selected slot by LRU",
              "restored": r"found better prompt"}


def start_server(engine_args: list[str], log: Path, threads: int = 0):
    from finephrase.serving import LlamaCppServer

    # verbosity 4: the log says when a prompt is restored from the host-memory cache
    return LlamaCppServer(context_length=CONTEXT, slots=SLOTS, threads=threads,
                          engine_args=[*engine_args, "verbosity=4"], log_path=log).start()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (the engine: llama.cpp runs inside it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _fit_all(server, texts: list[str], budget: int) -> list[str]:
    from finephrase.serving.truncation import fit_to_budget

    async with ChatClient(server.base_url, server.model) as client:
        await client.detect_tokenizer()
        return [(await fit_to_budget(t, budget, client.count_tokens)).text for t in texts]


def ideal_cached(server, docs: list[dict]) -> tuple[int, int]:
    """(prompt tokens, tokens a perfect cache serves) of the 4-prompt run: each prompt's longest common prefix with
    any earlier prompt (its chat-templated tokens, as the server sees them; the chat header is shared by all)."""
    import httpx

    total = ideal = 0
    seen: list[list[int]] = []
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        for doc in docs:
            for p in load_prompts(PROMPTS4):
                text = c.post("/apply-template", json={"messages": p.render(doc["text"])}).json()["prompt"]
                toks = c.post("/tokenize", json={"content": text, "parse_special": True}).json()["tokens"]
                total += len(toks)
                ideal += max((len(os.path.commonprefix([toks, t])) for t in seen), default=0)
                seen.append(toks)
    return total, ideal


def documents(n: int, tokens: int, work: Path) -> tuple[list[dict], tuple[int, int]]:
    """The first `n` sample documents longer than `tokens` tokens could be, cut to `tokens` with the model's own
    tokenizer (a throwaway server), and ideal_cached() of them."""
    rows = [r for r in sample_texts(100_000) if len(r["text"]) > 5 * tokens][:n]
    server = start_server([], work / "tokenize.log")
    try:
        texts = asyncio.run(_fit_all(server, [r["text"] for r in rows], tokens))
        docs = [{"id": f"slot-{i:03d}", "text": t} for i, t in enumerate(texts)]
        return docs, ideal_cached(server, docs)
    finally:
        server.stop()


class Sender:
    """Sends (document, prompt) chat requests and adds up what the server says about them."""

    def __init__(self, client, max_tokens: int):
        self.client, self.sampling = client, Sampling(temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens)
        self.got = Counter()

    async def send(self, doc: dict, prompt, slot: int | None) -> None:
        extra = prompt.request_fields("llamacpp") | ({"id_slot": slot} if slot is not None else {})
        try:
            r = await self.client.chat(prompt.render(doc["text"]), self.sampling,
                                       request_seed(SEED, doc["id"], prompt.name), extra=extra)
        except RequestRejected:
            self.got["rejected"] += 1
            return
        self.got["requests"] += 1
        self.got["prompt_tokens"] += r.prompt_tokens or 0
        self.got["cached_tokens"] += r.cached_tokens or 0


async def loop_schedule(sender: Sender, docs: list[dict], prompts, hint: str | None) -> None:
    """The request loop's order: a document's first prompt alone, then its siblings together; the first prompt's
    request slot goes to the first sibling, the others wait their turn (oldest document first)."""
    from finephrase.pipeline.inference.slots import RequestSlots

    slots, tasks = RequestSlots(SLOTS), []

    async def one(doc, i, prompt, slot, release=True):
        try:
            await sender.send(doc, prompt, i % SLOTS if hint == "doc" else None)
        finally:
            if release:
                slots.release(slot)

    async def document(doc, i, slot):
        first, *rest = prompts
        await one(doc, i, first, slot, release=not rest)
        siblings = []
        for k, p in enumerate(rest):
            if k:
                slot = await slots.acquire((i,))
            siblings.append(asyncio.create_task(one(doc, i, p, slot)))
        await asyncio.gather(*siblings)

    for i, doc in enumerate(docs):
        slot = await slots.acquire((i,))
        tasks.append(asyncio.create_task(document(doc, i, slot)))
    await asyncio.gather(*tasks)


async def own_schedule(sender: Sender, docs: list[dict], prompts) -> None:
    """The client owns the server's slots: one worker per slot takes the next document and sends its prompts one
    after another on that slot."""
    queue = list(reversed(docs))

    async def worker(slot):
        while queue:
            doc = queue.pop()
            for p in prompts:
                await sender.send(doc, p, slot)

    await asyncio.gather(*(worker(s) for s in range(SLOTS)))


async def _drive(server, docs, prompts, hint, max_tokens) -> tuple[float, Counter]:
    async with ChatClient(server.base_url, server.model, timeout=900, max_connections=4 * SLOTS) as client:
        sender = Sender(client, max_tokens)
        t0 = time.perf_counter()
        if hint == "own":
            await own_schedule(sender, docs, prompts)
        else:
            await loop_schedule(sender, docs, prompts, hint)
        return time.perf_counter() - t0, sender.got


def log_events(log: Path) -> dict:
    text = log.read_text(errors="replace") if log.exists() else ""
    return {k: len(re.findall(pat, text)) for k, pat in LOG_EVENTS.items()}


def run_variant(name: str, docs: list[dict], prompt_spec: str, args, log: Path) -> dict:
    engine_args, hint = VARIANTS[name]
    server = start_server(engine_args, log, args.threads)
    try:
        cpu0 = cpu_seconds(server.proc.pid)
        wall, got = asyncio.run(_drive(server, docs, load_prompts(prompt_spec), hint, args.max_tokens))
        cpu = cpu_seconds(server.proc.pid)
    finally:
        server.stop()
    prompt, cached = got["prompt_tokens"], got["cached_tokens"]
    return {"seconds": wall, "server_cpu_s": cpu - cpu0,
            "requests": got["requests"], "rejected": got["rejected"], "prompt_tokens": prompt,
            "cached_tokens": cached, "cached_share": cached / prompt if prompt else None, "log": log_events(log),
            "loadavg_1min": os.getloadavg()[0]}


def measure(args, docs: list[dict], ideal: tuple[int, int], work: Path) -> dict:
    runs: dict[str, list[dict]] = {"1 prompt (a)": []} | {v: [] for v in args.variants}
    for rep in range(args.repeats):
        for key in runs:
            one = key == "1 prompt (a)"
            r = run_variant("a" if one else key, docs, "faq" if one else PROMPTS4, args,
                            work / f"{key.replace(' ', '_')}-{rep}.log")
            runs[key].append(r)
            print(f"  run {rep + 1} {key}: {r['seconds']:.1f}s (engine CPU {fmt(r['server_cpu_s'], 1)}s), "
                  f"{r['cached_tokens']:,}/{r['prompt_tokens']:,} prompt tokens cached, {r['rejected']} rejected, "
                  f"log {r['log']}, load {r['loadavg_1min']:.1f}", flush=True)
    return summarize(runs, ideal, args.repeats)


def summarize(runs: dict[str, list[dict]], ideal: tuple[int, int], repeats: int) -> dict:
    one = runs["1 prompt (a)"]
    base = runs.get("a")
    out = {}
    for key, rs in runs.items():
        out[key] = {
            **{f: median([r[f] for r in rs]) for f in ("seconds", "server_cpu_s", "prompt_tokens", "cached_tokens",
                                                       "cached_share")},
            **{f"{m}_over_{k}": median([r[f] / o[f] for r, o in zip(rs, ref)]) if ref else None
               for m, f in (("wall", "seconds"), ("cpu", "server_cpu_s")) for k, ref in (("a", base), ("one", one))},
            "log": {k: median([r["log"][k] for r in rs]) for k in LOG_EVENTS},
            "runs": rs,
        }
    return {"variants": out, "ideal_prompt_tokens": ideal[0],
            "ideal_cached_tokens": ideal[1], "ideal_cached_share": ideal[1] / ideal[0] if ideal[0] else None,
            "repeats": repeats}


def print_table(res: dict) -> None:
    rows = []
    for key, v in res["variants"].items():
        rows.append([key, fmt(v["seconds"], 1), fmt(v["server_cpu_s"], 1), fmt(int(v["prompt_tokens"])),
                     fmt(int(v["cached_tokens"])), fmt(v["cached_share"], 2), fmt(v["wall_over_a"], 2),
                     fmt(v["wall_over_one"], 2), fmt(v["cpu_over_a"], 2), fmt(v["cpu_over_one"], 2),
                     " ".join(f"{k.split()[-1]}={int(n)}" for k, n in v["log"].items() if n)])
    print(table(["variant", "wall s", "engine CPU s", "prompt tok", "cached tok", "cached share", "wall / a",
                 "wall / 1 prompt", "CPU / a", "CPU / 1 prompt", "slot chosen by; host-cache restores"], rows))
    print(f"ideal cached share of the 4-prompt runs (each prompt's longest common prefix with any earlier prompt): "
          f"{fmt(res['ideal_cached_share'], 2)} ({res['ideal_cached_tokens']:,} of "
          f"{res['ideal_prompt_tokens']:,} tokens)")


def main(argv=None) -> int:
    ap = base_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents (8; quick 2)")
    ap.add_argument("--doc-tokens", type=int, default=None, help="tokens of text per document, at most (400; "
                    "quick 200; 1,200 still fits a 2,048-token slot)")
    ap.add_argument("--max-tokens", type=int, default=None, help="max_tokens per request (32; quick 8)")
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0: the embedded default, every CPU; "
                    "1 makes the engine's CPU seconds steady on a shared machine)")
    ap.add_argument("--variants", default=None, help=f"comma-separated, of {', '.join(VARIANTS)}, or all "
                    f"(default {DEFAULT_VARIANTS}; quick {QUICK_VARIANTS})")
    ap._option_string_actions["--repeats"].help = "repetitions; the median is reported (1)"
    args = ap.parse_args(argv)
    args.repeats = args.repeats or 1
    args.docs = args.docs or (2 if args.quick else 8)
    args.doc_tokens = args.doc_tokens or (200 if args.quick else 400)
    args.max_tokens = args.max_tokens or (8 if args.quick else 32)
    args.variants = args.variants or (QUICK_VARIANTS if args.quick else DEFAULT_VARIANTS)
    args.variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    if unknown := [v for v in args.variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-slot-reuse-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine_line(machine()))
    try:
        docs, ideal = documents(args.docs, args.doc_tokens, work)
        print(f"{len(docs)} documents of <= {args.doc_tokens} tokens, max_tokens {args.max_tokens}, {SLOTS} slots of "
              f"{CONTEXT} tokens, threads {args.threads or 'all'}, {args.repeats} repeat(s)", flush=True)
        res = measure(args, docs, ideal, work)
        print_table(res)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    write_results(NAME, args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
