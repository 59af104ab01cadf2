"""What OUT/mix.json records: the request, the tokenizer, each input's and part's available and selected rows and
tokens, and the achieved shares against the tolerance."""

from __future__ import annotations

import time

from finephrase.mix.config import TOLERANCE, MixConfig


def _input_entry(inp, frac: float, sel: dict, written: dict[str, dict]) -> dict:
    entry = {"kind": inp.kind, "name": inp.name, "path": inp.path, "weight": inp.weight,
             "requested_share": frac, "available": {"rows": 0, "tokens": 0}, "skipped_rows": 0,
             "selected": {"rows": 0, "tokens": 0}, "parts": {}}
    for part in inp.parts:
        got = written[part.label]
        d = {"files": part.n_files, "available": {"rows": part.usable, "tokens": part.tokens},
             "skipped_rows": dict(sorted(part.bad.items())),
             "selected": {"rows": got["rows"], "tokens": got["tokens"]}}
        if part.skipped_files:
            d["uncommitted_files_left_out"] = part.skipped_files
        entry["parts"][part.label] = d
        for key in ("rows", "tokens"):
            entry["available"][key] += d["available"][key]
            entry["selected"][key] += d["selected"][key]
        entry["skipped_rows"] += sum(part.bad.values())
    entry["repeated_rows"] = sel["rows"] - sel["unique"]
    return entry


def _report(cfg: MixConfig, inputs, plan: dict, written: dict[str, dict], counter, files: list[str],
            command: list[str] | None) -> dict:
    """`written`: rows and tokens per part label, as the tasks wrote them."""
    from finephrase import __version__

    per_input = [_input_entry(inp, f, sel, written)
                 for inp, f, sel in zip(inputs, plan["fractions"], plan["selections"])]
    parts = {label: dict(d["selected"]) for e in per_input for label, d in e["parts"].items()}
    tot_tokens = sum(e["selected"]["tokens"] for e in per_input)
    tot_rows = sum(e["selected"]["rows"] for e in per_input)
    shares = {}
    ok = True
    for kind, req in (("synthetic", cfg.synthetic_share), ("source", 1 - cfg.synthetic_share)):
        got = sum(e["selected"]["tokens"] for e in per_input if e["kind"] == kind) / tot_tokens
        shares[kind] = {"requested": req, "achieved": got}
        ok &= abs(got - req) <= TOLERANCE
    for e in per_input:
        e["achieved_share"] = e["selected"]["tokens"] / tot_tokens
        ok &= abs(e["achieved_share"] - e["requested_share"]) <= TOLERANCE
    for d in parts.values():
        d["share"] = d["tokens"] / tot_tokens
    limiting = plan["limiting"]
    return {
        "finephrase_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "request": {"synthetic_share": cfg.synthetic_share, "source_share": 1 - cfg.synthetic_share,
                    "synthetic": list(cfg.synthetic), "sources": list(cfg.sources),
                    "synthetic_weights": cfg.synthetic_weights, "source_weights": cfg.source_weights,
                    "tokenizer": cfg.tokenizer, "seed": cfg.seed, "max_tokens": cfg.max_tokens,
                    "allow_repeats": cfg.allow_repeats, "shard_rows": cfg.shard_rows,
                    "text_column": cfg.text_column, "id_column": cfg.id_column},
        "tokenizer": counter.describe(),
        "seed": cfg.seed,
        "planned_tokens": round(plan["total"]),
        "limited_by": "max_tokens" if limiting is None else f"{inputs[limiting].kind}:{inputs[limiting].name}",
        "inputs": per_input,
        "parts": parts,
        "totals": {"rows": tot_rows, "tokens": tot_tokens},
        "shares": shares,
        "tolerance": TOLERANCE,
        "within_tolerance": bool(ok),
        "files": files,
    }
