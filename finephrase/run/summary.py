"""The lines a rephrasing run ends with: what it read and generated, and per prompt its yield (published rows per
(document, prompt)), its rejects and the attempts regeneration took; a yield under LOW_YIELD ends with what to
try for the reasons that dominate."""

from __future__ import annotations

from pathlib import Path

from finephrase.monitor.progress import prefill_line
from finephrase.quality.regenerate import prompt_yield
from finephrase.serving.truncation import truncation_text

LOW_YIELD = 0.5  # under this share published, the summary says what to try
# per reject reason (its part before ":"), what usually helps
ADVICE = {
    "length": "the model loops until --max-tokens: a higher --max-attempts or --max-tokens, or a larger model",
    "format": "the model misses the shape: a higher --max-attempts, or a larger model",
    "repetition": "the model repeats itself: --max-attempts (each attempt samples hotter) or a larger model",
    "non_answer": "the model talks about the document instead of rewriting it: a larger model (--model)",
    "off_topic": "the output is not about the document: a larger model (--model)",
    "language": "the output is in another language than the source: a larger model (--model)",
    "copy": "the model copies the document: a larger model (--model)",
    "context_overflow": "documents do not fit: lower --max-tokens or raise --context-length",
}


def summary(out: Path, counts: dict, elapsed: float, prompts: list[str], constrained: bool = False) -> str:
    lines = [f"done in {elapsed:.0f}s: {counts.get('documents', 0)} documents read, "
             f"{counts.get('generated_tokens', 0)} tokens generated ({counts.get('output_tokens', 0)} in published "
             f"rows)"]
    if counts.get("prompt_tokens"):
        lines.append(f"prefill: {prefill_line(counts['prompt_tokens'], counts.get('cached_tokens', 0))}")
    if truncated := truncation_text(counts):  # documents cut to fit the context
        lines.append(f"truncated: {truncated}")
    if retries := sum(counts.get("retries", {}).values()):
        share = counts.get("retry_tokens", 0) / max(1, counts.get("generated_tokens", 0))
        lines.append(f"regenerated: {retries} attempts discarded for a new one ({counts.get('retry_tokens', 0)} "
                     f"tokens, {share:.0%} of those generated)")
    low = []
    for p in prompts:
        line, rate, rejects = prompt_line(p, counts)
        lines.append(line)
        if rate is not None and rate < LOW_YIELD:
            low.append((p, rate, rejects))
    if counts.get("filtered"):
        lines.append("  filtered: " + ", ".join(f"{k} {v}" for k, v in counts["filtered"].items()))
    lines += [advice(p, rate, rejects, constrained) for p, rate, rejects in low]
    lines.append(f"output: {out}/<prompt>/*.parquet, rejects: {out}/rejects/, manifest: {out}/manifest.json")
    shown = next((p for p in prompts if counts.get("rows", {}).get(p)), None)
    folder = f"{out}/{shown}" if shown else f"{out}/rejects/{prompts[0]}"
    lines.append(f"look:   python -c \"import pyarrow.parquet as pq; "
                 f"print(pq.read_table('{folder}').to_pandas()[['source_id','text']].head())\"")
    lines.append(f"check:  finephrase verify {out}")
    return "\n".join(lines)


def prompt_line(p: str, counts: dict) -> tuple[str, float | None, dict]:
    """One prompt's line: rows and their share of its (document, prompt) pairs, attempts per row, rejects."""
    rej = {k.split("/", 1)[1]: v for k, v in counts.get("rejects", {}).items() if k.startswith(f"{p}/")}
    rej_s = ", ".join(f"{k} {v}" for k, v in sorted(rej.items(), key=lambda kv: -kv[1])) or "none"
    rows, pairs, attempts = prompt_yield(counts, p)
    rate = rows / pairs if pairs else None
    share = f"{rate:4.0%}" if rate is not None else "   -"
    per_row = f", {attempts:.2f} attempts/row" if attempts and counts.get("retries") else ""
    return (f"  {p:<12} rows {rows:>6} ({share} published{per_row})   rejects {sum(rej.values()):>5} ({rej_s})",
            rate, rej)


def advice(prompt: str, rate: float, rejects: dict, constrained: bool = False) -> str:
    """One line for a prompt that published under LOW_YIELD: its main reject reason and what usually helps
    (for a loop or a missed shape, also constrained generation when it was off)."""
    by_kind: dict[str, int] = {}
    for reason, n in rejects.items():
        by_kind[reason.split(":", 1)[0]] = by_kind.get(reason.split(":", 1)[0], 0) + n
    kind = max(by_kind, key=by_kind.get)
    hint = ADVICE.get(kind, "see docs/quality.md")
    if kind in ("length", "format") and not constrained:
        hint += "; or --constrain-format (the template's grammar, where it has one)"
    return (f"low yield: {prompt} published {rate:.0%}; most rejects are {kind} ({by_kind[kind]} of "
            f"{sum(by_kind.values())}): {hint}")
