"""The settings of a rephrasing run, declared once: `finephrase rephrase`'s flags (`add_rephrase_arguments`), the
`RunConfig.for_backend` keywords they become (`config_kwargs`), and the settings a sweep may give, with their type,
flag and whether they add up across a sweep's layers (`SWEEPABLE`, used by finephrase/sweep/).

Kept light (no import of the pipeline): every `finephrase` command builds its parser from here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from finephrase.argtypes import json_object, non_negative_int, positive_int

BACKENDS = ("embedded", "endpoint", "vllm")  # defaults per backend: finephrase.run.config.BACKEND_DEFAULTS

# argument groups of `finephrase rephrase --help`, in the order they are shown
GROUP_TITLES = {
    "input": "input",
    "selection": "source selection (filtered documents are counted and listed, not rephrased)",
    "serving": "model and serving",
    "sampling": "sampling (unset: the embedded default, or the model's generation config)",
    "execution": "execution",
}


@dataclass(frozen=True)
class Setting:
    """One setting of a rephrasing run.

    `kind` is the type of its value (str, int, float, bool: a switch, list: a repeatable flag, dict), which is also
    what a sweep file must give; `parse` is the command line's own parser of one value when it checks more than
    `kind` does (e.g. positive_int). `config`: passed to RunConfig.for_backend under `name`; otherwise the command
    uses it itself (--prompt, --prompts-dir, --overwrite). `sweepable`: a sweep file may give it; `accumulates`:
    a sweep's layers (common + source + grid) add up instead of the last one overriding. `env`: the default is
    read from this environment variable when the parser is built.
    """

    name: str
    flags: tuple[str, ...]  # option strings, or the name alone for a positional argument
    kind: type = str
    help: str | None = None
    group: str | None = None  # a key of GROUP_TITLES; None: the command's own arguments
    default: object = None
    parse: Callable | None = None
    metavar: str | None = None
    choices: tuple | None = None
    nargs: str | None = None
    required: bool = False
    config: bool = True
    sweepable: bool = True
    accumulates: bool = False
    env: str | None = None
    negatable: bool = False  # a switch with a --no-<flag> too; unset: None (the backend's default)

    @property
    def flag(self) -> str:
        """The long option (`--language`): what a sweep writes on the command line of its points."""
        return self.flags[-1]

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    def argparse_kwargs(self) -> dict:
        if self.positional:  # its nargs says how many values it takes
            kw = {}
        elif self.kind is bool:
            kw = dict(action=argparse.BooleanOptionalAction, default=None) if self.negatable else \
                dict(action="store_true")
        elif self.kind is list:
            kw = dict(action="append", default=list(self.default or []))
        else:
            kw = dict(type=self.parse or (self.kind if self.kind in (int, float) else None), default=self.default)
            if self.env is not None:
                kw["default"] = self.kind(os.environ.get(self.env, self.default))
        for key in ("nargs", "metavar", "choices", "help"):
            kw[key] = getattr(self, key)
        if self.required:
            kw["required"] = True
        return {k: v for k, v in kw.items() if v is not None}


REPHRASE_SETTINGS: tuple[Setting, ...] = (
    Setting("inputs", ("inputs",), list, nargs="+", metavar="INPUT", sweepable=False,
            help="parquet / jsonl / jsonl.gz file, a folder of them, a glob, or an hf:// path"),
    Setting("prompt", ("-p", "--prompt"), required=True, config=False, sweepable=False,
            help="prompt name(s), comma separated (see `finephrase prompts`), or a path to a .toml template"),
    Setting("output", ("-o", "--output"), required=True, sweepable=False,
            help="output folder (created; an existing run is resumed)"),
    # input
    Setting("text_column", ("--text-column",), group="input", default="text",
            help="column holding the document text (default: text)"),
    Setting("id_column", ("--id-column",), group="input",
            help="column holding the document id; given, the input must have it (default: id if the input has it, "
            "else the position FILE:ROW)"),
    Setting("limit", ("--limit",), int, group="input", default=-1,
            help="read at most N documents per task (default: all)"),
    # source selection
    Setting("where", ("--where",), list, group="selection", metavar="COND", accumulates=True,
            help="keep documents where COLUMN OP VALUE holds, e.g. 'int_score >= 4' (repeatable: all must hold)"),
    Setting("languages", ("--language",), list, group="selection",
            help="keep documents whose `language` is this (repeatable)"),
    Setting("min_chars", ("--min-chars",), int, group="selection",
            help="keep documents with at least this many characters"),
    Setting("max_chars", ("--max-chars",), int, group="selection",
            help="keep documents with at most this many characters"),
    Setting("sample_rate", ("--sample-rate",), float, group="selection",
            help="keep this share of documents, chosen by hash of (seed, id)"),
    Setting("token_budget", ("--token-budget",), int, group="selection",
            help="stop selecting once this many source tokens (token_count column, else bytes/4) are selected"),
    # model and serving
    Setting("backend", ("--backend",), group="serving", choices=BACKENDS, default="embedded",
            help="embedded: llama.cpp on the packaged SmolLM2-135M-Instruct (CPU, default); vllm: start "
            "`vllm serve MODEL`; endpoint: any OpenAI-compatible server (--endpoint-url)"),
    Setting("model", ("--model",), group="serving", sweepable=False,  # a sweep's grids give the models
            help="model: a GGUF path (embedded); a preset short name such as smollm2-1.7b, gemma3-1b, qwen3-1.7b "
            "(vllm/endpoint: its Hub id, context and serving flags; list them with `finephrase models`), a Hub id "
            "or a folder (vllm), or the served name (endpoint; default: the first the server lists)"),
    Setting("endpoint_url", ("--endpoint-url",), group="serving",
            help="base URL of an OpenAI-compatible server, e.g. http://host:8000"),
    Setting("api_key_env", ("--api-key-env",), group="serving", default="FINEPHRASE_API_KEY", metavar="VAR",
            help="environment variable holding the endpoint's API key, if it needs one (never logged)"),
    Setting("context_length", ("--context-length",), int, group="serving", parse=positive_int,
            help="model context in tokens (default: 2048 embedded, 8192 otherwise)"),
    Setting("vllm_args", ("--vllm-arg",), list, group="serving", metavar="ARG",
            help="extra argument for `vllm serve` (repeatable), e.g. --vllm-arg=--max-num-seqs=2048; "
            "--vllm-arg=--trust-remote-code only if you trust the model repository's code"),
    Setting("engine_args", ("--engine-arg",), list, group="serving", metavar="NAME=VALUE",
            help="embedded: a llama.cpp server parameter (repeatable; xllamacpp CommonParams field, dotted for "
            "nested ones), e.g. --engine-arg n_batch=1024 --engine-arg cpuparams.n_threads=2. The server gets one "
            "slot per request in flight (--max-concurrency) of --context-length tokens each"),
    Setting("chat_template_kwargs", ("--chat-template-kwargs",), dict, group="serving", parse=json_object,
            metavar="JSON", sweepable=False,
            help='sent with every request as chat_template_kwargs (vLLM), e.g. \'{"enable_thinking": false}\' '
            "for a Qwen3 id that is not a preset; merged over a preset's own"),
    Setting("gpu_memory_utilization", ("--gpu-memory-utilization",), float, group="serving", default=0.9,
            help="vllm: share of GPU memory (0.9)"),
    Setting("constrain_format", ("--constrain-format",), bool, group="serving", negatable=True,
            help="constrained generation: send each template's [check] grammar (GBNF) with its requests, so the "
            "engine writes only that shape (llama.cpp grammar; vLLM structured outputs). Templates without a "
            "grammar are sent as they are. Default: on with the embedded backend, off otherwise (regeneration "
            "gets the format there). See docs/quality.md"),
    Setting("max_attempts", ("--max-attempts",), int, group="serving", parse=positive_int,
            help="generations per (document, prompt): one the quality gate rejects for a reason a new sample can "
            "fix (length, repetition, format, non-answer, language, off-topic) is asked again with a new seed and "
            "a higher temperature, up to this many times (default: 3 embedded, 2 otherwise; 1: off)"),
    # sampling
    Setting("max_tokens", ("--max-tokens",), int, group="sampling", parse=positive_int,
            help="max output tokens (default: 512 embedded, 2048 otherwise)"),
    Setting("allow_short_documents", ("--allow-short-documents",), bool, group="sampling",
            help="run even when --max-tokens and the template leave less than a quarter of --context-length for the "
            "document (refused otherwise: most documents would be cut to a few lines)"),
    Setting("temperature", ("--temperature",), float, group="sampling"),
    Setting("top_p", ("--top-p",), float, group="sampling"),
    Setting("top_k", ("--top-k",), int, group="sampling"),
    Setting("seed", ("--seed",), int, group="sampling",
            help="seed: each request gets a seed derived from (seed, id, prompt)"),
    # execution
    Setting("tasks", ("--tasks",), int, group="execution", parse=positive_int,
            help="shards of the input (by file; by parquet row group when files are few); default 1, or with "
            "--rank: the existing run's count, else the SLURM array's size"),
    Setting("rank", ("--rank",), int, group="execution", parse=non_negative_int, sweepable=False,
            help="run only this task (0-based) of --tasks, e.g. $SLURM_ARRAY_TASK_ID (slurm/rephrase.sh passes "
            "it); other tasks may run at the same time on other nodes"),
    Setting("workers", ("--workers",), int, group="execution", parse=positive_int, default=1,
            help="tasks run at once on this machine; default 1"),
    Setting("chunk_size", ("--chunk-size",), int, group="execution", parse=positive_int,
            help="documents per committed chunk (default: 20 embedded, 1000 otherwise); a crash loses at most the "
            "open chunks"),
    Setting("gpus_per_task", ("--gpus-per-task",), int, group="execution", parse=non_negative_int,
            help="GPUs each task holds, for GPU-hours in `finephrase status` (default: 1 vllm, 0 otherwise)"),
    Setting("max_concurrency", ("--max-concurrency",), int, group="execution", parse=positive_int,
            help="requests in flight per task (default: 4 embedded, 512 vllm, 64 endpoint)"),
    Setting("max_held_docs", ("--max-held-docs",), int, group="execution", parse=positive_int,
            help="documents read but not yet committed, at most (their rows wait in memory); the reader pauses "
            "above it. Chunks commit in any order, so a straggling request holds back only its own chunk. "
            "Default: 32 x --max-concurrency / prompts, at least 2 x --chunk-size"),
    Setting("request_timeout", ("--request-timeout",), float, group="execution", default=600.0,
            help="seconds per request (600)"),
    Setting("max_retries", ("--max-retries",), int, group="execution", parse=non_negative_int, default=3,
            help="retries of a failed request (3)"),
    Setting("progress_interval", ("--progress-interval",), float, group="execution", default=30,
            env="FINEPHRASE_PROGRESS_INTERVAL",
            help="seconds between progress lines when not on a terminal (30, or $FINEPHRASE_PROGRESS_INTERVAL)"),
    Setting("overwrite", ("--overwrite",), bool, group="execution", config=False, sweepable=False,
            help="delete an existing run in OUTPUT and start over (default: resume it)"),
    Setting("prompts_dir", ("--prompts-dir",), group="execution", config=False,
            help="folder of prompt templates that add to the built-in library or override its templates of the same "
            "name (after $FINEPHRASE_PROMPTS_DIR, which does the same)"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in REPHRASE_SETTINGS}
SWEEPABLE: dict[str, Setting] = {s.name: s for s in REPHRASE_SETTINGS if s.sweepable}


def add_prompts_dir_argument(parser) -> None:
    """--prompts-dir, as `finephrase rephrase` has it (other commands that read templates take it too)."""
    s = BY_NAME["prompts_dir"]
    parser.add_argument(*s.flags, **s.argparse_kwargs())


def add_rephrase_arguments(parser: argparse.ArgumentParser) -> None:
    """All of `finephrase rephrase`'s arguments, in their groups, in the order of REPHRASE_SETTINGS."""
    groups: dict[str | None, object] = {None: parser}
    for s in REPHRASE_SETTINGS:
        if s.group not in groups:
            groups[s.group] = parser.add_argument_group(GROUP_TITLES[s.group])
        groups[s.group].add_argument(*s.flags, **s.argparse_kwargs())


def config_kwargs(args: argparse.Namespace, **resolved) -> dict:
    """The RunConfig.for_backend keywords of parsed `finephrase rephrase` arguments. `resolved` gives those the
    command works out itself (`prompts` from --prompt and --prompts-dir; `tasks` from --tasks and --rank)."""
    kw = {s.name: getattr(args, s.dest) for s in REPHRASE_SETTINGS if s.config}
    kw.update(resolved)
    return kw
