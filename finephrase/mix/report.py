"""What OUT/mix.json records: the request, the tokenizer, each input's and part's available and selected rows and
tokens, and the achieved shares against the tolerance."""

from __future__ import annotations

import time

import numpy as np

from finephrase.mix.config import TOLERANCE, MixConfig


def _report(cfg: MixConfig, inputs, fracs, selections, labels, counter, total, limiting, files,
            command: list[str] | None) -> dict:
    from finephrase import __version__

    parts: dict[str, dict] = {}
    per_input = []
    for inp, f, sel in zip(inputs, fracs, selections):
        entry = {"kind": inp.kind, "name": inp.name, "path": inp.path, "weight": inp.weight,
                 "requested_share": f, "available": {"rows": 0, "tokens": 0}, "skipped_rows": 0,
                 "selected": {"rows": int(len(sel)), "tokens": 0}, "parts": {}}
        base = 0
        for part in inp.parts:
            n = len(part.tokens)
            mine = sel[(sel >= base) & (sel < base + n)] - base
            usable = part.tokens >= 0
            d = {"files": part.n_files, "available": {"rows": int(usable.sum()),
                                                          "tokens": int(part.tokens[usable].sum())},
                 "skipped_rows": dict(sorted(part.bad.items())),
                 "selected": {"rows": int(len(mine)), "tokens": int(part.tokens[mine].sum())}}
            if part.skipped_files:
                d["uncommitted_files_left_out"] = part.skipped_files
            entry["parts"][part.label] = d
            parts[part.label] = dict(d["selected"])
            for key in ("rows", "tokens"):
                entry["available"][key] += d["available"][key]
            entry["skipped_rows"] += sum(part.bad.values())
            entry["selected"]["tokens"] += d["selected"]["tokens"]
            base += n
        per_input.append(entry)
    tot_tokens = sum(e["selected"]["tokens"] for e in per_input)
    tot_rows = sum(e["selected"]["rows"] for e in per_input)
    shares = {}
    ok = True
    for kind, req in (("synthetic", cfg.synthetic_share), ("source", 1 - cfg.synthetic_share)):
        got = sum(e["selected"]["tokens"] for e in per_input if e["kind"] == kind) / tot_tokens
        shares[kind] = {"requested": req, "achieved": got}
        ok &= abs(got - req) <= TOLERANCE
    for e, sel in zip(per_input, selections):
        e["achieved_share"] = e["selected"]["tokens"] / tot_tokens
        ok &= abs(e["achieved_share"] - e["requested_share"]) <= TOLERANCE
        e["repeated_rows"] = int(len(sel) - len(np.unique(sel)))
    for label, d in parts.items():
        d["share"] = d["tokens"] / tot_tokens
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
        "planned_tokens": round(total),
        "limited_by": "max_tokens" if limiting is None else f"{inputs[limiting].kind}:{inputs[limiting].name}",
        "inputs": per_input,
        "parts": parts,
        "totals": {"rows": tot_rows, "tokens": tot_tokens},
        "shares": shares,
        "tolerance": TOLERANCE,
        "within_tolerance": bool(ok),
        "files": files,
    }
