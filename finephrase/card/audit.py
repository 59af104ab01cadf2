"""What the card says about what was checked in the rows: their overlap with benchmarks (`## Decontamination`,
from the manifest's `decontamination` record) and their quality scores (`## Quality scores`, from a
`finephrase score` folder)."""

from __future__ import annotations

from pathlib import Path

from finephrase.card.privacy import public_path
from finephrase.scoring.stats import change_text
from finephrase.scoring.stats import score_text as _f


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _benchmarks_table(record: dict) -> list[str]:
    n = record.get("n")
    L = ["| benchmark | layout | items | n-grams indexed | left out of the index |", "|---|---|---:|---:|---|"]
    for b in record.get("benchmarks") or []:
        L.append(f"| `{b['name']}` | {b.get('layout')} | {_n(b['items'])} | {_n(b['ngrams'])} | "
                 f"{_n(b['short_items'])} items under {n} words, {_n(b['degenerate'])} degenerate and "
                 f"{_n(b['boilerplate'])} boilerplate n-grams |")
    return L


def _rows_table(record: dict, prompts: list[str]) -> list[str]:
    audit = bool(record.get("audit_only"))
    names = [b["name"] for b in record.get("benchmarks") or []]
    found = record.get("flagged" if audit else "removed") or {}
    sourced = record.get("source_overlap") or {}
    what = "flagged" if audit else "removed"
    L = ["| prompt | rows checked | " + " | ".join(f"{what}: `{b}`" for b in names) + " |",
         "|---|---:|" + "---:|" * len(names)]
    for p in prompts:
        cells = []
        for b in names:
            k = f"contaminated:{b}"
            n = (found.get(p) or {}).get(k, 0)
            had = (sourced.get(p) or {}).get(k, 0)
            cells.append(_n(n) + (f" ({_n(had)} in the source page too)" if record.get("check_sources") and n else ""))
        L.append(f"| `{p}` | {_n((record.get('input') or {}).get(p, 0))} | " + " | ".join(cells) + " |")
    return L


def decontamination_section(root: Path, record: dict | None, prompts: list[str]) -> str:
    """The whole `## Decontamination` section with the blank line after it (empty when the rows were not checked):
    the benchmarks, the n-gram length, what each prompt's rows overlapped, and whether the source pages had it."""
    if not record:
        return ""
    audit = bool(record.get("audit_only"))
    source = public_path(record.get("source") or "not recorded", root)
    L = ["## Decontamination", "",
         f"Every row was checked for {record.get('n')}-word n-grams of the benchmarks below (text normalized: ASCII "
         f"punctuation as spaces, lower case; n-grams with fewer than half their words distinct, and n-grams more "
         f"than {record.get('boilerplate_share', 0):.0%} of a benchmark's items share, are not indexed), by "
         f"`finephrase decontaminate` on `{source}`. "
         + ("Audit only: no row was removed; the overlapping rows are listed in `flagged/<prompt>/`."
            if audit else "Rows with an overlap were removed (they are in `removed/<prompt>/` with the n-gram "
            "matched)."), ""]
    L += _benchmarks_table(record)
    L += [""] + _rows_table(record, prompts)
    if record.get("check_sources"):
        L += ["", "\"in the source page too\": the source document the row was written from had a benchmark n-gram "
              "itself, so the overlap came from the web page, not from the model."]
    return "\n".join(L) + "\n\n"


def _classifier(c: dict, root: Path) -> str:
    label = f", label `{c['label']}`" if c.get("label") is not None else ""
    what = "fastText" if c.get("kind") == "fasttext" else "Hugging Face"
    return f"`{c['name']}` ({what} `{public_path(str(c.get('model')), root)}`{label})"


def quality_section(root: Path, scores: dict | None, prompts: list[str]) -> str:
    """The whole `## Quality scores` section with the blank line after it (empty without `--scores`): per prompt and
    classifier, the rows' mean and quantiles, their source documents' mean and the mean change."""
    if not scores:
        return ""
    source = public_path(scores.get("source") or "not recorded", root)
    L = ["## Quality scores", "",
         f"Scored by `finephrase score` on `{source}` with " + ", ".join(_classifier(c, root) for c in
                                                                        scores.get("classifiers") or [])
         + (". The change is each row's score minus its source document's, averaged over the rows whose source was "
            "scored; the quantiles are of the rows' scores (from a sample of up to about 20,000 per prompt)."
            if scores.get("with_sources") else ". The source documents were not scored (`--sources`)."), "",
         "| prompt | classifier | rows | mean (source) | mean (rephrased) | mean change | rephrased p10 / p50 / p90 |",
         "|---|---|---:|---:|---:|---:|---|"]
    for p in prompts:
        for name, s in ((scores.get("prompts") or {}).get(p) or {}).items():
            rows, q = s["rows"], s["rows"].get("quantiles") or {}
            src, delta = s.get("sources") or {}, s.get("delta") or {}
            change = change_text(delta["mean"]) if delta.get("n") else "-"
            L.append(f"| `{p}` | `{name}` | {_n(rows['n'])} | {_f(src.get('mean'))} | {_f(rows['mean'])} | {change} | "
                     f"{_f(q.get('p10'))} / {_f(q.get('p50'))} / {_f(q.get('p90'))} |")
    return "\n".join(L) + "\n\n"
