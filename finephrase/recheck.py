"""`finephrase gate DIR`: re-check a run's published rows with the current quality gate (the templates' current
`[check]` tables and thresholds) and print what would now be rejected, per prompt and reason. Nothing is
rewritten: it shows what tightening the gate would cost before you filter or rerun.

The copy and off-topic checks compare with the source documents, read again from the run's inputs (ids and
text); when the inputs cannot be read, or with --no-source, those two checks are skipped and it says so.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import orjson

from finephrase import datafiles
from finephrase.errors import UsageError
from finephrase.layout import MANIFEST



def _sources(cfg: dict, wanted: set[str]) -> dict[str, str] | None:
    """{source id: text} for the wanted ids, from the run's own inputs; None if they cannot be read."""
    from finephrase.pipeline.readers.resumable import ResumableReader

    try:
        reader = ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"],
                                 limit=cfg["limit"])
        out = {}
        for rank in range(int(cfg.get("tasks", 1))):
            for doc in reader.iter_documents(rank, int(cfg.get("tasks", 1))):
                if doc.id in wanted:
                    out[doc.id] = doc.text
        return out
    except Exception:
        return None


def recheck(root: Path, use_source: bool = True, examples: int = 2) -> dict:
    import pyarrow.parquet as pq

    from finephrase.gate import QualityGate
    from finephrase.prompts import load_prompt

    if not (root / MANIFEST).is_file():
        raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
    manifest = orjson.loads((root / MANIFEST).read_bytes())
    cfg = manifest["config"]
    names = list(cfg["prompts"])
    templates = {n: load_prompt(n) for n in names}
    tables = {n: [pq.read_table(f, columns=["source_id", "text", "finish_reason"]).to_pylist()
                  for f in datafiles.parquet_files(root / n)] for n in names}
    rows = {n: [r for t in ts for r in t] for n, ts in tables.items()}
    sources = _sources(cfg, {r["source_id"] for rs in rows.values() for r in rs}) if use_source else None
    gate = QualityGate()
    report = {"source_checks": sources is not None, "prompts": {}}
    for n in names:
        reasons, shown = Counter(), {}
        for r in rows[n]:
            src = sources.get(r["source_id"]) if sources else None
            reason = gate.check(r["text"] or "", r["finish_reason"], prompt=templates[n], source=src)
            if reason:
                reasons[reason] += 1
                shown.setdefault(reason, [])
                if len(shown[reason]) < examples:
                    shown[reason].append(" ".join((r["text"] or "").split())[:160])
        report["prompts"][n] = {"rows": len(rows[n]), "would_reject": sum(reasons.values()),
                                "reasons": dict(reasons.most_common()), "examples": shown}
    return report


def main(args) -> int:
    root = Path(args.run_dir)
    report = recheck(root, use_source=not args.no_source)
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{root}: published rows re-checked with the current gate (nothing is rewritten)")
    if not report["source_checks"]:
        print("  (copy and off-topic checks skipped: " + ("--no-source" if args.no_source else
                                                           "the run's inputs could not be read") + ")")
    for name, p in report["prompts"].items():
        keep = p["rows"] - p["would_reject"]
        share = f"{keep / p['rows']:.0%}" if p["rows"] else "-"
        print(f"  {name:<12} rows {p['rows']:>6}   would stay {keep:>6} ({share})   would be rejected "
              f"{p['would_reject']:>6}" + (f" ({', '.join(f'{k} {v}' for k, v in p['reasons'].items())})"
                                           if p["reasons"] else ""))
        for reason, texts in p["examples"].items():
            for t in texts:
                print(f"      {reason}: {t}")
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "gate", help="re-check a run's published rows with the current quality gate (read-only)",
        description="Re-check every published row of the run in DIR with the current quality gate (format checks "
        "from the templates' [check] tables, non-answer, copy, off-topic and language checks) and print, per "
        "prompt, how many rows would now be rejected and why, with examples. Nothing is rewritten. "
        "See docs/quality.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  finephrase gate output/sample")
    p.add_argument("run_dir", metavar="DIR", help="a run's output folder (or a dedup output)")
    p.add_argument("--no-source", action="store_true",
                   help="skip the checks that need the source documents (copy, off-topic): no input is read")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=main)
