"""`finephrase verify OUT` on a compacted folder: every planned shard is there with its rows and nothing else is,
and then the rows themselves: a compacted run against the original inputs (exactly one row or reject per
(document, prompt), the filtered documents nowhere else), a compacted dedup output against its dedup record."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from finephrase.compact.core import COMPACT_DIR, PLAN, done_shards
from finephrase.layout import FILTERED, REJECTS


def verify_compacted(root: Path, manifest: dict):
    from finephrase.verify import Report, _check_task, _examples, verify_dedup

    report = verify_dedup(root) if "dedup" in manifest else Report()
    plan_path = root / COMPACT_DIR / PLAN
    if not plan_path.is_file():
        report.problem(f"{root} has no {COMPACT_DIR}/{PLAN}: not a complete compaction")
        return report
    shards = orjson.loads(plan_path.read_bytes())["shards"]
    _check_shards(report, root, shards, done_shards(root), _examples)
    if "dedup" in manifest:
        report.stats["compacted"] = True
        return report
    cfg = manifest["config"]
    prompts, tasks = list(cfg["prompts"]), cfg["tasks"]
    from finephrase.pipeline.readers.resumable import ResumableReader

    reader = ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"],
                             limit=cfg["limit"])
    expected = Counter()
    for rank in range(tasks):
        for doc in reader.iter_documents(rank, tasks, columns=[cfg["id_column"]]):
            expected[doc.id] += 1
    found = {"<filtered>": _source_ids(root / FILTERED)}
    rejects = {}
    for p in prompts:
        rejects[p] = _source_ids(root / REJECTS / p)
        found[p] = _source_ids(root / p) + rejects[p]
    _check_task(report, "all", prompts, expected, found)
    report.stats = {"kind": "run", "compacted": True, "prompts": prompts, "tasks": tasks,
                    "input_documents": expected.total(), "filtered": found["<filtered>"].total(),
                    **{f"rows/{p}": found[p].total() - rejects[p].total() for p in prompts},
                    **{f"rejects/{p}": rejects[p].total() for p in prompts}}
    return report


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


def _source_ids(folder: Path) -> Counter:
    ids = Counter()
    if folder.is_dir():
        for path in sorted(folder.rglob("*.parquet")):
            if not path.name.startswith("."):
                ids.update(pq.read_table(path, columns=["source_id"]).column("source_id").to_pylist())
    return ids
