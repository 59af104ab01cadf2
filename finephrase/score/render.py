"""The summary `finephrase score` prints: per prompt and classifier, the rows' mean score and quantiles, and with
--sources the source documents' mean and the mean change (rephrased minus source)."""

from __future__ import annotations

from finephrase.scoring.stats import change_text
from finephrase.scoring.stats import score_text as _f


def score_line(p: str, name: str, s: dict) -> str:
    rows = s["rows"]
    q = rows.get("quantiles") or {}
    line = (f"{p} {name}: {rows['n']:,} rows, mean {_f(rows['mean'])} (p10 {_f(q.get('p10'))}, p50 "
            f"{_f(q.get('p50'))}, p90 {_f(q.get('p90'))})")
    if "delta" in s:
        line += (f"; their sources {_f(s['sources']['mean'])} ({s['sources']['n']:,} scored): change "
                 f"{change_text(s['delta']['mean'])}" if s["delta"]["n"] else "; no source scored")
    return line


def render_summary(result: dict, output) -> str:
    lines = [score_line(p, name, s) for p, per in result["prompts"].items() for name, s in per.items()]
    lines.append(f"{output}: <prompt>/*.parquet (id, source_id, score_<name>"
                 + (", score_<name>_source" if result.get("with_sources") else "")
                 + f") and scores.json; the card shows them with `--scores {output}`")
    return "\n".join(lines)
