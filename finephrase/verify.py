"""`finephrase verify DIR`: prove that every (input document, prompt) has exactly one row in outputs or rejects.

The inputs are read again (ids only) with the run's own reader, sharding and limit, task by task; documents
recorded under DIR/filtered/ are expected nowhere else. Everything found on disk is compared with that:
missing ids, duplicated ids, ids that are not in the input, files that no ledger line commits, and tasks that
have not finished are all reported; any of them makes the exit code non-zero.

A dedup output (`finephrase dedup RUN --output DIR`) is checked against its manifest's `dedup` record instead:
every row id is in exactly one place, DIR/<prompt>/ (kept) or DIR/removed/<prompt>/; the kept and removed counts
are the recorded ones and add up to the rows that went in; and, while the source run is still there, the ids are
exactly its rows' ids, prompt by prompt. A mix or any other folder is refused with one line.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from finephrase.datafiles import parquet_files
from finephrase.errors import UsageError
from finephrase.ledger import all_ledgers
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.run import MANIFEST, input_listing
from finephrase.status import folder_kind, load_manifest, refuse_folder

_FILE = re.compile(r"^(\d{5})_(\d{6})\.parquet$")


@dataclass
class Report:
    """The outcome of `finephrase verify`: ok, the problems found (one line each) and the counts checked; `kind`
    is what was checked, "run" or "dedup" (also in stats for --json)."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    kind: str = "run"

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
    """Check a rephrase run or a dedup output (see the module's docstring); a UsageError for any other folder."""
    root = Path(output_dir)
    kind = folder_kind(root)
    if kind in ("run", "dedup") and (manifest := _compacted(root)):
        from finephrase.compact.verify import verify_compacted

        return verify_compacted(root, manifest)
    if kind == "dedup":
        return verify_dedup(root)
    if kind != "run":
        raise refuse_folder(root, kind, "verify", "rephrase runs and dedup outputs")
    return verify_run(root)


def _compacted(root: Path) -> dict | None:
    """The manifest of a compacted folder (`finephrase compact`), else None."""
    manifest = load_manifest(root) if (root / MANIFEST).is_file() else {}
    return manifest if manifest.get("compacted") else None


def verify_run(root: Path) -> Report:
    """Check a rephrase run against its inputs: exactly one row or reject per (document, prompt)."""
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
    found, reject_rows = _files_on_disk(root, prompts, ledgers, report)
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
        totals["filtered"] += sum(found[rank]["<filtered>"].values())
        _check_task(report, rank, prompts, expected, found[rank])
    for p in prompts:
        n = sum(found[rank][p].total() for rank in found)
        totals[f"rows/{p}"] = n - reject_rows[p]
        totals[f"rejects/{p}"] = reject_rows[p]
    report.stats = dict(totals)
    report.stats["kind"] = "run"
    report.stats["prompts"] = prompts
    report.stats["tasks"] = tasks
    return report


def _files_on_disk(root: Path, prompts: list[str], ledgers, report: Report):
    """The ids in the committed files, by rank and by prompt (rows and rejects together; `<filtered>` for the
    filtered list), and the reject rows per prompt. Files no ledger line commits are reported."""
    committed = {f for s in ledgers.values() for e in s.entries for f in e.get("files", [])}
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
    return found, reject_rows


def _check_task(report: Report, rank: int, prompts: list[str], expected: Counter, found: dict[str, Counter]):
    """One task: every expected id filtered, or once per prompt in rows or rejects; nothing else."""
    filtered = found["<filtered>"]
    extra_filtered = filtered - expected
    if extra_filtered:
        report.problem(f"task {rank}: {sum(extra_filtered.values())} filtered records not in the input: "
                       f"{_examples(extra_filtered)}")
    want = expected - filtered
    for p in prompts:
        got = found[p]  # rows and rejects together
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


# -- a dedup output -------------------------------------------------------------------------------------------


def _row_ids(folder: Path, column: str = "id") -> Counter:
    """How often each row id occurs in the parquet files directly in `folder`."""
    found = Counter()
    for path in parquet_files(folder):
        found.update(pq.read_table(path, columns=[column]).column(column).to_pylist())
    return found


def _removed_ids(folder: Path) -> tuple[Counter, Counter]:
    """(id counts, rows per dedup_reason) of a dedup output's removed/<prompt>/ folder."""
    ids, reasons = Counter(), Counter()
    for path in parquet_files(folder):
        t = pq.read_table(path, columns=["id", "dedup_reason"])
        ids.update(t.column("id").to_pylist())
        reasons.update(t.column("dedup_reason").to_pylist())
    return ids, reasons


def _removed_record(value) -> dict:
    """A prompt's `dedup.removed` entry as {reason: rows} (older manifests: one number)."""
    return dict(value) if isinstance(value, dict) else {"exact": value or 0}


def _check_dedup_prompt(report: Report, root: Path, p: str, dd: dict, source_ids: Counter | None) -> dict:
    """Check one prompt of a dedup output (problems go to `report`); returns its counts."""
    kept = _row_ids(root / p)
    removed, reasons = _removed_ids(root / "removed" / p)
    both = kept + removed
    duplicated = {i for i, n in both.items() if n > 1}
    if duplicated:
        report.problem(f"prompt {p}: {len(duplicated)} row ids more than once in {p}/ and removed/{p}/: "
                       f"{_examples(duplicated)}")
    want_kept = (dd.get("kept") or {}).get(p, 0)
    if kept.total() != want_kept:
        report.problem(f"prompt {p}: {kept.total()} rows kept in {p}/ but the manifest's dedup.kept says {want_kept}")
    want_removed = {r: n for r, n in _removed_record((dd.get("removed") or {}).get(p)).items() if isinstance(n, int)}
    for reason in sorted(set(want_removed) | set(reasons)):
        if reasons[reason] != want_removed.get(reason, 0):
            report.problem(f"prompt {p}: {reasons[reason]} rows removed as {reason} in removed/{p}/ but the "
                           f"manifest's dedup.removed says {want_removed.get(reason, 0)}")
    rows_in = (dd.get("input") or {}).get(p, 0)
    if kept.total() + removed.total() != rows_in:
        report.problem(f"prompt {p}: {kept.total()} kept + {removed.total()} removed rows, but {rows_in} went in "
                       f"(the manifest's dedup.input)")
    if source_ids is not None:
        missing, unknown = set(source_ids) - set(both), set(both) - set(source_ids)
        if missing:
            report.problem(f"prompt {p}: {len(missing)} rows of the source run are neither kept nor removed: "
                           f"{_examples(missing)}")
        if unknown:
            report.problem(f"prompt {p}: {len(unknown)} row ids not in the source run: {_examples(unknown)}")
    return {"input": rows_in, "kept": kept.total(), "removed": removed.total()}


def verify_dedup(root: Path) -> Report:
    """Check a dedup output against its manifest's `dedup` record (and its source run, when that is still there)."""
    manifest = load_manifest(root)
    dd = manifest.get("dedup") or {}
    prompts = list((manifest.get("config") or {}).get("prompts") or dd.get("kept") or {})
    source = dd.get("source")
    source_dir = Path(source) if source and (Path(source) / MANIFEST).is_file() else None
    report = Report(kind="dedup")
    stats: dict = {"kind": "dedup", "source": source, "source_checked": source_dir is not None, "prompts": prompts,
                   "scope": dd.get("scope")}
    for p in prompts:
        source_ids = _row_ids(source_dir / p) if source_dir else None
        for key, n in _check_dedup_prompt(report, root, p, dd, source_ids).items():
            stats[f"{key}/{p}"] = n
    stats["input_rows"] = sum(stats[f"input/{p}"] for p in prompts)
    report.stats = stats
    return report


def render(report: Report, output: str | Path) -> str:
    """The text of `finephrase verify DIR` for a run or a dedup output (--json prints ok, problems and stats)."""
    s = report.stats
    if report.kind == "dedup":
        against = "its source run's rows" if s.get("source_checked") else \
            "the manifest only (the source run is no longer there)"
        lines = [f"{output}: dedup output of {s.get('source')}, {s.get('input_rows', 0)} rows in, "
                 f"{len(s.get('prompts', []))} prompts (scope {s.get('scope')}), checked against {against}"]
        ok = f"OK: dedup output of {s.get('source')}: every row is kept or removed exactly once, counts as recorded"
    else:
        lines = [f"{output}: {s.get('input_documents', 0)} input documents, {s.get('filtered', 0)} filtered, "
                 f"{len(s.get('prompts', []))} prompts, {s.get('tasks')} tasks"]
        ok = "OK: every (document, prompt) has exactly one row or reject"
    if report.ok:
        lines.append(ok)
    else:
        lines.append(f"FAILED: {len(report.problems)} problems")
        lines.extend(f"  - {line}" for line in report.problems)
    return "\n".join(lines)


def main(args) -> int:
    """`finephrase verify DIR [--json]`: the report printed; exit 0 when ok, 1 otherwise."""
    report = verify(args.output)
    if args.json:
        print(orjson.dumps({"ok": report.ok, "problems": report.problems, "stats": report.stats},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(report, args.output))
    return 0 if report.ok else 1

