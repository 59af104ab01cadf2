"""The summary `finephrase decontaminate` prints: the index (benchmarks, n-grams, what was left out of it) and,
per prompt, rows in, kept, removed (or flagged) per benchmark and how many of those the source page had too."""

from __future__ import annotations


def _per_benchmark(counts: dict) -> str:
    return ", ".join(f"{k.split(':', 1)[-1]} {v:,}" for k, v in sorted(counts.items())) or "none"


def render_summary(record: dict, output) -> str:
    audit = record.get("audit_only")
    lines = [f"index: {record.get('n')}-word n-grams of " + "; ".join(
        f"{b['name']} ({b['items']:,} items, {b['ngrams']:,} n-grams; left out: {b['short_items']:,} items under "
        f"{record.get('n')} words, {b['degenerate']:,} degenerate, {b['boilerplate']:,} boilerplate)"
        for b in record.get("benchmarks") or [])]
    aside = record.get("flagged" if audit else "removed") or {}
    sourced = record.get("source_overlap") or {}
    for p, n in (record.get("input") or {}).items():
        found = sum((aside.get(p) or {}).values())
        had = sum((sourced.get(p) or {}).values())
        src = f"; the source page had an overlap for {had:,} of them" if record.get("check_sources") else ""
        lines.append(f"{p}: {n:,} rows, {record['kept'].get(p, 0):,} kept, {found:,} "
                     f"{'flagged' if audit else 'removed'} ({_per_benchmark(aside.get(p) or {})}){src}")
    where = "flagged/<prompt>/ (copies; every row is kept)" if audit else "removed/<prompt>/"
    lines.append(f"{output}: overlapping rows in {where} with decontam_reason and matched_ngram; "
                 f"`finephrase verify {output}` checks it")
    return "\n".join(lines)
