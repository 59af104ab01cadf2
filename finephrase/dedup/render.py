"""The counts table `finephrase dedup` prints at the end (and on a finished output)."""

from __future__ import annotations

from pathlib import Path


def render_summary(result: dict, output: Path | str) -> str:
    """`result`: the manifest's `dedup` (DedupPlan.result()): input, kept, exact and near per prompt, and total."""
    prompts = list(result["input"])
    rows = [(p, result["input"][p], result["kept"][p], result["removed"][p].get("exact", 0),
             result["removed"][p].get("near", 0)) for p in prompts]
    rows.append(("total", *(sum(r[i] for r in rows) for i in range(1, 5))))
    w = max(6, *(len(r[0]) for r in rows))
    lines = [f"{'prompt':<{w}}  {'input':>9}  {'kept':>9}  {'exact':>9}  {'near':>9}"]
    lines += [f"{p:<{w}}  {a:>9,}  {k:>9,}  {e:>9,}  {n:>9,}" for p, a, k, e, n in rows]
    lines.append(f"kept rows: {output}/<prompt>/; removed rows: {output}/removed/<prompt>/ "
                 f"(columns dedup_reason, duplicate_of)")
    return "\n".join(lines)
