"""The embedded engine: llama.cpp's own server (xllamacpp, prebuilt) against the previous default,
llama-cpp-python's server, on the same requests; and what one prefill per document saves.

    python benchmarks/engines.py            # 12 documents, max_tokens 128, concurrency 1/4/8, 3 repeats
    python benchmarks/engines.py --quick    # 2 documents, max_tokens 8, concurrency 1/4, 1 repeat
    python benchmarks/engines.py --skip engines --paper-prompts CHECKOUT/prompts   # document-first vs the paper's

1. engines: the same FAQ requests (sample documents cut to 3,000 characters, temperature 0.2, the per-request
   seed the pipeline sends) through each engine at each concurrency, a fresh server per measurement (no prompt
   cache carried over): wall time, generated tokens/s, new ÷ old wall time (target ≤ 0.35 at concurrency 4).
   The old engine is `python -m llama_cpp.server` (n_ctx 2048; it does not batch), skipped when llama-cpp-python
   is not installed (`pip install -e ".[bench]"` compiles it); the new one is `finephrase.serving.LlamaCppServer`
   with one slot per request in flight, 2,048 tokens each, as the embedded backend runs it.
2. prefix reuse, on the new engine, max_tokens 32, concurrency 4, a fresh server each:
   - the pipeline (`finephrase.run.runner.execute`, embedded backend) with faq only, and with faq, math, table and
     tutorial: wall times (target: 4 prompts ≤ 1.3 × 1 prompt) and the share of prompt tokens the server's
     counters say came from its cache (`usage.prompt_tokens_details.cached_tokens`);
   - for reference, the same 4 × N requests sent the old way, all four prompts of a document at once.
   A document's first prompt cannot come from a cold cache, so with 4 prompts at most 3/4 of the prompt tokens
   (less each template's own text after the document) can: the ceiling is printed next to the measurement.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    base_parser,
    fmt,
    machine,
    machine_line,
    median,
    resolve_repeats,
    sample_texts,
    table,
    write_input,
    write_results,
)

from finephrase.serving.base import ManagedServer  # noqa: E402

NAME = "engines"
TARGET_ENGINE = 0.35  # new ÷ old wall time at concurrency 4
TARGET_PREFIX = 1.3  # 4-prompt wall ÷ 1-prompt wall
PROMPTS4 = ["faq", "math", "table", "tutorial"]
SEED, TEMPERATURE, TOP_P = 0, 0.2, 0.9


def docs(n: int) -> list[dict]:
    base = sample_texts(3000)
    return [{**base[i % len(base)], "id": f"eng-{i:05d}"} for i in range(n)]


async def send(base_url: str, model: str, requests: list[tuple[str, list]], max_tokens: int, concurrency: int,
               groups: list[list[int]] | None = None) -> dict:
    """POST the requests with `concurrency` in flight; `groups`: indices sent together (after the previous
    request of their document). Returns wall time, tokens and cache counters."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    got = {"completion": 0, "prompt": 0, "cached": 0, "errors": 0}
    async with httpx.AsyncClient(base_url=base_url, timeout=900,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(i):
            seed, messages = requests[i]
            payload = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": TEMPERATURE,
                       "top_p": TOP_P, "seed": seed}
            async with sem:
                r = await client.post("/v1/chat/completions", json=payload)
            if r.status_code != 200:
                got["errors"] += 1
                return
            u = r.json()["usage"]
            got["completion"] += u["completion_tokens"]
            got["prompt"] += u["prompt_tokens"]
            got["cached"] += (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0

        async def group(idx):
            await asyncio.gather(*(one(i) for i in idx))

        t0 = time.perf_counter()
        await asyncio.gather(*(group(g) for g in (groups or [[i] for i in range(len(requests))])))
        got["seconds"] = time.perf_counter() - t0
    got["tokens_per_s"] = got["completion"] / got["seconds"]
    return got


def faq_requests(ds: list[dict], prompts) -> list[tuple[int, list]]:
    from finephrase.serving.client import request_seed

    return [(request_seed(SEED, d["id"], p.name), p.render(d["text"])) for d in ds for p in prompts]


class OldServer(ManagedServer):
    """llama-cpp-python's server (the embedded engine before xllamacpp), started as finephrase used to start it."""

    ready_timeout = 60.0

    def __init__(self, log: Path):
        super().__init__(model="SmolLM2-135M-Instruct", log_path=log)

    def command(self) -> list[str]:
        from finephrase.serving.llamacpp import packaged_gguf_path

        return [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_gguf_path()), "--model_alias",
                self.model, "--n_ctx", "2048", "--host", "127.0.0.1", "--port", str(self.port), "--verbose", "False"]


def new_server(slots: int, log: Path):
    from finephrase.serving import LlamaCppServer

    return LlamaCppServer(context_length=2048, slots=slots, log_path=log).start()


def measure_engines(args, work: Path) -> dict:
    from finephrase.prompts.library import load_prompts

    requests = faq_requests(docs(args.docs), load_prompts("faq"))
    have_old = importlib.util.find_spec("llama_cpp") is not None
    out = {"old_engine": "llama-cpp-python server" if have_old else "skipped: llama_cpp is not installed",
           "per_concurrency": {}}
    for c in args.concurrency:
        runs = {"new": [], "old": []}
        for rep in range(args.repeats):
            for engine in ("old", "new") if have_old else ("new",):
                server = OldServer(work / f"old-{c}-{rep}.log").start() if engine == "old" else \
                    new_server(c, work / f"new-{c}-{rep}.log")
                try:
                    r = asyncio.run(send(server.base_url, server.model, requests, args.max_tokens, c))
                finally:
                    server.stop()
                runs[engine].append(r)
                print(f"  concurrency {c} run {rep + 1} {engine}: {r['seconds']:.1f}s, {r['tokens_per_s']:.1f} tok/s "
                      f"({r['completion']} tokens, {r['errors']} errors)", flush=True)
        new_s = median([r["seconds"] for r in runs["new"]])
        old_s = median([r["seconds"] for r in runs["old"]]) if runs["old"] else None
        ratios = [n["seconds"] / o["seconds"] for n, o in zip(runs["new"], runs["old"])]
        out["per_concurrency"][str(c)] = {
            "new_seconds": new_s, "old_seconds": old_s,
            "new_tokens_per_s": median([r["tokens_per_s"] for r in runs["new"]]),
            "old_tokens_per_s": median([r["tokens_per_s"] for r in runs["old"]]) if runs["old"] else None,
            "new_over_old_wall": median(ratios) if ratios else None, "runs": runs}
    four = out["per_concurrency"].get("4", {}).get("new_over_old_wall")
    out["target_new_over_old_at_4"] = TARGET_ENGINE
    out["meets_target"] = four is not None and four <= TARGET_ENGINE
    return out


def pipeline_run(inp: Path, out: Path, prompts: list[str], max_tokens: int, concurrency: int,
                 prompts_dir: str | None = None) -> dict:
    from finephrase.prompts.library import load_prompts
    from finephrase.run.runner import RunConfig, collect_counts, execute

    cfg = RunConfig.for_backend("embedded", inputs=[str(inp)], output=str(out),
                                prompts=load_prompts(prompts, prompts_dir),
                                max_tokens=max_tokens, seed=SEED, max_concurrency=concurrency,
                                progress_interval=3600,
                                # the prefill schedule alone: no grammar, one generation per (document, prompt)
                                constrain_format=False, max_attempts=1)
    t0 = time.perf_counter()
    execute(cfg)
    wall = time.perf_counter() - t0
    c = collect_counts(out)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": wall, "prompt_tokens": c.get("prompt_tokens", 0), "cached_tokens": c.get("cached_tokens", 0),
            "generated_tokens": c.get("generated_tokens", 0)}


def measure_prefix(args, work: Path) -> dict:
    from finephrase.prompts.library import load_prompts

    ds = docs(args.docs)
    inp = write_input(work / "prefix" / "docs.parquet", ds, "parquet")
    prompts4 = load_prompts(PROMPTS4)
    conc, max_tokens = 4, args.prefix_max_tokens
    runs = []
    for rep in range(args.repeats):
        one = pipeline_run(inp, work / "p1", ["faq"], max_tokens, conc)
        four = pipeline_run(inp, work / "p4", PROMPTS4, max_tokens, conc)
        server = new_server(conc, work / f"all-at-once-{rep}.log")
        try:  # the old order: the four prompts of a document sent together
            reqs = faq_requests(ds, prompts4)
            k = len(prompts4)
            together = asyncio.run(send(server.base_url, server.model, reqs, max_tokens, conc,
                                        groups=[list(range(i, i + k)) for i in range(0, len(reqs), k)]))
        finally:
            server.stop()
        r = {"one_prompt": one, "four_prompts": four, "four_all_at_once": together,
             "four_over_one_wall": four["seconds"] / one["seconds"],
             "cached_share": four["cached_tokens"] / four["prompt_tokens"] if four["prompt_tokens"] else None,
             "cached_share_all_at_once": together["cached"] / together["prompt"] if together["prompt"] else None}
        runs.append(r)
        print(f"  prefix run {rep + 1}: 1 prompt {one['seconds']:.1f}s, 4 prompts {four['seconds']:.1f}s "
              f"({r['four_over_one_wall']:.2f}x, {r['cached_share']:.0%} of prompt tokens cached), all at once "
              f"{together['seconds']:.1f}s ({r['cached_share_all_at_once']:.0%} cached)", flush=True)
    # what a cold cache allows at most: each document's first prompt (the 1-prompt run's tokens) is new
    first, total4 = runs[0]["one_prompt"]["prompt_tokens"], runs[0]["four_prompts"]["prompt_tokens"]
    ceiling = (total4 - first) / total4 if total4 else None
    return {
        "four_over_one_wall": median([r["four_over_one_wall"] for r in runs]),
        "cached_share": median([r["cached_share"] for r in runs]),
        "cached_share_all_at_once": median([r["cached_share_all_at_once"] for r in runs]),
        "cached_share_ceiling": ceiling,
        "target_four_over_one": TARGET_PREFIX,
        "meets_target": median([r["four_over_one_wall"] for r in runs]) <= TARGET_PREFIX,
        "max_tokens": max_tokens, "concurrency": conc, "runs": runs,
    }


def measure_paper_prefix(args, work: Path) -> dict:
    """The same two runs with the paper's prompt files (instruction first: a document's four requests share
    nothing before it but the chat template), from the checkout --paper-prompts names."""
    ds = docs(args.docs)
    inp = write_input(work / "paper" / "docs.parquet", ds, "parquet")
    names = [f"format/{p}" for p in PROMPTS4]
    runs = []
    for rep in range(args.repeats):
        one = pipeline_run(inp, work / "pp1", names[:1], args.prefix_max_tokens, 4, args.paper_prompts)
        four = pipeline_run(inp, work / "pp4", names, args.prefix_max_tokens, 4, args.paper_prompts)
        runs.append({"one_prompt": one, "four_prompts": four, "four_over_one_wall": four["seconds"] / one["seconds"],
                     "cached_share": four["cached_tokens"] / four["prompt_tokens"] if four["prompt_tokens"] else None})
        print(f"  paper prompts run {rep + 1}: 1 prompt {one['seconds']:.1f}s, 4 prompts {four['seconds']:.1f}s "
              f"({runs[-1]['four_over_one_wall']:.2f}x, {runs[-1]['cached_share']:.0%} cached)", flush=True)
    return {"four_over_one_wall": median([r["four_over_one_wall"] for r in runs]),
            "cached_share": median([r["cached_share"] for r in runs]),
            "prompt_tokens_per_doc": runs[0]["four_prompts"]["prompt_tokens"] / len(ds), "runs": runs}


def main(argv=None) -> int:
    ap = base_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="documents (12; quick 2)")
    ap.add_argument("--max-tokens", type=int, default=None, help="engines part: max_tokens (128; quick 8)")
    ap.add_argument("--prefix-max-tokens", type=int, default=None, help="prefix part: max_tokens (32; quick 8)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=None, help="engines part (1 4 8; quick 1 4)")
    ap.add_argument("--skip", choices=["engines", "prefix"], action="append", default=[])
    ap.add_argument("--paper-prompts", default=None, metavar="DIR",
                    help="also measure the prefix part with the paper's prompt files (DIR: a checkout's prompts/)")
    args = ap.parse_args(argv)
    resolve_repeats(args)
    args.docs = args.docs or (2 if args.quick else 12)
    args.max_tokens = args.max_tokens or (8 if args.quick else 128)
    args.prefix_max_tokens = args.prefix_max_tokens or (8 if args.quick else 32)
    args.concurrency = args.concurrency or ([1, 4] if args.quick else [1, 4, 8])
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    m = machine()
    print(machine_line(m))
    results = {}
    try:
        if "engines" not in args.skip:
            results["engines"] = measure_engines(args, work)
            rows = [[c, fmt(v["old_seconds"], 1), fmt(v["new_seconds"], 1), fmt(v["old_tokens_per_s"], 1),
                     fmt(v["new_tokens_per_s"], 1), fmt(v["new_over_old_wall"], 2)]
                    for c, v in results["engines"]["per_concurrency"].items()]
            print(table(["concurrency", "old s", "new s", "old tok/s", "new tok/s", "new/old wall"], rows))
            print(f"target: new/old wall <= {TARGET_ENGINE} at concurrency 4: "
                  f"{'met' if results['engines']['meets_target'] else 'NOT met'}")
        if "prefix" not in args.skip:
            p = results["prefix"] = measure_prefix(args, work)
            print(table(["4 prompts / 1 prompt wall", "cached (pipeline)", "cached (all at once)", "cold ceiling"],
                        [[fmt(p["four_over_one_wall"], 2), fmt(p["cached_share"], 2),
                          fmt(p["cached_share_all_at_once"], 2), fmt(p["cached_share_ceiling"], 2)]]))
            print(f"target: 4-prompt wall <= {TARGET_PREFIX} x 1-prompt: {'met' if p['meets_target'] else 'NOT met'}")
        if args.paper_prompts and "prefix" not in args.skip:
            pp = results["paper_prefix"] = measure_paper_prefix(args, work)
            print(table(["prompts", "4 prompts / 1 prompt wall", "cached share (4 prompts)"],
                        [["finephrase (document first)", fmt(p["four_over_one_wall"], 2), fmt(p["cached_share"], 2)],
                         ["the paper's (instruction first)", fmt(pp["four_over_one_wall"], 2),
                          fmt(pp["cached_share"], 2)]]))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    write_results(NAME, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
