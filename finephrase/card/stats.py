"""The card's numbers: counts and token totals from DIR's parquet files, and the compute (task time, GPU-hours)
from the progress snapshots."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from finephrase.card.data import extras_root, prompt_names
from finephrase.store import datafiles
from finephrase.store.folders import derivation, source_run


def _col_sum(t, name) -> int:
    import pyarrow.compute as pc

    if name not in t.column_names:
        return 0
    v = pc.sum(t.column(name)).as_py()
    return int(v or 0)


def _prompt_stats(root: Path, p: str, manifest: dict, extras: Path | None, listed, languages: Counter) -> dict:
    """One prompt's counts: its rows and tokens, its rejects (from `extras`, else the manifest) and removed rows;
    the languages of its rows are added to `languages`."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    s = {"files": 0, "bytes": 0, "rows": 0, "input_tokens": 0, "output_tokens": 0, "rejects": Counter(),
         "reject_files": 0, "reject_bytes": 0, "reject_output_tokens": 0, "removed": 0, "removed_files": 0,
         "removed_before": 0,
         "removed_bytes": 0}
    for f in listed(root / p):
        t = pq.read_table(f, columns=["input_tokens", "output_tokens", "language"])
        s["files"] += 1
        s["bytes"] += f.stat().st_size
        s["rows"] += t.num_rows
        s["input_tokens"] += _col_sum(t, "input_tokens")
        s["output_tokens"] += _col_sum(t, "output_tokens")
        languages.update({v["values"]: v["counts"] for v in pc.value_counts(t.column("language")).to_pylist()
                          if v["values"]})  # counted in Arrow: no Python string per row
    for f in listed(extras / "rejects" / p) if extras else []:
        t = pq.read_table(f, columns=["reject_reason", "output_tokens"])
        if extras == root:
            s["reject_files"] += 1
            s["reject_bytes"] += f.stat().st_size
        s["rejects"].update(t.column("reject_reason").to_pylist())
        s["reject_output_tokens"] += _col_sum(t, "output_tokens")
    if extras is None:
        s["rejects"].update({k.split("/", 1)[1]: v for k, v in (manifest.get("counts") or {}).get("rejects",
                                                                                                  {}).items()
                             if k.startswith(f"{p}/")})
        s["reject_output_tokens"] = None  # not recorded per prompt
    removed = listed(root / "removed" / p)
    s["removed"] = datafiles.rows_in(removed)
    s["removed_files"] = len(removed)
    s["removed_bytes"] = sum(f.stat().st_size for f in removed)
    s["rejects"] = dict(sorted(s["rejects"].items()))
    return s


def removed_upstream(manifest: dict) -> dict[str, int]:
    """Rows per prompt that a dedup removed before this folder was decontaminated: in the dedup output, not here
    (its manifest's record still counts them)."""
    dedup = manifest.get("dedup")
    if "decontamination" not in manifest or not isinstance(dedup, dict):
        return {}
    out = {}
    for p, r in (dedup.get("removed") or {}).items():
        out[p] = sum(v for v in r.values() if isinstance(v, int)) if isinstance(r, dict) else int(r or 0)
    return out


def collect_stats(root: Path, manifest: dict) -> dict:
    """Counts and token totals, from the parquet files (a dedup output's rejects and filtered documents: from its
    source run's files, or, with the source gone, from the manifest's counts)."""
    import pyarrow.parquet as pq

    extras, extras_from = extras_root(root, manifest)
    languages = Counter()
    data_paths = {}  # folder inside root -> its `data_files` spec for the card's configs (footers read once)

    def listed(d: Path) -> list[Path]:  # as row_files, noting each folder's spec on the way
        full, empty = datafiles.split_empty(datafiles.parquet_files(d))
        if d.is_relative_to(root):
            rel = d.relative_to(root).as_posix()
            data_paths[rel] = datafiles.config_paths(rel, full, empty)
        return full

    per = {p: _prompt_stats(root, p, manifest, extras, listed, languages) for p in prompt_names(manifest)}
    for p, n in removed_upstream(manifest).items():
        if p in per:
            per[p]["removed_before"] = n
    filtered = Counter()
    ffiles = listed(extras / "filtered") if extras else []
    for f in ffiles:
        filtered.update(pq.read_table(f, columns=["filter_reason"]).column("filter_reason").to_pylist())
    if extras is None:
        filtered.update((manifest.get("counts") or {}).get("filtered") or {})
    here = extras == root
    return {"data_paths": data_paths, "prompts": per, "filtered": dict(sorted(filtered.items())),
            "filtered_files": len(ffiles) if here else 0,
            "filtered_bytes": sum(f.stat().st_size for f in ffiles) if here else 0,
            "languages": dict(languages.most_common()), "extras_from": extras_from,
            "extras_root": str(extras) if extras else None}


def compute_stats(root: Path, manifest: dict) -> dict | None:
    """Task time and GPU-hours from the progress snapshots (as `finephrase status` computes them); for a dedup
    output, from its source run when that folder is still there. None when nothing is recorded."""
    from finephrase.monitor import status

    src = root
    if derivation(manifest) and source_run(manifest) and not (root / ".ledger").is_dir():
        src = Path(source_run(manifest))
    try:
        rep = status.collect(src, exact_totals=False)
    except Exception:
        return None
    t = rep["total"]
    if not t.get("task_s"):
        return None
    gpus = sorted({g for x in rep["per_task"] for g in x.get("gpus_per_task", [])})
    return {"task_s": t["task_s"], "wall_s": t["wall_s"], "gpu_hours": t["gpu_hours"], "gpus_per_task": gpus,
            "backend": rep.get("backend"), "tasks": rep.get("tasks")}
