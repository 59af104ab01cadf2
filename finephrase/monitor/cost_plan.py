"""`finephrase plan`: what a rephrasing job costs before it runs.

    output tokens = documents x prompts x output tokens per row
    GPU-hours     = output tokens / (output tokens/s per GPU) / 3600
    wall time     = GPU-hours / GPUs          (ideal scaling: tasks are independent shards)
    cost          = GPU-hours x price per GPU-hour

The throughput is given (`--throughput`), taken from a built-in preset of published figures (`--preset`,
listed by `--list-presets`), or measured on a finished run (`--from-run DIR`: its committed output tokens per
GPU-second, as `finephrase status` computes them).
"""

from __future__ import annotations

import argparse
import math
import re

import orjson

from finephrase.argtypes import int_at_least, non_negative_float, positive_float
from finephrase.errors import UsageError
from finephrase.formatting import duration

# FineWeb-Edu sample-350BT: ~350B tokens in the 339M documents the FinePhrase paper rephrased (~1,030 each).
DEFAULT_TOKENS_PER_DOCUMENT = 1030
# The FinePhrase paper's average completion length over its 1.35B samples (486B tokens).
DEFAULT_OUTPUT_TOKENS_PER_ROW = 359
DEFAULT_PRESET = "smollm2-1.7b-h100-tuned"

_PAPER = ("FinePhrase paper (HuggingFaceFW, \"The Synthetic Data Playbook: Generating Trillions of the Finest "
          "Tokens\", 2026)")

# Only figures with a source. tok_s_per_gpu: generated (output) tokens per second per GPU, sustained.
PRESETS: dict[str, dict] = {
    "smollm2-1.7b-h100-tuned": {
        "tok_s_per_gpu": 9220,
        "model": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "hardware": "1x H100 80GB, vLLM",
        "setup": "tuned serving settings with suffix-32 speculative decoding (the FinePhrase production run)",
        "source": _PAPER + ", infrastructure benchmarks; 'Building FinePhrase' quotes ~9,200 tok/s per GPU",
    },
    "smollm2-1.7b-h100-untuned": {
        "tok_s_per_gpu": 5255,
        "model": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "hardware": "1x H100 80GB, vLLM",
        "setup": "vLLM default serving settings (before tuning)",
        "source": _PAPER + ", infrastructure benchmarks (baseline configuration)",
    },
}

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(v: str) -> float:
    """'339M', '339e6', '339_000_000', '1.3T' -> a positive number."""
    m = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*([kmbgtKMBGT]?)\s*", v)
    if not m:
        raise argparse.ArgumentTypeError(f"not a number: {v!r} (examples: 339000000, 339M, 3.39e8, 1.3T)")
    x = float(m.group(1).replace("_", "").replace(",", "")) * _SUFFIX[m.group(2).lower()]
    if not x > 0 or x == math.inf:
        raise argparse.ArgumentTypeError(f"must be > 0: {v!r}")
    return x


def _gpu_list(v: str) -> list[int]:
    parse = int_at_least(1)
    return [parse(x.strip()) for x in v.split(",") if x.strip()]


def measured_throughput(run_dir: str, gpus_per_task: int | None = None) -> dict:
    """Lifetime output tokens/s per GPU of a run, from `finephrase status`'s numbers."""
    from finephrase.monitor.status import collect

    rep = collect(run_dir, gpus_per_task=gpus_per_task, exact_totals=False)
    t = rep["total"]
    if not t["output_tokens"]:
        raise UsageError(f"run {run_dir} has no committed output tokens yet: nothing to measure")
    if not t["gpu_hours"]:
        raise UsageError(f"run {run_dir} has no GPU time (its tasks held 0 GPUs, e.g. the embedded or endpoint "
                         f"backend): pass --gpus-per-task N, the GPUs each task had")
    rows = sum(t["rows"].values())
    return {"tok_s_per_gpu": t["output_tok_s_per_gpu"], "run": str(run_dir), "state": rep["state"],
            "output_tokens": t["output_tokens"], "gpu_hours": t["gpu_hours"], "rows": rows,
            "output_tokens_per_row": t["output_tokens"] / rows if rows else None,
            "model": rep["model"], "backend": rep["backend"]}


def plan(documents: float, prompts: int, output_tokens_per_row: float, tok_s_per_gpu: float,
         gpus: list[int], price_per_gpu_hour: float | None = None) -> dict:
    rows = documents * prompts
    output_tokens = rows * output_tokens_per_row
    gpu_hours = output_tokens / tok_s_per_gpu / 3600
    cost = gpu_hours * price_per_gpu_hour if price_per_gpu_hour is not None else None
    return {
        "documents": documents,
        "prompts": prompts,
        "rows": rows,
        "output_tokens_per_row": output_tokens_per_row,
        "output_tokens": output_tokens,
        "tok_s_per_gpu": tok_s_per_gpu,
        "gpu_hours": gpu_hours,
        "gpu_hours_per_billion_output_tokens": 1e9 / tok_s_per_gpu / 3600,
        "price_per_gpu_hour": price_per_gpu_hour,
        "cost": cost,
        "by_gpus": [{"gpus": g, "wall_hours": gpu_hours / g, "wall_s": gpu_hours * 3600 / g,
                     "output_tok_s": tok_s_per_gpu * g} for g in gpus],
    }


def _big(x: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if x >= div:
            return f"{x / div:,.2f}{unit}"
    return f"{x:,.0f}"


def render(p: dict) -> str:
    lines = []
    docs_note = (f" ({_big(p['source_tokens'])} source tokens / {p['tokens_per_document']:,g} per document)"
                 if p.get("source_tokens") else "")
    lines.append(f"documents        {p['documents']:,.0f}{docs_note}")
    lines.append(f"rows             {p['rows']:,.0f} ({p['prompts']} prompt{'s' if p['prompts'] != 1 else ''}"
                 + (f": {', '.join(p['prompt_names'])}" if p.get("prompt_names") else "") + ")")
    lines.append(f"output tokens    {p['output_tokens']:,.0f} ({_big(p['output_tokens'])}; "
                 f"{p['output_tokens_per_row']:,g} per row)")
    lines.append(f"throughput       {p['tok_s_per_gpu']:,.0f} output tok/s per GPU ({p['throughput_source']})")
    lines.append(f"GPU-hours        {p['gpu_hours']:,.0f} ({p['gpu_hours'] / 24:,.0f} GPU-days; "
                 f"{p['gpu_hours_per_billion_output_tokens']:.1f} GPU-hours per billion output tokens)")
    if p["cost"] is not None:
        lines.append(f"cost             ${p['cost']:,.0f} at ${p['price_per_gpu_hour']:g} per GPU-hour")
    lines.append("")
    lines.append(f"{'GPUS':>6}  {'WALL TIME':>10}  {'OUTPUT TOK/S':>13}")
    for row in p["by_gpus"]:
        lines.append(f"{row['gpus']:>6,}  {duration(row['wall_s'], ' '):>10}  {row['output_tok_s']:>13,.0f}")
    lines.append("(wall time assumes ideal scaling and no downtime; add server start-up, retries and stragglers)")
    return "\n".join(lines)


def render_presets() -> str:
    lines = [f"{'PRESET':<28} {'TOK/S/GPU':>9}  MODEL / HARDWARE / SETUP / SOURCE"]
    for name, p in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        lines.append(f"{name:<28} {p['tok_s_per_gpu']:>9,}  {p['model']} on {p['hardware']}{default}")
        lines.append(f"{'':<39}{p['setup']}")
        lines.append(f"{'':<39}source: {p['source']}")
    return "\n".join(lines)


def add_parser(sub):
    p = sub.add_parser(
        "plan", help="estimate output tokens, GPU-hours, wall time and cost of a rephrasing job",
        description="Estimate a rephrasing job: output tokens = documents x prompts x output tokens per row; "
        "GPU-hours = output tokens / throughput per GPU; wall time = GPU-hours / GPUs; cost = GPU-hours x price. "
        "Example (the FinePhrase paper's run): finephrase plan --documents 339M --prompt faq,math,table,tutorial",
)
    g = p.add_argument_group("how much")
    g.add_argument("--documents", type=parse_count, metavar="N",
                   help="documents to rephrase (339M, 3.39e8 and 339000000 all work)")
    g.add_argument("--source-tokens", type=parse_count, metavar="N",
                   help="or: source tokens to rephrase; documents = N / --tokens-per-document")
    g.add_argument("--tokens-per-document", type=positive_float, default=DEFAULT_TOKENS_PER_DOCUMENT, metavar="T",
                   help="with --source-tokens: average document length; the default is FineWeb-Edu's "
                   "(sample-350BT: ~350B tokens in 339M documents): %(default)s")
    g.add_argument("--prompts", type=int_at_least(1), metavar="K", help="number of prompts per document (default 1)")
    g.add_argument("--prompt", metavar="NAMES", help="or: the prompts, comma separated (faq,math,table,tutorial): "
                   "their number is used")
    g.add_argument("--output-tokens-per-row", type=positive_float, default=DEFAULT_OUTPUT_TOKENS_PER_ROW,
                   metavar="T", help="average generated tokens per row; the default is the FinePhrase paper's "
                   "average (486B tokens / 1.35B samples): %(default)s")
    g = p.add_argument_group("how fast (one of; default --preset " + DEFAULT_PRESET + ")")
    g.add_argument("--throughput", type=positive_float, metavar="TOK_PER_S_PER_GPU",
                   help="sustained output tokens per second per GPU")
    g.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                   help="a published throughput figure (see --list-presets)")
    g.add_argument("--from-run", metavar="DIR", help="the measured lifetime output tok/s per GPU of a run "
                   "(as `finephrase status DIR` computes it)")
    g.add_argument("--gpus-per-task", type=int_at_least(0), metavar="N",
                   help="with --from-run: GPUs each task of that run held (default: its manifest's)")
    g = p.add_argument_group("on what")
    g.add_argument("--gpus", action="append", type=_gpu_list, metavar="G",
                   help="GPUs working in parallel, for the wall time (repeatable, or a list: --gpus 8,64,100; "
                   "default 1)")
    g.add_argument("--price-per-gpu-hour", type=non_negative_float, metavar="USD", help="for a cost estimate")
    p.add_argument("--list-presets", action="store_true", help="list the throughput presets and their sources")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def build(args) -> dict:
    if args.documents is not None and args.source_tokens is not None:
        raise UsageError("give --documents or --source-tokens, not both")
    if args.documents is None and args.source_tokens is None:
        raise UsageError("how much to rephrase? give --documents N or --source-tokens N (e.g. finephrase plan "
                         "--documents 339M --prompts 4)")
    if args.prompts is not None and args.prompt is not None:
        raise UsageError("give --prompts K or --prompt NAMES, not both")
    given = [x for x in ("throughput", "preset", "from_run") if getattr(args, x) is not None]
    if len(given) > 1:
        raise UsageError("give one of --throughput, --preset, --from-run")
    if args.gpus_per_task is not None and args.from_run is None:
        raise UsageError("--gpus-per-task only applies to --from-run")

    source_tokens = None
    if args.source_tokens is not None:
        source_tokens = args.source_tokens
        documents = round(source_tokens / args.tokens_per_document)
    else:
        documents = round(args.documents)
    if documents < 1:
        raise UsageError("that is less than one document")
    names = None
    if args.prompt is not None:
        names = list(dict.fromkeys(x.strip() for x in args.prompt.split(",") if x.strip()))
        if not names:
            raise UsageError("--prompt names no prompt")
        prompts = len(names)
    else:
        prompts = args.prompts or 1

    measured = None
    if args.throughput is not None:
        tok_s, source = args.throughput, "--throughput"
    elif args.from_run is not None:
        measured = measured_throughput(args.from_run, args.gpus_per_task)
        tok_s = measured["tok_s_per_gpu"]
        source = (f"measured on {args.from_run}: {measured['output_tokens']:,} output tokens in "
                  f"{measured['gpu_hours']:.4g} GPU-hours, run {measured['state']}")
    else:
        name = args.preset or DEFAULT_PRESET
        tok_s, source = PRESETS[name]["tok_s_per_gpu"], f"preset {name}"
    gpus = [g for group in (args.gpus or [[1]]) for g in group] or [1]
    out = plan(documents, prompts, args.output_tokens_per_row, tok_s, list(dict.fromkeys(gpus)),
               args.price_per_gpu_hour)
    out["throughput_source"] = source
    out["source_tokens"] = source_tokens
    out["tokens_per_document"] = args.tokens_per_document if source_tokens is not None else None
    out["prompt_names"] = names
    if measured is not None:
        out["from_run"] = measured
    return out


def main(args) -> int:
    if args.list_presets:
        if args.json:
            print(orjson.dumps({"presets": PRESETS, "default": DEFAULT_PRESET}, option=orjson.OPT_INDENT_2).decode())
        else:
            print(render_presets())
        return 0
    p = build(args)
    print(orjson.dumps(p, option=orjson.OPT_INDENT_2).decode() if args.json else render(p))
    return 0
