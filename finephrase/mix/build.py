"""The whole mix: resolve the inputs, then the stages (stages.py): count every usable row once, plan the budgets,
scatter the selected rows into buckets, write the shards, report. One process runs them all; a task of a SLURM
array runs its share of each and stops at a barrier the other tasks have not passed yet."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.mix.config import MIX_FILE, TOLERANCE, TRAIN_DIR, MixConfig
from finephrase.mix.counting import load_tokenizer
from finephrase.mix.render import format_report
from finephrase.mix.report import _report
from finephrase.mix.scatter import scatter_stage
from finephrase.mix.sources import MixInput, list_units, resolve_source, resolve_synthetic, split_name
from finephrase.mix.stages import (
    Work,
    _claim,
    apply_counts,
    count_stage,
    counted,
    open_work,
    plan_stage,
    request_of,
    shard_stage,
)
from finephrase.mix.write import _check_output, _swap_in
from finephrase.process.array_task import task_of


def _say(msg: str):
    print(msg, file=sys.stderr, flush=True)


def build_mix(cfg: MixConfig, quiet: bool = False, command: list[str] | None = None) -> dict | None:
    """Build the mix described by `cfg` into cfg.output; returns what is written to OUT/mix.json, or None when
    this task of an array stops before the mix is complete (the other tasks, or a rerun, finish it)."""
    say = (lambda m: None) if quiet else _say
    cfg.check()
    rank, tasks = task_of(cfg.rank, cfg.tasks)
    inputs = _resolve_inputs(cfg)
    out = Path(cfg.output)
    for inp in inputs:
        if inp.kind == "synthetic" and Path(split_name(inp.path)[1]).resolve() == out.resolve():
            raise UsageError(f"output {out} is also a synthetic input")
    _check_output(out)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    counter = load_tokenizer(cfg.tokenizer, workers)
    units = list_units(inputs)
    request = request_of(cfg, units, tasks)
    if tasks > 1 and (out / MIX_FILE).is_file() and not Work(out).dir.exists():
        done = orjson.loads((out / MIX_FILE).read_bytes())
        if done.get("array_request") == request:
            say(f"mix: {out} is complete (task {rank} of {tasks}: nothing to do)")
            return done
    out.mkdir(parents=True, exist_ok=True)
    work = open_work(out, request, single=tasks == 1)
    for inp in inputs:
        for note in inp.notes:
            say(f"note: {note}")

    count_stage(work, units, rank, tasks, counter, say)
    done = counted(work)
    if len(done) < len(units):
        return _wait(say, rank, tasks, f"{len(units) - len(done)} of {len(units)} files still to be counted")
    apply_counts(inputs, units, done)
    plan = plan_stage(work, cfg, inputs, units, rank, say)
    _note_scaled_down(cfg, inputs, plan, say)
    labels = [p.label for inp in inputs for p in inp.parts]
    scatter_stage(work.dir, units, inputs, plan, cfg.seed, rank, tasks, labels, cfg.bucket_bytes, work.spill)
    left = [r for r in range(tasks) if not (work.dir / f"scatter_{r:05d}.json").exists()]
    if left:
        return _wait(say, rank, tasks, f"{len(left)} tasks still to scatter their rows")
    shard_stage(work, plan, labels, cfg.shard_rows, rank, tasks)
    left = [r for r in range(tasks) if not (work.dir / f"shards_{r:05d}.json").exists()]
    if left:
        return _wait(say, rank, tasks, f"{len(left)} tasks still to write their shards")
    if not _claim(work.dir / "finalize.claim", rank):
        return _wait(say, rank, tasks, "another task writes mix.json")
    report = _finalize(out, work, cfg, inputs, plan, labels, counter, command, tasks, request, workers)
    if not quiet:
        print(format_report(report))
    if not report["within_tolerance"]:
        say(f"warning: an achieved share is more than {TOLERANCE:.0%} off the request (rows are large for these "
            f"budgets): see the table")
    return report


def _wait(say, rank: int, tasks: int, why: str) -> None:
    say(f"mix: task {rank} of {tasks} done for now: {why}; the same command continues the mix once they are "
        f"(a task of a later array, or a rerun)")
    return None


def _finalize(out: Path, work: Work, cfg: MixConfig, inputs, plan: dict, labels: list[str], counter, command,
              tasks: int, request: dict, workers: int) -> dict:
    """Totals from every task's markers, then train/ swapped in and mix.json written last."""
    written = {label: {"rows": 0, "tokens": 0} for label in labels}
    write_s = 0.0
    for r in range(tasks):
        rec = orjson.loads((work.dir / f"scatter_{r:05d}.json").read_bytes())
        write_s += rec["seconds"]
        for label, d in rec["parts"].items():
            written[label]["rows"] += d["rows"]
            written[label]["tokens"] += d["tokens"]
    shards = []
    for r in range(tasks):
        rec = orjson.loads((work.dir / f"shards_{r:05d}.json").read_bytes())
        write_s += rec["seconds"]
        shards += rec["shards"]
    shards.sort(key=lambda s: s["shard"])
    if sum(s["rows"] for s in shards) != plan["n_rows"] or [s["shard"] for s in shards] != list(range(len(shards))):
        raise UsageError("internal error: the shards do not hold the planned rows")
    report = _report(cfg, inputs, plan, written, counter, [s["file"] for s in shards], command)
    done = counted(work)
    count_s = sum(d["seconds"] for d in done.values())
    tokens = sum(d["tokens"] for d in done.values())
    chars = sum(d["chars"] for d in done.values())
    started = orjson.loads((work.dir / "request.json").read_bytes())["started"]
    report["timing"] = {"count_s": round(count_s, 3), "plan_s": plan["seconds"], "write_s": round(write_s, 3),
                        "total_s": round(time.time() - started, 3),
                        "tokens_per_s": round(tokens / max(count_s, 1e-9)),
                        "mb_per_s": round(chars / 1e6 / max(count_s, 1e-9), 3), "workers": workers, "tasks": tasks}
    if tasks > 1:
        report["array_request"] = request
    _swap_in(out, work.dir, work.dir / TRAIN_DIR, report)
    return report


def _resolve_inputs(cfg: MixConfig) -> list[MixInput]:
    """The synthetic inputs, then the source inputs; refused if two of their parts share a label."""
    sw = cfg.synthetic_weights or [None] * len(cfg.synthetic)
    rw = cfg.source_weights or [None] * len(cfg.sources)
    inputs = [resolve_synthetic(s, w, cfg.allow_unfinished) for s, w in zip(cfg.synthetic, sw)]
    inputs += [resolve_source(s, cfg.text_column, cfg.id_column, w) for s, w in zip(cfg.sources, rw)]
    seen: dict[str, str] = {}
    for inp in inputs:
        for p in inp.parts:
            if p.label in seen:
                raise UsageError(f"two inputs are both named {p.label} ({seen[p.label]}, {inp.path}): "
                                 f"name them with NAME=PATH")
            seen[p.label] = inp.path
    return inputs


def _note_scaled_down(cfg: MixConfig, inputs: list[MixInput], plan: dict, say):
    """A note when a small source input, not the synthetic side, limits the mix (and repeats are not allowed)."""
    limiting = plan["limiting"]
    if limiting is not None and not cfg.allow_repeats and inputs[limiting].kind == "source":
        syn_avail = sum(i.available_tokens for i in inputs if i.kind == "synthetic")
        syn_used = sum(s["tokens"] for i, s in zip(inputs, plan["selections"]) if i.kind == "synthetic")
        if syn_used < syn_avail:
            say(f"note: source input {inputs[limiting].path} has only {inputs[limiting].available_tokens:,} tokens, "
                f"so {syn_used:,} of the {syn_avail:,} synthetic tokens ({syn_used / syn_avail:.0%}) are used to keep "
                f"the {cfg.synthetic_share:.0%} share without repeating rows (--allow-repeats repeats source rows "
                f"instead)")
