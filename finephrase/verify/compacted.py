"""`finephrase verify OUT` on a compacted folder: every planned shard is there with its rows and nothing else is,
and then the rows themselves: a compacted run against the original inputs (exactly one row or reject per
(document, prompt), the filtered documents nowhere else), a compacted dedup output against its dedup record.
The ids of a compacted run are compared bucket by bucket (finephrase/verify/buckets.py), in bounded memory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from finephrase.store.compacted import COMPACT_DIR, PLAN, done_shards
from finephrase.store.folders import derivation
from finephrase.store.layout import FILTERED, REJECTS


def verify_compacted(root: Path, manifest: dict):
    from finephrase.verify.dedup import verify_dedup
    from finephrase.verify.report import Report, examples

    report = verify_dedup(root) if derivation(manifest) else Report()
    plan_path = root / COMPACT_DIR / PLAN
    if not plan_path.is_file():
        report.problem(f"{root} has no {COMPACT_DIR}/{PLAN}: not a complete compaction")
        return report
    shards = orjson.loads(plan_path.read_bytes())["shards"]
    _check_shards(report, root, shards, done_shards(root), examples)
    if derivation(manifest):
        report.stats["compacted"] = True
        return report
    _check_rows(report, root, manifest["config"])
    return report


def _check_rows(report, root: Path, cfg: dict):
    """Exactly one row or reject per (input document, prompt) over the whole folder, bucket by bucket."""
    from finephrase.verify.buckets import IdBuckets, bucket_count
    from finephrase.verify.report import Tally, check_ids
    from finephrase.verify.run import make_reader
    from finephrase.verify.verdicts import VERIFY_DIR

    prompts, tasks = list(cfg["prompts"]), cfg["tasks"]
    places = [("<filtered>", root / FILTERED, "filtered"), *((p, root / p, f"rows/{p}") for p in prompts),
              *((p, root / REJECTS / p, f"rejects/{p}") for p in prompts)]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for _, d, _ in places for f in _files(d))
    counts = Counter()
    tally = Tally("task all", prompts)
    with IdBuckets(bucket_count(rows), where=root / VERIFY_DIR) as buckets:
        reader, batch = make_reader(cfg), []
        for rank in range(tasks):
            for doc in reader.iter_documents(rank, tasks, columns=[cfg["id_column"]]):
                batch.append(doc.id)
                if len(batch) >= 65_536:
                    buckets.add("expected", batch)
                    counts["input_documents"] += len(batch)
                    batch = []
        buckets.add("expected", batch)
        counts["input_documents"] += len(batch)
        for key, d, counted in places:
            for path in _files(d):
                for ids in _column_batches(path):
                    buckets.add(key, ids)
                    counts[counted] += len(ids)
        for b in buckets.buckets(["expected", "<filtered>", *prompts]):
            check_ids(tally, b.pop("expected"), b)
    for line in tally.lines():
        report.problem(line)
    report.stats = {"kind": "run", "compacted": True, "prompts": prompts, "tasks": tasks,
                    "input_documents": counts["input_documents"], "filtered": counts["filtered"],
                    **{f"rows/{p}": counts[f"rows/{p}"] for p in prompts},
                    **{f"rejects/{p}": counts[f"rejects/{p}"] for p in prompts}}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []


def _column_batches(path: Path):
    from finephrase.verify.buckets import column_batches

    return column_batches(path, "source_id")


def _check_shards(report, root: Path, shards: list[dict], done: dict, examples):
    planned = {s["path"] for s in shards}
    missing = [s["path"] for s in shards if not (root / s["path"]).is_file()]
    if missing:
        report.problem(f"{len(missing)} planned shards are missing (an unfinished compaction: rerun its `finephrase "
                       f"compact` command): {examples(missing)}")
    wrong = [s["path"] for s in shards if s["path"] in done and (root / s["path"]).is_file()
             and pq.ParquetFile(root / s["path"]).metadata.num_rows != done[s["path"]]["rows"]]
    if wrong:
        report.problem(f"{len(wrong)} shards do not hold the rows they were written with: {examples(wrong)}")
    folders = {s["folder"] for s in shards}
    extra = [p.relative_to(root).as_posix() for f in folders for p in (root / f).rglob("*.parquet")
             if p.relative_to(root).as_posix() not in planned and not p.name.startswith(".")]
    if extra:
        report.problem(f"{len(extra)} parquet files that no shard of the plan is: {examples(extra)}")
