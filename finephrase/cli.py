"""The `finephrase` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import orjson

from finephrase import __version__
from finephrase.argtypes import json_object, non_negative_int, positive_int
from finephrase.drain import DRAIN, DRAINED_EXIT_CODE, Drained
from finephrase.errors import FinephraseError, UsageError

EXAMPLES = """\
examples:
  # rephrase the bundled sample into FAQs with the embedded CPU model (SmolLM2-135M-Instruct, llama.cpp),
  # constrained to the FAQ template's grammar
  finephrase rephrase data/sample/python-docs.parquet --prompt faq --output output/sample --limit 20 \
      --constrain-format

  # four production formats from a FineWeb-Edu shard on the Hub, high-quality pool only, on a running vLLM
  finephrase rephrase hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet \\
      --prompt faq,math,table,tutorial --where "int_score >= 4" \\
      --backend endpoint --endpoint-url http://localhost:8000 --output output/fwe-hq

  finephrase verify output/sample        # exactly one row or reject per (document, prompt)?
  finephrase prompts                  # the prompt library
"""

BACKENDS = ("embedded", "endpoint", "vllm")  # defaults per backend: finephrase.run.BACKEND_DEFAULTS


class Parser(argparse.ArgumentParser):
    """Every finephrase parser: no abbreviations (`--prompts` is not `--prompts-dir`), and a usage error is one
    line with a pointer to --help instead of the whole usage block."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="finephrase",
        description="Rephrase web documents into structured pretraining data (FAQ, math, table, tutorial, ...) "
        "with small instruction LLMs, exactly once.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"finephrase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    r = sub.add_parser(
        "rephrase",
        help="rephrase documents with one or more prompts (the main job)",
        description="Read INPUT documents, send one request per (document, prompt) to a served model, gate the "
        "generations (each template's own shape check, non-answers, copies, off-topic, language: docs/quality.md), "
        "and commit them chunk by chunk to OUTPUT/<prompt>/*.parquet (rejects, with their reason, to "
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
    g.add_argument("--backend", choices=BACKENDS, default="embedded",
                   help="embedded: llama.cpp on the packaged SmolLM2-135M-Instruct (CPU, default); vllm: start "
                   "`vllm serve MODEL`; endpoint: any OpenAI-compatible server (--endpoint-url)")
    g.add_argument("--model", help="model: a GGUF path (embedded); a preset short name such as smollm2-1.7b, "
                   "gemma3-1b, qwen3-1.7b (vllm/endpoint: its Hub id, context and serving flags; list them with "
                   "`finephrase models`), a Hub id or a folder (vllm), or the served name (endpoint; default: the "
                   "first the server lists)")
    g.add_argument("--endpoint-url", help="base URL of an OpenAI-compatible server, e.g. http://host:8000")
    g.add_argument("--api-key-env", default="FINEPHRASE_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key, if it needs one (never logged)")
    g.add_argument("--context-length", type=positive_int,
                   help="model context in tokens (default: 2048 embedded, 8192 otherwise)")
    g.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `vllm serve` (repeatable), e.g. --vllm-arg=--max-num-seqs=2048; "
                   "--vllm-arg=--trust-remote-code only if you trust the model repository's code")
    g.add_argument("--engine-arg", action="append", default=[], metavar="NAME=VALUE",
                   help="embedded: a llama.cpp server parameter (repeatable; xllamacpp CommonParams field, dotted "
                   "for nested ones), e.g. --engine-arg n_batch=1024 --engine-arg cpuparams.n_threads=2. The "
                   "server gets one slot per request in flight (--max-concurrency) of --context-length tokens each")
    g.add_argument("--chat-template-kwargs", type=json_object, metavar="JSON",
                   help='sent with every request as chat_template_kwargs (vLLM), e.g. \'{"enable_thinking": false}\' '
                   "for a Qwen3 id that is not a preset; merged over a preset's own")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm: share of GPU memory (0.9)")
    g.add_argument("--constrain-format", action="store_true",
                   help="constrained generation: send each template's [check] grammar (GBNF) with its requests, "
                   "so the engine writes only that shape (llama.cpp grammar; vLLM structured outputs). Templates "
                   "without a grammar are sent as they are. See docs/quality.md")
    g = r.add_argument_group("sampling (unset: the embedded default, or the model's generation config)")
    g.add_argument("--max-tokens", type=positive_int, help="max output tokens (default: 512 embedded, 2048 otherwise)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--seed", type=int, help="seed: each request gets a seed derived from (seed, id, prompt)")
    g = r.add_argument_group("execution")
    g.add_argument("--tasks", type=positive_int,
                   help="shards of the input (by file; by parquet row group when files are few); default 1, or with "
                   "--rank: the existing run's count, else the SLURM array's size")
    g.add_argument("--rank", type=non_negative_int,
                   help="run only this task (0-based) of --tasks, e.g. $SLURM_ARRAY_TASK_ID (slurm/rephrase.sh "
                   "passes it); other tasks may run at the same time on other nodes")
    g.add_argument("--workers", type=positive_int, default=1, help="tasks run at once on this machine; default 1")
    g.add_argument("--chunk-size", type=positive_int,
                   help="documents per committed chunk (default: 20 embedded, 1000 otherwise); a crash loses at "
                   "most the open chunks")
    g.add_argument("--gpus-per-task", type=non_negative_int,
                   help="GPUs each task holds, for GPU-hours in `finephrase status` (default: 1 vllm, 0 otherwise)")
    g.add_argument("--max-concurrency", type=positive_int,
                   help="requests in flight per task (default: 4 embedded, 512 vllm, 64 endpoint)")
    g.add_argument("--max-held-docs", type=positive_int,
                   help="documents read but not yet committed, at most (their rows wait in memory); the reader pauses "
                   "above it. Chunks commit in any order, so a straggling request holds back only its own chunk. "
                   "Default: 32 x --max-concurrency / prompts, at least 2 x --chunk-size")
    g.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request (600)")
    g.add_argument("--max-retries", type=non_negative_int, default=3, help="retries of a failed request (3)")
    g.add_argument("--progress-interval", type=float,
                   default=float(os.environ.get("FINEPHRASE_PROGRESS_INTERVAL", 30)),
                   help="seconds between progress lines when not on a terminal (30, or $FINEPHRASE_PROGRESS_INTERVAL)")
    g.add_argument("--overwrite", action="store_true",
                   help="delete an existing run in OUTPUT and start over (default: resume it)")
    g.add_argument("--prompts-dir", help="folder of prompt templates that add to the built-in library or override its "
                   "templates of the same name (after $FINEPHRASE_PROMPTS_DIR, which does the same)")

    p = sub.add_parser("prompts", help="list the prompt library, or show one prompt",
                       description="List the prompt templates (name, family, version, hash), or show one.")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", help="prompt to show")
    p.add_argument("--prompts-dir", help="folder of prompt templates that add to the built-in library or override its "
                   "templates of the same name (after $FINEPHRASE_PROMPTS_DIR, which does the same)")

    v = sub.add_parser("verify", help="check that a run holds exactly one row or reject per (document, prompt)",
                       description="Re-read the run's inputs (ids only) and check OUTPUT against them: every "
                       "(document, prompt) must have exactly one row in OUTPUT/<prompt>/ or OUTPUT/rejects/<prompt>/ "
                       "unless the document was filtered. Exit 0 if so, 1 with a report otherwise.")
    v.add_argument("output", metavar="DIR")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(func=cmd_rephrase)
    p.set_defaults(func=cmd_prompts)
    v.set_defaults(func=cmd_verify)

    # commands that live in their own module: each module's add_parser(sub) adds it and sets `func`
    from finephrase import card, dedup, mix, models, plan, project, publish, recheck, report, status, sweep

    for module in (status, plan, report, models, sweep, recheck, dedup, mix, card, publish, project):
        module.add_parser(sub)
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
        raise UsageError("no prompt templates found (this installation has no built-in library): pass --prompts-dir "
                         "or set FINEPHRASE_PROMPTS_DIR")
    rows = [load_template_file(path) for path in library.values()]
    w = max(len(t.name) for t in rows)
    fw = max(len(t.family) for t in rows)
    print(f"{'NAME':<{w}}  {'FAMILY':<{fw}}  VER  HASH              DESCRIPTION")
    for t in sorted(rows, key=lambda t: (t.family, t.name)):
        print(f"{t.name:<{w}}  {t.family:<{fw}}  {t.version:>3}  {t.hash}  {t.description}")
    return 0


def cmd_verify(args) -> int:
    from finephrase.verify import main as verify_main

    return verify_main(args)


def _task_count(args) -> int:
    if args.tasks or args.rank is None:
        return args.tasks or 1
    manifest = Path(args.output) / "manifest.json"
    if manifest.exists():  # resubmitting some tasks of an array keeps the run's sharding
        return orjson.loads(manifest.read_bytes())["config"]["tasks"]
    if os.environ.get("SLURM_ARRAY_TASK_MAX"):
        return int(os.environ["SLURM_ARRAY_TASK_MAX"]) + 1
    raise UsageError("--rank needs --tasks (the total number of tasks of the run)")


def cmd_rephrase(args) -> int:
    from finephrase.prompts import load_prompts
    from finephrase.run import RunConfig, execute

    cfg = RunConfig.for_backend(
        args.backend, inputs=args.inputs, output=args.output, prompts=load_prompts(args.prompt, args.prompts_dir),
        model=args.model, endpoint_url=args.endpoint_url, context_length=args.context_length,
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        seed=args.seed, text_column=args.text_column, id_column=args.id_column, limit=args.limit,
        tasks=_task_count(args), rank=args.rank,
        workers=args.workers, chunk_size=args.chunk_size, max_concurrency=args.max_concurrency,
        max_held_docs=args.max_held_docs, request_timeout=args.request_timeout, max_retries=args.max_retries,
        where=args.where,
        languages=args.language, min_chars=args.min_chars, max_chars=args.max_chars, sample_rate=args.sample_rate,
        token_budget=args.token_budget, progress_interval=args.progress_interval, api_key_env=args.api_key_env,
        vllm_args=args.vllm_arg, engine_args=args.engine_arg, gpu_memory_utilization=args.gpu_memory_utilization,
        gpus_per_task=args.gpus_per_task, chat_template_kwargs=args.chat_template_kwargs,
        constrain_format=args.constrain_format,
    )
    manifest = execute(cfg, overwrite=args.overwrite)
    if cfg.rank is not None:  # one task of a larger run: its own outcome
        from finephrase.ledger import Ledger

        return 0 if Ledger(cfg.output, cfg.rank).read().finished else 1
    return 0 if manifest["status"] == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2

    def on_term(signum, frame):
        if DRAIN.is_set():  # second signal: stop now
            raise KeyboardInterrupt
        DRAIN.set()
        print(f"\n{signal.Signals(signum).name}: draining (finishing requests in flight, committing complete "
              f"chunks); signal again to stop at once", file=sys.stderr)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_term)
    from finephrase.console import setup_console_logging

    setup_console_logging()
    try:
        return args.func(args)
    except Drained as e:
        print(f"drained: {e}; rerun the same command (or requeue) to resume", file=sys.stderr)
        return DRAINED_EXIT_CODE
    except FinephraseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `finephrase status DIR --watch | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if args.command == "rephrase":
            print("\ninterrupted: committed chunks are kept; rerun the same command to resume", file=sys.stderr)
        else:
            print(f"\ninterrupted: rerun `finephrase {args.command} ...` to start again or resume", file=sys.stderr)
        return 130
    except Exception as e:  # a task failed inside the executor: one line here, the traceback is in the log
        where = f" (task logs: {args.output}/logs/logs/)" if args.command == "rephrase" else ""
        print(f"error: {type(e).__name__}: {e}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
