"""`finephrase verify` on an output derived from another folder's rows: a dedup output (`finephrase dedup RUN
--output DIR`, its manifest's `dedup` record) or a decontaminated one (`finephrase decontaminate`, its
`decontamination` record): every row id is in exactly one place, DIR/<prompt>/ (kept) or DIR/removed/<prompt>/;
the kept and removed counts (per reason) are the recorded ones and add up to the rows that went in; and, while the
source folder is still there, the ids are exactly its rows' ids, prompt by prompt. A decontamination audit's
flagged copies (DIR/flagged/<prompt>/) must be kept rows, counted as recorded. Ids are compared bucket by bucket
(buckets.py): memory is bounded by a bucket, not by the output.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from finephrase.store.datafiles import parquet_files
from finephrase.store.folders import derivation, load_manifest
from finephrase.store.layout import FLAGGED, MANIFEST, REMOVED
from finephrase.verify.buckets import IdBuckets, bucket_count, column_batches
from finephrase.verify.report import Kind, Report
from finephrase.verify.verdicts import VERIFY_DIR


def _removed_record(value) -> dict:
    """A prompt's `dedup.removed` entry as {reason: rows} (older manifests: one number)."""
    return dict(value) if isinstance(value, dict) else {"exact": value or 0}


def _rows(folders: list[Path | None]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for f in folders if f is not None for p in parquet_files(f))


REASON_COLUMNS = {"dedup": "dedup_reason", "decontamination": "decontam_reason"}


def _fill(buckets: IdBuckets, stream: str, folder: Path | None, reasons: Counter | None = None,
          reason_column: str = "dedup_reason") -> int:
    """Put the row ids of `folder`'s parquet files into `stream`; count `reason_column` into `reasons`. The rows."""
    n = 0
    for path in parquet_files(folder) if folder is not None else []:
        for ids in column_batches(path, "id"):
            buckets.add(stream, ids)
            n += len(ids)
        if reasons is not None:
            for values in column_batches(path, reason_column):
                reasons.update(values)
    return n


def _compare(buckets: IdBuckets, checked: bool) -> dict[str, Kind]:
    """Bucket by bucket: ids more than once among kept and removed; source ids in neither; ids not in the source;
    flagged ids that are not kept rows."""
    kinds = {k: Kind() for k in ("duplicated", "missing", "unknown", "stray flagged")}
    for b in buckets.buckets(["kept", "removed", "source", "flagged"]):
        both = b["kept"] + b["removed"]
        kinds["duplicated"].add(*_n([i for i, n in both.items() if n > 1]))
        kinds["stray flagged"].add(*_n([i for i in b["flagged"] if i not in b["kept"]]))
        if checked:
            kinds["missing"].add(*_n([i for i in b["source"] if i not in both]))
            kinds["unknown"].add(*_n([i for i in both if i not in b["source"]]))
    return kinds


def _n(ids: list) -> tuple:
    return len(ids), ids, None


def _check_dedup_prompt(report: Report, root: Path, p: str, dd: dict, source_dir: Path | None,
                        key: str = "dedup") -> dict:
    """Check one prompt of a derived output (problems go to `report`); returns its counts."""
    folders = [root / p, root / REMOVED / p, source_dir / p if source_dir else None, root / FLAGGED / p]
    reasons, flagged_reasons, column = Counter(), Counter(), REASON_COLUMNS[key]
    with IdBuckets(bucket_count(_rows(folders)), where=root / VERIFY_DIR) as buckets:
        kept = _fill(buckets, "kept", folders[0])
        removed = _fill(buckets, "removed", folders[1], reasons, column)
        _fill(buckets, "source", folders[2])
        _fill(buckets, "flagged", folders[3], flagged_reasons, column)
        kinds = _compare(buckets, source_dir is not None)
    _check_reasons(report, p, flagged_reasons, (dd.get("flagged") or {}).get(p) or {}, FLAGGED, key)
    if (k := kinds["stray flagged"]).n:
        report.problem(f"prompt {p}: {k.n} rows in {FLAGGED}/{p}/ are not rows of {p}/: {k.examples()}")
    if (k := kinds["duplicated"]).n:
        report.problem(f"prompt {p}: {k.n} row ids more than once in {p}/ and removed/{p}/: {k.examples()}")
    want_kept = (dd.get("kept") or {}).get(p, 0)
    if kept != want_kept:
        report.problem(f"prompt {p}: {kept} rows kept in {p}/ but the manifest's {key}.kept says {want_kept}")
    _check_reasons(report, p, reasons, _removed_record((dd.get("removed") or {}).get(p)), REMOVED, key)
    rows_in = (dd.get("input") or {}).get(p, 0)
    if kept + removed != rows_in:
        report.problem(f"prompt {p}: {kept} kept + {removed} removed rows, but {rows_in} went in "
                       f"(the manifest's {key}.input)")
    if (k := kinds["missing"]).n:
        report.problem(f"prompt {p}: {k.n} rows of the source run are neither kept nor removed: {k.examples()}")
    if (k := kinds["unknown"]).n:
        report.problem(f"prompt {p}: {k.n} row ids not in the source run: {k.examples()}")
    return {"input": rows_in, "kept": kept, "removed": removed}


def _check_reasons(report: Report, p: str, got: Counter, want: dict, folder: str, key: str) -> None:
    want = {r: n for r, n in want.items() if isinstance(n, int)}
    for reason in sorted(set(want) | set(got)):
        if got[reason] != want.get(reason, 0):
            report.problem(f"prompt {p}: {got[reason]} rows {folder} as {reason} in {folder}/{p}/ but the "
                           f"manifest's {key}.{folder} says {want.get(reason, 0)}")


def dedup_source(root: Path, manifest: dict) -> Path | None:
    """The source folder of a derived output (a dedup's run, a decontamination's run or dedup output), while it
    is still there."""
    source = (derivation(manifest) or ("", {}))[1].get("source")
    return Path(source) if source and (Path(source) / MANIFEST).is_file() else None


def verify_dedup(root: Path) -> Report:
    """Check a derived output (dedup or decontaminated) against its manifest's record, and its source folder while
    that is still there."""
    manifest = load_manifest(root)
    key, dd = derivation(manifest) or ("dedup", {})
    kind = "dedup" if key == "dedup" else "decontaminated"
    prompts = list((manifest.get("config") or {}).get("prompts") or dd.get("kept") or {})
    source_dir = dedup_source(root, manifest)
    report = Report(kind=kind)
    stats: dict = {"kind": kind, "source": dd.get("source"), "source_checked": source_dir is not None,
                   "prompts": prompts, "scope": dd.get("scope")}
    if key == "decontamination":
        stats["audit_only"] = bool(dd.get("audit_only"))
    for p in prompts:
        for name, n in _check_dedup_prompt(report, root, p, dd, source_dir, key).items():
            stats[f"{name}/{p}"] = n
    stats["input_rows"] = sum(stats[f"input/{p}"] for p in prompts)
    report.stats = stats
    return report
