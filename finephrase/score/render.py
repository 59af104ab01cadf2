"""The summary `finephrase score` prints: per prompt and classifier, the rows' mean score and quantiles, and with
--sources the source documents' mean and the mean change (rephrased minus source)."""

from __future__ import annotations


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def score_line(p: str, name: str, s: dict) -> str:
    rows = s["rows"]
    q = rows.get("quantiles") or {}
    line = (f"{p} {name}: {rows['n']:,} rows, mean {_f(rows['mean'])} (p10 {_f(q.get('p10'))}, p50 "
            f"{_f(q.get('p50'))}, p90 {_f(q.get('p90'))})")
    if "delta" in s:
        line += (f"; their sources {_f(s['sources']['mean'])} ({s['sources']['n']:,} scored): change "
                 f"{round(s['delta']['mean'], 3) + 0.0:+.3f}" if s["delta"]["n"] else "; no source scored")
    return line


def render_summary(result: dict, output) -> str:
    lines = [score_line(p, name, s) for p, per in result["prompts"].items() for name, s in per.items()]
    lines.append(f"{output}: <prompt>/*.parquet (id, source_id, score_<name>"
                 + (", score_<name>_source" if result.get("with_sources") else "")
                 + f") and scores.json; the card shows them with `--scores {output}`")
    return "\n".join(lines)
