"""Format compliance with and without constrained generation, on the embedded SmolLM2-135M-Instruct (llama.cpp)
and the bundled sample: for each prompt, the share of (document, prompt) pairs that end published (so in
format: they passed the quality gate) and the generated tokens per second, measured side by side in one run.

    python benchmarks/compliance.py                 # 20 documents, faq and table, max tokens 512
    python benchmarks/compliance.py --docs 120      # the whole sample (about 1 h on 2 cores)
    python benchmarks/compliance.py --quick         # 3 documents, faq only

Both arms run `finephrase rephrase` on the same documents with the same seed, one after the other: plain, then
with --constrain-format (each template's [check] grammar sent with its requests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    base_parser,
    env_for_children,
    finephrase_cmd,
    machine,
    machine_line,
    resolve_repeats,
    sample_texts,
    table,
    write_input,
    write_results,
)


def arm(work: Path, src: Path, prompts: str, max_tokens: int, constrained: bool) -> dict:
    import orjson

    out = work / ("constrained" if constrained else "plain")
    cmd = finephrase_cmd("rephrase", src, "--prompt", prompts, "--output", out, "--max-tokens", max_tokens,
                         "--seed", "0", *(["--constrain-format"] if constrained else []))
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env_for_children())
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr[-2000:]}")
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    per = {}
    for p in prompts.split(","):
        rows = counts["rows"].get(p, 0)
        rej = Counter({k.split("/", 1)[1]: v for k, v in counts["rejects"].items() if k.startswith(f"{p}/")})
        per[p] = {"published": rows, "pairs": rows + sum(rej.values()), "rejects": dict(rej.most_common())}
    return {"wall_s": round(wall, 1), "generated_tokens": counts.get("generated_tokens", 0),
            "tokens_per_s": round(counts.get("generated_tokens", 0) / wall, 1), "prompts": per}


def main():
    p = base_parser("compliance", __doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=None, help="documents of the sample (20; quick 3)")
    p.add_argument("--prompt", default=None, help="prompts (faq,table; quick faq)")
    p.add_argument("--max-tokens", type=int, default=512)
    args = p.parse_args()
    resolve_repeats(args)
    args.repeats = 1  # one pass per arm: the quantity is a share of a fixed set, not a timing to median
    n = args.docs or (3 if args.quick else 20)
    prompts = args.prompt or ("faq" if args.quick else "faq,table")
    m = machine()
    print(machine_line(m))
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        src = write_input(work / "in.parquet", sample_texts(2500)[:n], "parquet")
        plain = arm(work, src, prompts, args.max_tokens, constrained=False)
        constrained = arm(work, src, prompts, args.max_tokens, constrained=True)
    rows = []
    for q in prompts.split(","):
        a, b = plain["prompts"][q], constrained["prompts"][q]
        share = lambda x: x["published"] / x["pairs"] if x["pairs"] else 0.0  # noqa: E731
        rows.append([q, f"{a['published']}/{a['pairs']} ({share(a):.0%})", f"{b['published']}/{b['pairs']} "
                     f"({share(b):.0%})", ", ".join(f"{k} {v}" for k, v in list(a["rejects"].items())[:3]),
                     ", ".join(f"{k} {v}" for k, v in list(b["rejects"].items())[:3])])
    print(table(["prompt", "published plain", "published constrained", "top rejects plain",
                 "top rejects constrained"], rows))
    ratio = constrained["tokens_per_s"] / plain["tokens_per_s"] if plain["tokens_per_s"] else None
    print(f"generated tok/s: plain {plain['tokens_per_s']}, constrained {constrained['tokens_per_s']} "
          f"(ratio {ratio:.2f})" if ratio else "")
    write_results("compliance", args, {"documents": n, "prompts": prompts, "max_tokens": args.max_tokens,
                                       "plain": plain, "constrained": constrained,
                                       "tokens_per_s_ratio": round(ratio, 3) if ratio else None})


if __name__ == "__main__":
    main()
