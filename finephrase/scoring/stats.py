"""Summaries of quality scores that merge: each bucket of rows gives a partial summary (counts, sums, extremes
and a sample of values), partials add up, and the merged one gives means, quantiles and histograms. What
`finephrase score` writes into OUT/scores.json and what the card and the report read."""

from __future__ import annotations

import math

import numpy as np

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def partial(values, sample_every: int = 1) -> dict:
    """The partial summary of some scores (NaN and None are left out); `sample_every`: keep every k-th value."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return {"n": 0, "sum": 0.0, "min": None, "max": None, "sample": []}
    return {"n": int(len(v)), "sum": float(v.sum()), "min": float(v.min()), "max": float(v.max()),
            "sample": [round(float(x), 6) for x in v[::max(1, sample_every)]]}


def merge(parts: list[dict]) -> dict:
    """Partial summaries added up."""
    parts = [p for p in parts if p and p.get("n")]
    if not parts:
        return {"n": 0, "sum": 0.0, "min": None, "max": None, "sample": []}
    return {"n": sum(p["n"] for p in parts), "sum": sum(p["sum"] for p in parts),
            "min": min(p["min"] for p in parts), "max": max(p["max"] for p in parts),
            "sample": [x for p in parts for x in p["sample"]]}


def describe(summary: dict, bins: int = 20, span: tuple[float, float] | None = None) -> dict:
    """n, mean, min, max, quantiles (from the sample) and a histogram of the sample over `span` (default: its own
    min to max; give two summaries the same span to compare their histograms)."""
    n = summary.get("n") or 0
    if not n:
        return {"n": 0, "mean": None, "min": None, "max": None, "quantiles": {}, "histogram": None}
    sample = np.asarray(summary["sample"], dtype=np.float64)
    qs = {f"p{round(q * 100)}": float(np.quantile(sample, q)) for q in QUANTILES} if len(sample) else {}
    lo, hi = span or (summary["min"], summary["max"])
    hi = hi if hi > lo else lo + 1e-9
    counts, edges = np.histogram(sample, bins=bins, range=(lo, hi)) if len(sample) else ([], [])
    return {"n": n, "mean": summary["sum"] / n, "min": lo, "max": summary["max"], "quantiles": qs,
            "sample_size": int(len(sample)),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


def shared_span(summaries: list[dict]) -> tuple[float, float] | None:
    """The range that holds every one of these summaries' values (None when none has any)."""
    have = [s for s in summaries if s.get("n")]
    return (min(s["min"] for s in have), max(s["max"] for s in have)) if have else None


ROWS_PER_BUCKET = 2_000_000  # `finephrase score` joins a bucket's rows and sources in memory: a few hundred MB


def bucket_count(rows: int) -> int:
    """Hash buckets of source_id for `rows` rows (or source documents): about ROWS_PER_BUCKET each."""
    return max(1, -(-rows // ROWS_PER_BUCKET))


def score_text(v) -> str:
    """A score as the summaries print it: 0.123, or - when there is none."""
    return "-" if v is None else f"{v:.3f}"


def change_text(v: float) -> str:
    """A mean change as the summaries print it: +0.123 (never -0.000)."""
    return f"{round(v, 3) + 0.0:+.3f}"


def sample_every(total: int, target: int = 20_000) -> int:
    """Keep every k-th value so that about `target` of `total` are sampled."""
    return max(1, math.ceil(total / target)) if total else 1


SCORES_FILE = "scores.json"  # `finephrase score`'s summary in its output folder, written last


def read_scores(folder) -> dict:
    """The summary of a `finephrase score` output folder; a one-line UsageError for anything else."""
    from pathlib import Path

    import orjson

    from finephrase.errors import UsageError

    path = Path(folder) / SCORES_FILE
    if not path.is_file():
        raise UsageError(f"{folder} has no {SCORES_FILE}: not a finished `finephrase score` output (rerun its command)")
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise UsageError(f"{path} cannot be read: {e}") from None
