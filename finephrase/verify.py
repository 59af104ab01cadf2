"""`finephrase verify DIR`: prove that every (input document, prompt) has exactly one row in outputs or rejects.

The inputs are read again (ids only) with the run's own reader, sharding and limit, task by task; documents
recorded under DIR/filtered/ are expected nowhere else. Everything found on disk is compared with that:
missing ids, duplicated ids, ids that are not in the input, files that no ledger line commits, and tasks that
have not finished are all reported; any of them makes the exit code non-zero.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from finephrase.errors import UsageError
from finephrase.ledger import all_ledgers
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.run import MANIFEST, input_listing

_FILE = re.compile(r"^(\d{5})_(\d{6})\.parquet$")


@dataclass
class Report:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def problem(self, msg: str):
        self.ok = False
        self.problems.append(msg)


def _ids(path: Path) -> list[str]:
    return pq.read_table(path, columns=["source_id"]).column("source_id").to_pylist()


def _examples(ids) -> str:
    ids = sorted(ids)
    more = f" (+{len(ids) - 5} more)" if len(ids) > 5 else ""
    return ", ".join(ids[:5]) + more


def verify(output_dir: str | Path) -> Report:
    root = Path(output_dir)
    if not (root / MANIFEST).exists():
        raise UsageError(f"{root} is not a finephrase run (no {MANIFEST})")
    manifest = orjson.loads((root / MANIFEST).read_bytes())
    cfg = manifest["config"]
    prompts = list(cfg["prompts"])
    tasks = cfg["tasks"]
    report = Report()
    reader = ResumableReader(cfg["inputs"], text_column=cfg["text_column"], id_column=cfg["id_column"],
                             limit=cfg["limit"])
    now = input_listing(reader.files)
    if now != cfg["input_files"]:
        report.problem(f"the inputs changed since the run ({now['count']} files now, {cfg['input_files']['count']} "
                       f"then, or their names or sizes differ): the check below is against today's inputs")

    ledgers = all_ledgers(root)
    committed = {f for s in ledgers.values() for e in s.entries for f in e.get("files", [])}
    # what is on disk, by rank
    found: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    places = {p: [root / p, root / "rejects" / p] for p in prompts}
    places["<filtered>"] = [root / "filtered"]
    leftovers = []
    reject_rows = Counter()
    for key, dirs in places.items():
        for d in dirs:
            if not d.is_dir():
                continue
            for path in sorted(d.iterdir()):
                m = _FILE.match(path.name)
                if not m:
                    continue
                rel = path.relative_to(root).as_posix()
                if rel not in committed:
                    leftovers.append(rel)
                    continue
                ids = _ids(path)
                found[int(m.group(1))][key].update(ids)
                if d.parent.name == "rejects":
                    reject_rows[key] += len(ids)
    if leftovers:
        report.problem(f"{len(leftovers)} files not committed by any ledger line (an interrupted run; rerun the "
                       f"same command to clean up and resume): {_examples(leftovers)}")

    totals = Counter()
    for rank in range(tasks):
        state = ledgers.get(rank)
        if state is None or not state.finished:
            done = sum(e["docs"] for e in state.entries) if state else 0
            report.problem(f"task {rank} has not finished ({done} documents committed): rerun the same command")
        expected = Counter()
        for doc in reader.iter_documents(rank, tasks, columns=[cfg["id_column"]]):
            expected[doc.id] += 1
        totals["input_documents"] += sum(expected.values())
        filtered = found[rank]["<filtered>"]
        totals["filtered"] += sum(filtered.values())
        extra_filtered = filtered - expected
        if extra_filtered:
            report.problem(f"task {rank}: {sum(extra_filtered.values())} filtered records not in the input: "
                           f"{_examples(extra_filtered)}")
        want = expected - filtered
        for p in prompts:
            got = found[rank][p]  # rows and rejects together
            missing = want - got
            duplicated = {i for i, n in got.items() if n > want.get(i, 0) and i in want}
            unknown = {i for i in got if i not in expected}
            if missing:
                report.problem(f"task {rank}, prompt {p}: {sum(missing.values())} documents missing: "
                               f"{_examples(missing)}")
            if duplicated:
                report.problem(f"task {rank}, prompt {p}: {len(duplicated)} documents duplicated: "
                               f"{_examples(duplicated)}")
            if unknown:
                report.problem(f"task {rank}, prompt {p}: {len(unknown)} ids not in the input: "
                               f"{_examples(unknown)}")
            for i in set(got) & set(filtered):
                if got[i] + filtered[i] > expected[i]:
                    report.problem(f"task {rank}, prompt {p}: {i} is both filtered and produced")
                    break
    for p in prompts:
        n = sum(found[rank][p].total() for rank in found)
        totals[f"rows/{p}"] = n - reject_rows[p]
        totals[f"rejects/{p}"] = reject_rows[p]
    report.stats = dict(totals)
    report.stats["prompts"] = prompts
    report.stats["tasks"] = tasks
    return report

