"""The `finephrase` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from finephrase import __version__
from finephrase.errors import FinephraseError, UsageError

EXAMPLES = """\
examples:
  # rephrase the bundled sample into FAQs with the embedded CPU model (SmolLM2-135M-Instruct, llama.cpp)
  finephrase rephrase data/sample/python-docs.parquet --prompt faq --output out/sample --limit 20

  # four production formats from a FineWeb-Edu shard on the Hub, high-quality pool only, on a running vLLM
  finephrase rephrase hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet \\
      --prompt faq,math,table,tutorial --where "int_score >= 4" \\
      --backend endpoint --endpoint-url http://localhost:8000 --output out/fwe-hq

  finephrase verify out/sample        # exactly one row or reject per (document, prompt)?
  finephrase prompts                  # the prompt library
"""

BACKEND_DEFAULTS = {
    # model, context, max tokens, temperature, top_p, chunk size, concurrency
    "embedded": dict(model="SmolLM2-135M-Instruct", context_length=4096, max_tokens=1024, temperature=0.2,
                     top_p=0.9, chunk_size=20, max_concurrency=4),
    "vllm": dict(model="HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, max_tokens=2048,
                 temperature=None, top_p=None, chunk_size=1000, max_concurrency=512),
    "endpoint": dict(model=None, context_length=8192, max_tokens=2048, temperature=None, top_p=None,
                     chunk_size=1000, max_concurrency=64),
}


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {v}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {v}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finephrase",
        description="Rephrase web documents into structured pretraining data (FAQ, math, table, tutorial, ...) "
        "with small instruction LLMs, exactly once.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"finephrase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "rephrase",
        help="rephrase documents with one or more prompts (the main job)",
        description="Read INPUT documents, send one request per (document, prompt) to a served model, gate the "
        "generations, and commit them chunk by chunk to OUTPUT/<prompt>/*.parquet (rejects to "
        "OUTPUT/rejects/<prompt>/). Rerunning the same command resumes an interrupted run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="parquet / jsonl / jsonl.gz file, a folder of them, a glob, or an hf:// path")
    r.add_argument("-p", "--prompt", required=True,
                   help="prompt name(s), comma separated (see `finephrase prompts`), or a path to a .toml template")
    r.add_argument("-o", "--output", required=True, help="output folder (created; an existing run is resumed)")
    g = r.add_argument_group("input")
    g.add_argument("--text-column", default="text", help="column holding the document text (default: text)")
    g.add_argument("--id-column", default="id",
                   help="column holding the document id (default: id; without it: FILE:ROW)")
    g.add_argument("--limit", type=int, default=-1, help="read at most N documents per task (default: all)")
    g = r.add_argument_group("source selection (filtered documents are counted and listed, not rephrased)")
    g.add_argument("--where", action="append", default=[], metavar="COND",
                   help="keep documents where COLUMN OP VALUE holds, e.g. 'int_score >= 4' (repeatable: all must hold)")
    g.add_argument("--language", action="append", default=[], help="keep documents whose `language` is this "
                   "(repeatable)")
    g.add_argument("--min-chars", type=int, help="keep documents with at least this many characters")
    g.add_argument("--max-chars", type=int, help="keep documents with at most this many characters")
    g.add_argument("--sample-rate", type=float, help="keep this share of documents, chosen by hash of (seed, id)")
    g.add_argument("--token-budget", type=int,
                   help="stop selecting once this many source tokens (token_count column, else bytes/4) are selected")
    g = r.add_argument_group("model and serving")
    g.add_argument("--backend", choices=sorted(BACKEND_DEFAULTS), default="embedded",
                   help="embedded: llama.cpp on the packaged SmolLM2-135M-Instruct (CPU, default); vllm: start "
                   "`vllm serve MODEL`; endpoint: any OpenAI-compatible server (--endpoint-url)")
    g.add_argument("--model", help="model: a GGUF path (embedded), a Hub id or folder (vllm), or the served name "
                   "(endpoint; default: the first the server lists)")
    g.add_argument("--endpoint-url", help="base URL of an OpenAI-compatible server, e.g. http://host:8000")
    g.add_argument("--api-key-env", default="FINEPHRASE_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key, if it needs one (never logged)")
    g.add_argument("--context-length", type=_positive_int,
                   help="model context in tokens (default: 4096 embedded, 8192 otherwise)")
    g.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `vllm serve` (repeatable), e.g. --vllm-arg=--max-num-seqs=2048")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm: share of GPU memory (0.9)")
    g = r.add_argument_group("sampling (unset: the embedded default, or the model's generation config)")
    g.add_argument("--max-tokens", type=_positive_int, help="max output tokens (default: 1024 embedded, 2048 otherwise)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--seed", type=int, help="seed: each request gets a seed derived from (seed, id, prompt)")
    g = r.add_argument_group("execution")
    g.add_argument("--tasks", type=_positive_int, default=1, help="shards of the input (by file); default 1")
    g.add_argument("--workers", type=_positive_int, default=1, help="tasks run at once on this machine; default 1")
    g.add_argument("--chunk-size", type=_positive_int,
                   help="documents per committed chunk (default: 20 embedded, 1000 otherwise); a crash loses at "
                   "most the open chunks")
    g.add_argument("--max-concurrency", type=_positive_int,
                   help="requests in flight per task (default: 4 embedded, 512 vllm, 64 endpoint)")
    g.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (600)")
    g.add_argument("--max-retries", type=int, default=3, help="retries of a failed request (3)")
    g.add_argument("--progress-interval", type=float, default=30.0,
                   help="seconds between progress lines when not on a terminal (30)")
    g.add_argument("--overwrite", action="store_true",
                   help="delete an existing run in OUTPUT and start over (default: resume it)")
    g.add_argument("--prompts-dir", help="folder of prompt templates (default: the repository's prompts/)")

    p = sub.add_parser("prompts", help="list the prompt library, or show one prompt",
                       description="List the prompt templates (name, family, version, hash), or show one.")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", help="prompt to show")
    p.add_argument("--prompts-dir", help="folder of prompt templates (default: the repository's prompts/)")

    v = sub.add_parser("verify", help="check that a run holds exactly one row or reject per (document, prompt)",
                       description="Re-read the run's inputs (ids only) and check OUTPUT against them: every "
                       "(document, prompt) must have exactly one row in OUTPUT/<prompt>/ or OUTPUT/rejects/<prompt>/ "
                       "unless the document was filtered. Exit 0 if so, 1 with a report otherwise.")
    v.add_argument("output", metavar="DIR")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


# -- commands -------------------------------------------------------------------------------------------------


def cmd_prompts(args) -> int:
    from finephrase.prompts import available_prompts, load_prompt, load_template_file

    if args.action == "show":
        if not args.name:
            raise UsageError("usage: finephrase prompts show NAME")
        t = load_prompt(args.name, args.prompts_dir)
        print(f"name: {t.name}\nfamily: {t.family}\nversion: {t.version}\nhash: {t.hash}\nfile: {t.path}")
        if t.description:
            print(f"description: {t.description}")
        if t.extract_tag:
            print(f"extract_tag: {t.extract_tag}")
        if t.system:
            print(f"\n--- system ---\n{t.system.rstrip()}")
        print(f"\n--- template ---\n{t.template.rstrip()}")
        return 0
    library = available_prompts(args.prompts_dir)
    if not library:
        raise UsageError("no prompt templates found: pass --prompts-dir or set FINEPHRASE_PROMPTS_DIR")
    rows = [load_template_file(path) for path in library.values()]
    w = max(len(t.name) for t in rows)
    fw = max(len(t.family) for t in rows)
    print(f"{'NAME':<{w}}  {'FAMILY':<{fw}}  VER  HASH              DESCRIPTION")
    for t in sorted(rows, key=lambda t: (t.family, t.name)):
        print(f"{t.name:<{w}}  {t.family:<{fw}}  {t.version:>3}  {t.hash}  {t.description}")
    return 0


def cmd_verify(args) -> int:
    from finephrase.verify import verify

    report = verify(args.output)
    if args.json:
        print(orjson.dumps({"ok": report.ok, "problems": report.problems, "stats": report.stats},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        s = report.stats
        print(f"{args.output}: {s.get('input_documents', 0)} input documents, {s.get('filtered', 0)} filtered, "
              f"{len(s.get('prompts', []))} prompts, {s.get('tasks')} tasks")
        if report.ok:
            print("OK: every (document, prompt) has exactly one row or reject")
        else:
            print(f"FAILED: {len(report.problems)} problems")
            for line in report.problems:
                print(f"  - {line}")
    return 0 if report.ok else 1


def _start_server(args, cfg, log_path):
    from finephrase.serving import Endpoint, LlamaCppServer, VllmServer

    if cfg.backend == "endpoint":
        if not args.endpoint_url:
            raise UsageError("--backend endpoint needs --endpoint-url URL")
        return Endpoint(args.endpoint_url, args.model, api_key=os.environ.get(args.api_key_env) or None).start()
    if cfg.backend == "vllm":
        return VllmServer(cfg.model, context_length=cfg.context_length,
                          gpu_memory_utilization=args.gpu_memory_utilization,
                          extra_args=args.vllm_arg, log_path=log_path).start()
    gguf = args.model if args.model and args.model.endswith(".gguf") else None
    if gguf and not Path(gguf).is_file():
        raise UsageError(f"GGUF file {gguf} does not exist")
    return LlamaCppServer(gguf=gguf, context_length=cfg.context_length, log_path=log_path,
                          model_name=Path(gguf).stem if gguf else None).start()


def _preflight(base_url: str, model: str, api_key: str | None):
    """One tiny request, so a wrong model name or a broken server stops the run before any work."""
    from finephrase.client import ChatClient, RequestRejected, Sampling

    async def probe():
        async with ChatClient(base_url, model, timeout=120, max_retries=1, api_key=api_key) as c:
            await c.chat([{"role": "user", "content": "Say OK."}], Sampling(max_tokens=1))

    try:
        asyncio.run(probe())
    except RequestRejected as e:
        raise UsageError(f"the server refused a test request for model '{model}' ({e}): check --model") from None


def _summary(out: Path, counts: dict, elapsed: float, prompts: list[str]) -> str:
    lines = [f"done in {elapsed:.0f}s: {counts.get('documents', 0)} documents read, "
             f"{counts.get('output_tokens', 0)} tokens generated"]
    for p in prompts:
        rej = {k.split("/", 1)[1]: v for k, v in counts.get("rejects", {}).items() if k.startswith(f"{p}/")}
        rej_s = ", ".join(f"{k} {v}" for k, v in sorted(rej.items(), key=lambda kv: -kv[1])) or "none"
        lines.append(f"  {p:<12} rows {counts.get('rows', {}).get(p, 0):>6}   rejects {sum(rej.values()):>5} "
                     f"({rej_s})")
    if counts.get("filtered"):
        lines.append(f"  filtered: " + ", ".join(f"{k} {v}" for k, v in counts["filtered"].items()))
    lines.append(f"output: {out}/<prompt>/*.parquet, rejects: {out}/rejects/, manifest: {out}/manifest.json")
    lines.append(f"look:   python -c \"import pyarrow.parquet as pq; "
                 f"print(pq.read_table('{out}/{prompts[0]}').to_pandas()[['source_id','text']].head())\"")
    lines.append(f"check:  finephrase verify {out}")
    return "\n".join(lines)


def cmd_rephrase(args) -> int:
    from finephrase.client import Sampling
    from finephrase.executor import LocalExecutor
    from finephrase.prompts import load_prompts
    from finephrase.run import RunConfig, build_pipeline, collect_counts, prepare_output, write_manifest
    from finephrase.pipeline.readers.resumable import resolve_inputs
    from finephrase.serving import Endpoint

    d = BACKEND_DEFAULTS[args.backend]
    prompts = load_prompts(args.prompt, args.prompts_dir)
    model = args.model or d["model"]
    if args.backend == "embedded" and args.model and not args.model.endswith(".gguf"):
        raise UsageError("--backend embedded takes --model PATH.gguf (default: the packaged SmolLM2-135M-Instruct)")
    if args.backend == "embedded" and args.model:
        model = Path(args.model).stem
    sampling = Sampling(
        temperature=args.temperature if args.temperature is not None else d["temperature"],
        top_p=args.top_p if args.top_p is not None else d["top_p"],
        top_k=args.top_k,
        seed=args.seed,
        max_tokens=args.max_tokens or d["max_tokens"],
    )
    cfg = RunConfig(
        inputs=args.inputs, output=args.output, prompts=prompts, backend=args.backend, model=model,
        endpoint_url=args.endpoint_url, context_length=args.context_length or d["context_length"],
        sampling=sampling, text_column=args.text_column, id_column=args.id_column, limit=args.limit,
        tasks=args.tasks, workers=min(args.workers, args.tasks), chunk_size=args.chunk_size or d["chunk_size"],
        max_concurrency=args.max_concurrency or d["max_concurrency"], request_timeout=args.request_timeout,
        max_retries=args.max_retries, where=args.where, languages=args.language, min_chars=args.min_chars,
        max_chars=args.max_chars, sample_rate=args.sample_rate, token_budget=args.token_budget,
        progress_interval=args.progress_interval, api_key_env=args.api_key_env,
    )
    cfg.selection()  # validate conditions before anything starts
    input_files = resolve_inputs(cfg.inputs)
    out = Path(cfg.output)
    if cfg.backend == "endpoint" and not args.endpoint_url:
        raise UsageError("--backend endpoint needs --endpoint-url URL")
    api_key = os.environ.get(args.api_key_env) or None

    server = None
    t0 = time.monotonic()
    try:
        if cfg.backend == "endpoint":
            server = _start_server(args, cfg, None)
            cfg.model = server.model
        manifest = prepare_output(cfg, input_files, overwrite=args.overwrite)
        if server is None:
            print(f"starting the {cfg.backend} model server ({cfg.model}) ...", file=sys.stderr)
            server = _start_server(args, cfg, out / "logs" / "server.log")
        _preflight(server.base_url, server.model, api_key)
        endpoint = Endpoint(server.base_url, server.model)
        print(f"rephrasing {len(input_files)} input file(s) with {', '.join(p.name for p in prompts)} -> {out} "
              f"({cfg.tasks} task(s), {cfg.max_concurrency} requests in flight per task)", file=sys.stderr)
        executor = LocalExecutor(build_pipeline(cfg, endpoint), tasks=cfg.tasks, workers=cfg.workers,
                                 logging_dir=str(out / "logs"))
        executor.run()
    finally:
        if server is not None:
            server.stop()
    counts = collect_counts(out)
    manifest["counts"] = counts
    manifest["status"] = "finished" if counts["tasks_finished"] == cfg.tasks else "incomplete"
    manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_manifest(out, manifest)
    print(_summary(out, counts, time.monotonic() - t0, [p.name for p in prompts]), file=sys.stderr)
    return 0 if manifest["status"] == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return {"rephrase": cmd_rephrase, "prompts": cmd_prompts, "verify": cmd_verify}[args.command](args)
    except FinephraseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: committed chunks are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # a task failed inside the executor: one line here, the traceback is in the log
        where = f" (task logs: {args.output}/logs/logs/)" if getattr(args, "output", None) else ""
        print(f"error: {type(e).__name__}: {e}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
