"""The whole mix: resolve the inputs, count every usable row once, plan the budgets, select, write, report."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from finephrase.errors import UsageError
from finephrase.mix.compute import _UNION, _rng, fractions, plan_total, select
from finephrase.mix.config import TMP_DIR, TOLERANCE, TRAIN_DIR, MixConfig
from finephrase.mix.counting import TokenCounter, count_part, load_tokenizer
from finephrase.mix.render import format_report
from finephrase.mix.report import _report
from finephrase.mix.sources import MixInput, resolve_source, resolve_synthetic, split_name
from finephrase.mix.write import _Buckets, _bucket_rows, _check_output, _prepare_output, _swap_in, _write_shards


def _say(msg: str):
    print(msg, file=sys.stderr, flush=True)


def build_mix(cfg: MixConfig, quiet: bool = False, command: list[str] | None = None) -> dict:
    """Build the mix described by `cfg` into cfg.output; returns what is written to OUT/mix.json."""
    say = (lambda m: None) if quiet else _say
    started = time.time()
    cfg.check()
    inputs = _resolve_inputs(cfg)
    out = Path(cfg.output)
    for inp in inputs:
        if inp.kind == "synthetic" and Path(split_name(inp.path)[1]).resolve() == out.resolve():
            raise UsageError(f"output {out} is also a synthetic input")
    _check_output(out)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    counter = load_tokenizer(cfg.tokenizer, workers)
    _prepare_output(out)
    for inp in inputs:
        for note in inp.notes:
            say(f"note: {note}")

    t0 = time.time()
    counted_tokens, counted_chars = _count_inputs(inputs, counter, say)
    count_s = time.time() - t0

    fracs = fractions(inputs, cfg.synthetic_share)
    total, limiting = plan_total(inputs, fracs, cfg.max_tokens, cfg.allow_repeats)
    selections = [select(inp.tokens, f * total, cfg.seed, inp.name + "\0" + inp.kind, cfg.allow_repeats)
                  for inp, f in zip(inputs, fracs)]
    _note_scaled_down(cfg, inputs, selections, limiting, say)

    # the final order: entry j (inputs in order, then their selections) goes to position pos[j]
    sizes = [len(s) for s in selections]
    n_rows = sum(sizes)
    if n_rows == 0:
        raise UsageError("the mix would be empty (--max-tokens too small?)")
    pos = _rng(cfg.seed, _UNION).permutation(n_rows)
    n_shards = -(-n_rows // cfg.shard_rows)
    tmp = out / TMP_DIR
    buckets = _Buckets(tmp / "buckets")
    labels = [p.label for inp in inputs for p in inp.parts]
    t0 = time.time()
    _bucket_rows(buckets, inputs, selections, pos, labels, cfg.shard_rows)
    train_tmp = tmp / TRAIN_DIR
    files = _write_shards(buckets, train_tmp, labels, n_rows, n_shards, cfg.shard_rows)
    write_s = time.time() - t0

    report = _report(cfg, inputs, fracs, selections, labels, counter, total, limiting, files, command)
    report["timing"] = {"count_s": round(count_s, 3), "write_s": round(write_s, 3),
                        "total_s": round(time.time() - started, 3),
                        "tokens_per_s": round(counted_tokens / max(count_s, 1e-9)),
                        "mb_per_s": round(counted_chars / 1e6 / max(count_s, 1e-9), 3), "workers": workers}

    # swap in: mix.json goes last, so OUT is complete exactly when mix.json exists
    _swap_in(out, tmp, train_tmp, report)
    if not quiet:
        print(format_report(report))
    if not report["within_tolerance"]:
        say(f"warning: an achieved share is more than {TOLERANCE:.0%} off the request (rows are large for these "
            f"budgets): see the table")
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


def _count_inputs(inputs: list[MixInput], counter: TokenCounter, say) -> tuple[int, int]:
    """Count every part (a line each); returns the usable (tokens, characters) counted."""
    counted_tokens = counted_chars = 0
    for inp in inputs:
        for part in inp.parts:
            t1 = time.time()
            count_part(part, counter)
            usable = part.tokens >= 0
            n_tok, n_chr = int(part.tokens[usable].sum()), int(part.chars[usable].sum())
            counted_tokens += n_tok
            counted_chars += n_chr
            dt = max(time.time() - t1, 1e-9)
            why = ", ".join(f"{k}: {v}" for k, v in sorted(part.bad.items()))
            bad = f", {sum(part.bad.values())} skipped ({why})" if part.bad else ""
            say(f"counted {part.label}: {int(usable.sum()):,} rows, {n_tok:,} tokens{bad} "
                f"({dt:.1f} s, {n_tok / dt:,.0f} tokens/s)")
        if inp.available_tokens == 0:
            raise UsageError(f"{inp.kind} input {inp.path} has no rows with text")
    return counted_tokens, counted_chars


def _note_scaled_down(cfg: MixConfig, inputs: list[MixInput], selections: list[np.ndarray], limiting: int | None,
                      say):
    """A note when a small source input, not the synthetic side, limits the mix (and repeats are not allowed)."""
    if limiting is not None and not cfg.allow_repeats and inputs[limiting].kind == "source":
        syn_avail = sum(i.available_tokens for i in inputs if i.kind == "synthetic")
        syn_used = sum(int(i.tokens[s].sum()) for i, s in zip(inputs, selections) if i.kind == "synthetic")
        if syn_used < syn_avail:
            say(f"note: source input {inputs[limiting].path} has only {inputs[limiting].available_tokens:,} tokens, "
                f"so {syn_used:,} of the {syn_avail:,} synthetic tokens ({syn_used / syn_avail:.0%}) are used to keep "
                f"the {cfg.synthetic_share:.0%} share without repeating rows (--allow-repeats repeats source rows "
                f"instead)")
