"""Is DIR a finished run (or a consistent dedup or decontaminated output) that card, publish and compact may read:
one answer for all of them. A run must be marked finished in its manifest and pass `finephrase verify` (which
reuses the tasks' recorded verdicts), or, without verify, have every task's `finished` ledger line; a derived
output's files must hold the rows its manifest says were kept and removed. And the folders the post-run commands
read file by file (dedup, decontaminate, score): a run whose every file a ledger commits (`check_run`), or a
derived output (`check_rows_folder`)."""

from __future__ import annotations

from pathlib import Path

from finephrase.errors import FinephraseError, UsageError
from finephrase.store.datafiles import parquet_files, rows_in, split_empty
from finephrase.store.folders import derivation, load_manifest
from finephrase.store.layout import MANIFEST


def load_run_manifest(root: Path) -> dict:
    """The manifest of a run or dedup output (one-line errors for a missing or unreadable one, or one that lists
    no prompts)."""
    m = load_manifest(root)
    if not m["config"].get("prompts"):
        raise UsageError(f"{root} is not a finephrase run ({MANIFEST} has no config with prompts)")
    return m


def _rows_in(folder: Path) -> int:
    return rows_in(split_empty(parquet_files(folder))[0])


def _check_derived_counts(root: Path, prompts: list[str], key: str, record: dict) -> None:
    """The rows of a dedup or decontaminated output's folders are the ones its record says (footers only)."""
    what = "dedup" if key == "dedup" else "decontamination"
    kept, removed = record.get("kept") or {}, record.get("removed") or {}
    for p in prompts:
        n = _rows_in(root / p)
        if p in kept and kept[p] != n:
            raise UsageError(f"{root}: {p}/ holds {n} rows but the {what} manifest says {kept[p]} were kept: "
                             f"an unfinished or altered {what} output")
        if (root / "removed" / p).is_dir() and p in removed:
            r = _rows_in(root / "removed" / p)
            want = sum(v for v in removed[p].values() if isinstance(v, int)) \
                if isinstance(removed[p], dict) else removed[p]
            if r != want:
                raise UsageError(f"{root}: removed/{p}/ holds {r} rows but the {what} manifest says {want} were "
                                 f"removed: an unfinished or altered {what} output")


def check_finished(root: Path, manifest: dict, verify: bool = True) -> None:
    """Refuse (one line) anything but a finished run that passes verify, or a consistent dedup or decontaminated
    output. Verify reuses the tasks' verdicts recorded in DIR/.verify/ while what they covered is unchanged (after
    an array verify it re-reads nothing) and checks the others again, so a run changed since is never passed."""
    status = manifest.get("status")
    derived = derivation(manifest)
    if status != "finished" and not (derived and status is None):
        raise UsageError(f"{root} is not a finished run (manifest status: {status}): finish or resume it first "
                         f"(`finephrase status {root}`)")
    prompts = list(manifest["config"]["prompts"])
    if derived:
        _check_derived_counts(root, prompts, *derived)
        return
    if verify:
        from finephrase.verify.check import verify as run_verify

        try:
            report = run_verify(root)
        except FinephraseError:
            raise
        except Exception as e:
            raise UsageError(f"cannot verify {root} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): "
                             f"run this from the folder the run was started in (relative inputs), or pass "
                             f"--no-verify") from None
        if not report.ok:
            raise UsageError(f"{root} does not pass `finephrase verify` ({len(report.problems)} problem(s); first: "
                             f"{report.problems[0]}): resume or repair the run first")
    else:
        from finephrase.store.ledger import unfinished_tasks

        tasks = int(manifest["config"].get("tasks", 1))
        if unfinished := unfinished_tasks(root, range(tasks)):
            raise UsageError(f"{root}: {tasks - len(unfinished)} of {tasks} tasks have finished: finish or resume "
                             f"the run first")


# -- a folder that a post-run command reads file by file (dedup, decontaminate, score) ------------------------


def _parquet_names(folder: Path) -> list[str]:
    return [p.name for p in parquet_files(folder)]


def _committed_files(run: Path, manifest: dict) -> set[str]:
    """The run's data files: what its ledgers commit (every task finished), or a compacted run's shards."""
    from finephrase.store.ledger import all_ledgers, unfinished_tasks

    if manifest.get("compacted"):
        import orjson

        from finephrase.store.compacted import COMPACT_DIR, PLAN

        return {s["path"] for s in orjson.loads((run / COMPACT_DIR / PLAN).read_bytes())["shards"]}
    ledgers = all_ledgers(run)
    tasks = manifest["config"]["tasks"]
    if unfinished := unfinished_tasks(run, range(tasks), ledgers):
        raise UsageError(f"{run} is not a finished run: task(s) {', '.join(map(str, unfinished[:5]))} of {tasks} "
                         f"have not finished (see `finephrase verify {run}`)")
    return {f for s in ledgers.values() for e in s.entries for f in e.get("files", [])}


def check_run(run: Path, full_verify: bool = False) -> dict:
    """The run's manifest if RUN is a finished run whose rows are all committed and counted; a UsageError else.

    Without `full_verify` this reads only RUN (manifest, ledgers, parquet footers); with it, `finephrase verify`
    also re-reads the run's inputs to prove every (document, prompt) has exactly one row or reject."""
    manifest = load_manifest(run)
    if "decontamination" in manifest:
        raise UsageError(f"{run} is a decontaminated output of {manifest['decontamination'].get('source')}, not a "
                         f"run: dedup comes first (dedup -> decontaminate -> compact)")
    if "dedup" in manifest:
        raise UsageError(f"{run} is a dedup output, not a run: dedup the run it came from "
                         f"({manifest['dedup'].get('source')})")
    status = manifest.get("status")
    if status != "finished":
        raise UsageError(f"{run} is not a finished run (status: {status}): finish it first (rerun its command), "
                         f"then check it with `finephrase verify {run}`")
    prompts = list(manifest["config"].get("prompts") or [])
    if not prompts:
        raise UsageError(f"{run}/{MANIFEST} lists no prompts")
    committed = _committed_files(run, manifest)
    expected = (manifest.get("counts") or {}).get("rows") or {}
    for p in prompts:
        names = _parquet_names(run / p)
        stray = [n for n in names if f"{p}/{n}" not in committed]
        if stray:
            raise UsageError(f"{run}/{p}/ holds files no ledger line commits ({', '.join(stray[:3])}): an "
                             f"interrupted run; rerun its command, then `finephrase verify {run}`")
        import pyarrow.parquet as pq

        rows = sum(pq.ParquetFile(run / p / n).metadata.num_rows for n in names)
        if rows != expected.get(p, 0):
            raise UsageError(f"{run}/{p}/ has {rows} rows but the manifest counts {expected.get(p, 0)}: check it "
                             f"with `finephrase verify {run}`")
    if full_verify:
        from finephrase.verify import verify

        report = verify(run)
        if not report.ok:
            more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            raise UsageError(f"{run} does not pass `finephrase verify`: {report.problems[0]}{more}")
    return manifest


def check_rows_folder(source: Path, command: str, kinds: tuple[str, ...] = ("run", "dedup", "decontaminated"),
                      order: str = "") -> dict:
    """The manifest of a folder a post-run command reads file by file (`finephrase COMMAND SOURCE`): a finished
    run (its files all committed), or a consistent dedup or decontaminated output, of `kinds`; never a compacted
    folder (`order`: where the command goes on the way, for the error). One line (a UsageError) for anything else."""
    from finephrase.store.folders import folder_kind, refuse_folder

    kind = folder_kind(source)
    if kind not in kinds:
        names = {"run": "finished rephrase runs", "dedup": "dedup outputs", "decontaminated": "decontaminated outputs"}
        raise refuse_folder(source, kind, command, ", ".join(names[k] for k in kinds))
    if kind == "run":
        manifest = check_run(source)
    else:
        manifest = load_run_manifest(source)
        check_finished(source, manifest, verify=False)
    if manifest.get("compacted"):
        raise UsageError(f"{source} is compacted: `finephrase {command}` reads the folder before compaction"
                         f"{f' ({order})' if order else ''}, here {manifest['compacted'].get('source')}")
    return manifest
