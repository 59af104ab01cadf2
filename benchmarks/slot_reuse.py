"""How much of a document's prefill its sibling prompts reuse on the embedded engine (llama.cpp's server), by how
requests are placed on its slots.

    python benchmarks/slot_reuse.py                      # 8 documents of ~1,200 tokens, max_tokens 32, 1 repeat
    python benchmarks/slot_reuse.py --variants a,b-own --repeats 3
    python benchmarks/slot_reuse.py --quick              # 2 documents of ~400 tokens, max_tokens 8, 3 variants

Each document is rephrased with faq, math, table and tutorial (the document first in every prompt, so the four
share it as a prefix), as the request loop sends them: the first prompt alone, then the other three together,
at most 4 requests in flight (a priority semaphore, the oldest document first: `RequestSlots`), several
documents in progress at once. Every variant gets a fresh `LlamaCppServer` (4 slots of 2,048 tokens, prompt
caching, continuous batching), and every variant of a repeat is run side by side:

- a: today: no slot hint (llama.cpp: an idle slot whose prompt is similar enough, else the least recently used);
- b-doc: every request of a document names its slot (`id_slot` = document index mod slots), same schedule;
- b-own: the client owns the slots: a document takes a free slot and sends its four prompts one after another
  on it (`id_slot`), up to 4 documents at once (siblings serialised, every slot still busy);
- c-lru, c-0.5: `slot_prompt_similarity` 0 (LRU only) and 0.5 (llama.cpp's default: 0.1);
- d-noram: `cache_ram_mib=0`: the host-memory prompt cache off (default: on, 8,192 MiB);
- d-unified: `kv_unified=true` (one KV buffer for all slots; idle slots are saved to the host cache);
- d-unified-lru: `kv_unified=true` with `slot_prompt_similarity=0`.

Reported per variant (medians): wall seconds, prompt tokens, tokens served from cache
(`usage.prompt_tokens_details.cached_tokens`), the cached share, wall ÷ variant a, wall ÷ the 1-prompt run
(faq only, variant a), and how the server chose its slots (its log: by id, by LCP similarity, by LRU; host-cache
restores). The cold ceiling: a document's first prompt cannot hit, so at most (4-prompt tokens - 1-prompt
tokens) ÷ 4-prompt tokens are cached.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import base_parser, fmt, machine, machine_line, median, sample_texts, table, write_results  # noqa: E402

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
    "d-unified": (["kv_unified=true"], None),
    "d-unified-lru": (["kv_unified=true", "slot_prompt_similarity=0"], None),
}
QUICK_VARIANTS = "a,b-own,d-unified"
LOG_EVENTS = {"by id": r"selected slot by id", "by LCP": r"selected slot by LCP", "by LRU": r"selected slot by LRU",
              "restored": r"found better prompt"}


def start_server(engine_args: list[str], log: Path):
    from finephrase.serving import LlamaCppServer

    return LlamaCppServer(context_length=CONTEXT, slots=SLOTS, engine_args=engine_args, log_path=log).start()


async def _fit_all(server, texts: list[str], budget: int) -> list[str]:
    from finephrase.serving.client import ChatClient
    from finephrase.serving.truncation import fit_to_budget

    async with ChatClient(server.base_url, server.model) as client:
        await client.detect_tokenizer()
        return [(await fit_to_budget(t, budget, client.count_tokens)).text for t in texts]


def documents(n: int, tokens: int, work: Path) -> list[dict]:
    """The first `n` sample documents longer than `tokens` tokens could be, cut to `tokens` with the model's own
    tokenizer (a throwaway server)."""
    rows = [r for r in sample_texts(100_000) if len(r["text"]) > 5 * tokens][:n]
    server = start_server([], work / "tokenize.log")
    try:
        texts = asyncio.run(_fit_all(server, [r["text"] for r in rows], tokens))
    finally:
        server.stop()
    return [{"id": f"slot-{i:03d}", "text": t} for i, t in enumerate(texts)]


class Sender:
    """Sends (document, prompt) chat requests and adds up what the server says about them."""

    def __init__(self, client, max_tokens: int):
        from finephrase.serving.client import Sampling

        self.client, self.sampling = client, Sampling(temperature=TEMPERATURE, top_p=TOP_P, max_tokens=max_tokens)
        self.got = Counter()

    async def send(self, doc: dict, prompt, slot: int | None) -> None:
        from finephrase.serving.client import RequestRejected, request_seed

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

    async def one(doc, i, prompt, release=True):
        try:
            await sender.send(doc, prompt, i % SLOTS if hint == "doc" else None)
        finally:
            if release:
                slots.release()

    async def document(doc, i):
        first, *rest = prompts
        await one(doc, i, first, release=not rest)
        siblings = []
        for k, p in enumerate(rest):
            if k:
                await slots.acquire((i,))
            siblings.append(asyncio.create_task(one(doc, i, p)))
        await asyncio.gather(*siblings)

    for i, doc in enumerate(docs):
        await slots.acquire((i,))
        tasks.append(asyncio.create_task(document(doc, i)))
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
    from finephrase.serving.client import ChatClient

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


def run_variant(name: str, docs: list[dict], prompt_spec: str, max_tokens: int, log: Path) -> dict:
    from finephrase.prompts.library import load_prompts

    engine_args, hint = VARIANTS[name]
    server = start_server(engine_args, log)
    try:
        wall, got = asyncio.run(_drive(server, docs, load_prompts(prompt_spec), hint, max_tokens))
    finally:
        server.stop()
    prompt, cached = got["prompt_tokens"], got["cached_tokens"]
    return {"seconds": wall, "requests": got["requests"], "rejected": got["rejected"], "prompt_tokens": prompt,
            "cached_tokens": cached, "cached_share": cached / prompt if prompt else None, "log": log_events(log)}


def measure(args, docs: list[dict], work: Path) -> dict:
    runs: dict[str, list[dict]] = {"1 prompt (a)": []} | {v: [] for v in args.variants}
    for rep in range(args.repeats):
        for key in runs:
            one = key == "1 prompt (a)"
            r = run_variant("a" if one else key, docs, "faq" if one else PROMPTS4, args.max_tokens,
                            work / f"{key.replace(' ', '_')}-{rep}.log")
            runs[key].append(r)
            print(f"  run {rep + 1} {key}: {r['seconds']:.1f}s, {r['cached_tokens']:,}/{r['prompt_tokens']:,} "
                  f"prompt tokens cached ({r['cached_share']:.0%}), slots chosen {r['log']}"
                  + (f", {r['rejected']} rejected" if r["rejected"] else ""), flush=True)
    return summarize(runs, args.repeats)


def summarize(runs: dict[str, list[dict]], repeats: int) -> dict:
    one = runs["1 prompt (a)"]
    base = runs.get("a")
    out = {}
    for key, rs in runs.items():
        out[key] = {
            "seconds": median([r["seconds"] for r in rs]),
            "prompt_tokens": median([r["prompt_tokens"] for r in rs]),
            "cached_tokens": median([r["cached_tokens"] for r in rs]),
            "cached_share": median([r["cached_share"] for r in rs]),
            "over_a": median([r["seconds"] / b["seconds"] for r, b in zip(rs, base)]) if base else None,
            "over_one_prompt": median([r["seconds"] / o["seconds"] for r, o in zip(rs, one)]),
            "log": {k: median([r["log"][k] for r in rs]) for k in LOG_EVENTS},
            "runs": rs,
        }
    four = next((v for k, v in out.items() if k != "1 prompt (a)"), None)
    p1 = out["1 prompt (a)"]["prompt_tokens"]
    ceiling = (four["prompt_tokens"] - p1) / four["prompt_tokens"] if four and four["prompt_tokens"] else None
    return {"variants": out, "cached_share_ceiling": ceiling, "repeats": repeats}


def print_table(res: dict) -> None:
    rows = []
    for key, v in res["variants"].items():
        rows.append([key, fmt(v["seconds"], 1), fmt(int(v["prompt_tokens"])), fmt(int(v["cached_tokens"])),
                     fmt(v["cached_share"], 2), fmt(v["over_a"], 2), fmt(v["over_one_prompt"], 2),
                     " ".join(f"{k.split()[-1]}={int(n)}" for k, n in v["log"].items() if n)])
    print(table(["variant", "wall s", "prompt tok", "cached tok", "cached share", "wall / a", "wall / 1 prompt",
                 "server: slot chosen by, host-cache restores"], rows))
    print(f"cold ceiling of the cached share: {fmt(res['cached_share_ceiling'], 2)}")


def main(argv=None) -> int:
    ap = base_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents (8; quick 2)")
    ap.add_argument("--doc-tokens", type=int, default=None, help="tokens of text per document (1200; quick 400)")
    ap.add_argument("--max-tokens", type=int, default=None, help="max_tokens per request (32; quick 8)")
    ap.add_argument("--variants", default=None,
                    help=f"comma-separated, of {', '.join(VARIANTS)} (default: all; quick {QUICK_VARIANTS})")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or 1
    args.docs = args.docs or (2 if args.quick else 8)
    args.doc_tokens = args.doc_tokens or (400 if args.quick else 1200)
    args.max_tokens = args.max_tokens or (8 if args.quick else 32)
    args.variants = (args.variants or (QUICK_VARIANTS if args.quick else ",".join(VARIANTS))).split(",")
    if unknown := [v for v in args.variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-slot-reuse-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine_line(machine()))
    try:
        docs = documents(args.docs, args.doc_tokens, work)
        print(f"{len(docs)} documents of <= {args.doc_tokens} tokens, max_tokens {args.max_tokens}, {SLOTS} slots of "
              f"{CONTEXT} tokens, {args.repeats} repeat(s)", flush=True)
        res = measure(args, docs, work)
        print_table(res)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    write_results(NAME, args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
