"""Format compliance with and without constrained generation and regeneration, on the embedded
SmolLM2-135M-Instruct (llama.cpp) and the bundled sample: for each prompt, the share of (document, prompt) pairs
that end published (so in format: they passed the quality gate), the generated tokens per second and the share
of them that regeneration discarded, measured side by side in one run.

    python benchmarks/compliance.py                 # 20 documents, faq and table, max tokens 512, four arms
    python benchmarks/compliance.py --prompt faq,math,table,tutorial --docs 8
    python benchmarks/compliance.py --docs 120      # the whole sample (hours on 2 cores)
    python benchmarks/compliance.py --quick         # 3 documents, faq only
    python benchmarks/compliance.py --arms plain,default

Every arm runs `finephrase rephrase` on the same documents with the same seed, one after the other: `plain`
(--no-constrain-format --max-attempts 1), `constrained` (each template's [check] grammar sent with its requests,
one attempt), `plain+regenerate` (no grammar, up to 3 attempts) and `default` (the embedded backend's defaults:
grammar and up to 3 attempts).
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


ARMS = {
    "plain": ["--no-constrain-format", "--max-attempts", "1"],
    "constrained": ["--constrain-format", "--max-attempts", "1"],
    "plain+regenerate": ["--no-constrain-format", "--max-attempts", "3"],
    "default": [],  # the embedded backend's: --constrain-format, --max-attempts 3
}


def arm(work: Path, src: Path, prompts: str, max_tokens: int, name: str) -> dict:
    import orjson

    out = work / name.replace("+", "_")
    cmd = finephrase_cmd("rephrase", src, "--prompt", prompts, "--output", out, "--max-tokens", max_tokens,
                         "--seed", "0", *ARMS[name])
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
    generated = counts.get("generated_tokens", 0)
    return {"wall_s": round(wall, 1), "generated_tokens": generated, "retry_tokens": counts.get("retry_tokens", 0),
            "tokens_per_s": round(generated / wall, 1), "prompts": per}


def main():
    p = base_parser("compliance", __doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=None, help="documents of the sample (20; quick 3)")
    p.add_argument("--prompt", default=None, help="prompts (faq,table; quick faq)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--arms", default=",".join(ARMS), help=f"arms to run, of {', '.join(ARMS)}")
    args = p.parse_args()
    resolve_repeats(args)
    args.repeats = 1  # one pass per arm: the quantity is a share of a fixed set, not a timing to median
    n = args.docs or (3 if args.quick else 20)
    prompts = args.prompt or ("faq" if args.quick else "faq,table")
    arms = [a for a in args.arms.split(",") if a]
    if unknown := [a for a in arms if a not in ARMS]:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}: choose from {', '.join(ARMS)}")
    m = machine()
    print(machine_line(m))
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        src = write_input(work / "in.parquet", sample_texts(2500)[:n], "parquet")
        results = {a: arm(work, src, prompts, args.max_tokens, a) for a in arms}
    share = lambda x: x["published"] / x["pairs"] if x["pairs"] else 0.0  # noqa: E731
    rows = [[q] + [f"{r['prompts'][q]['published']}/{r['prompts'][q]['pairs']} ({share(r['prompts'][q]):.0%})"
                   for r in results.values()] for q in prompts.split(",")]
    print(table(["prompt"] + [f"published, {a}" for a in arms], rows))
    print(table(["arm", "wall s", "generated tokens", "tok/s", "discarded by regeneration", "top rejects"],
                [[a, r["wall_s"], r["generated_tokens"], r["tokens_per_s"],
                  f"{r['retry_tokens'] / max(1, r['generated_tokens']):.0%}",
                  "; ".join(f"{q}: " + ", ".join(f"{k} {v}" for k, v in list(x["rejects"].items())[:2])
                            for q, x in r["prompts"].items())] for a, r in results.items()]))
    base = results.get("plain")
    if base and base["wall_s"]:
        print("wall / plain: " + ", ".join(f"{a} {r['wall_s'] / base['wall_s']:.2f}" for a, r in results.items()))
    write_results("compliance", args, {"documents": n, "prompts": prompts, "max_tokens": args.max_tokens,
                                       "arms": results})


if __name__ == "__main__":
    main()
