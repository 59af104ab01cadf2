"""The plan of a dedup: the settings, the check of the input run, its units (chains of stages) and running them.

Light to import (no datatrove at import time): `finephrase.cli` loads it for every command.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import shutil
import time
from pathlib import Path

import orjson

from finephrase.dedup.units import Stage, Unit, approx_threshold, exact_config, job_name, minhash_config  # noqa: F401
from finephrase.errors import UsageError
from finephrase.store.datafiles import parquet_files
from finephrase.store.layout import MANIFEST, durable_write, read_manifest

SCOPES = ("prompt", "run")
WORK_DIR = ".dedup"  # OUT/.dedup: datatrove's intermediate files, logs and completion markers
SETTINGS = "settings.json"
DEFAULT_MINHASH = {"n_grams": 5, "num_buckets": 14, "hashes_per_bucket": 8, "seed": 1}  # datatrove's / FineWeb's
EXACT_NORMALIZATION = "casefold, whitespace collapsed"


def _check_datatrove_dedup():
    try:
        importlib.import_module("datatrove.pipeline.dedup")
    except ModuleNotFoundError as e:  # its __init__ imports every dedup module, exact_substrings needs tokenizers
        raise UsageError(f"datatrove's dedup stages cannot be imported ({e}): pip install {e.name}") from None


# -- the input run --------------------------------------------------------------------------------------------


def _parquet_names(folder: Path) -> list[str]:
    return [p.name for p in parquet_files(folder)]


def _committed_files(run: Path, manifest: dict) -> set[str]:
    """The run's data files: what its ledgers commit (every task finished), or a compacted run's shards."""
    from finephrase.store.ledger import all_ledgers

    if manifest.get("compacted"):
        import orjson

        from finephrase.store.compacted import COMPACT_DIR, PLAN

        return {s["path"] for s in orjson.loads((run / COMPACT_DIR / PLAN).read_bytes())["shards"]}
    ledgers = all_ledgers(run)
    tasks = manifest["config"]["tasks"]
    unfinished = [r for r in range(tasks) if r not in ledgers or not ledgers[r].finished]
    if unfinished:
        raise UsageError(f"{run} is not a finished run: task(s) {', '.join(map(str, unfinished[:5]))} of {tasks} "
                         f"have not finished (see `finephrase verify {run}`)")
    return {f for s in ledgers.values() for e in s.entries for f in e.get("files", [])}


def check_run(run: Path, full_verify: bool = False) -> dict:
    """The run's manifest if RUN is a finished run whose rows are all committed and counted; a UsageError else.

    Without `full_verify` this reads only RUN (manifest, ledgers, parquet footers); with it, `finephrase verify`
    also re-reads the run's inputs to prove every (document, prompt) has exactly one row or reject."""
    from finephrase.store.folders import load_manifest

    manifest = load_manifest(run)
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


# -- the plan -------------------------------------------------------------------------------------------------


def _check_folders(run: Path, output: Path):
    if output == run:
        raise UsageError(f"--output must be a new folder, not RUN_DIR itself ({run})")
    if run in output.parents:
        raise UsageError(f"--output must not be inside RUN_DIR ({output} is in {run}): it would look like a "
                         f"prompt folder of the run")
    if output in run.parents:
        raise UsageError(f"--output must not contain RUN_DIR ({run} is in {output})")


class DedupPlan:
    """What dedups RUN into OUTPUT. Creating it checks RUN and OUTPUT and records the settings in
    OUTPUT/.dedup/settings.json (a later plan into the same OUTPUT with other settings is refused).

    - `units()`: the chains of stages to run, one per prompt (scope prompt) or one for the run (scope run); the
      stages of a chain are `finephrase.dedup.stages`' lists, each depending on the one before; chains are
      independent of each other;
    - `chains()`: those stages, as Stage objects, one list per unit; `finalize_stage()`: the last stage, after
      every chain;
    - `run_local(workers)`: all of it on this machine, one line per stage.
    """

    def __init__(self, run_dir, output, scope: str = "prompt", tasks: int = 1, minhash=None,
                 verify: bool = False, overwrite: bool = False):
        self.run = Path(run_dir).resolve()
        self.output = Path(output).resolve()
        if scope not in SCOPES:
            raise UsageError(f"scope must be one of {', '.join(SCOPES)}: {scope}")
        _check_folders(self.run, self.output)
        _check_datatrove_dedup()
        self.manifest = check_run(self.run, full_verify=verify)
        self.prompts = list(self.manifest["config"]["prompts"])
        self.scope = scope
        self.tasks = tasks
        self.minhash = minhash or minhash_config(**DEFAULT_MINHASH)
        m = self.minhash
        self.record = {
            "source": str(self.run),
            "scope": scope,
            "params": {
                "exact": EXACT_NORMALIZATION,
                "n_grams": m.n_grams,
                "num_buckets": m.num_buckets,
                "hashes_per_bucket": m.hashes_per_bucket,
                "seed": m.seed,
                "hash": f"{m.hash_config.hash_fc}-{m.hash_config.precision}",
                "approx_threshold": round(approx_threshold(m.num_buckets, m.hashes_per_bucket), 3),
            },
            "tasks": tasks,
        }
        self.settings = {**self.record, "source_rows": (self.manifest.get("counts") or {}).get("rows"),
                         "source_created_at": self.manifest.get("created_at")}
        self._prepare(overwrite)

    @property
    def work_dir(self) -> str:
        """OUTPUT/.dedup: the settings, one work folder per unit, finalize's logs."""
        return str(self.output / WORK_DIR)

    # -- OUTPUT ---------------------------------------------------------------------------------------------

    def _prepare(self, overwrite: bool):
        out = self.output
        path = out / WORK_DIR / SETTINGS
        if out.exists() and not out.is_dir():
            raise UsageError(f"--output {out} is a file, not a folder")
        existing = None
        if path.is_file():
            try:
                existing = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                existing = {}
        elif out.is_dir() and any(out.iterdir()):
            raise UsageError(f"{out} exists and is not a `finephrase dedup` output: choose another --output")
        if existing is not None and (overwrite or existing != self.settings):
            if not overwrite:
                diff = ", ".join(f"{k}: {existing.get(k)!r} -> {v!r}" for k, v in self.settings.items()
                                 if existing.get(k) != v) or "unreadable settings"
                raise UsageError(f"{out} holds a dedup with other settings ({diff}): pass --overwrite to redo "
                                 f"it, or choose another --output")
            shutil.rmtree(out)
        (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            durable_write(path, orjson.dumps(self.settings, option=orjson.OPT_INDENT_2))

    @property
    def done(self) -> bool:
        """OUTPUT/manifest.json exists: finalize has run, the dedup is complete."""
        path = self.output / MANIFEST
        return path.is_file() and "dedup" in orjson.loads(path.read_bytes())

    def result(self) -> dict:
        return read_manifest(self.output)["dedup"]

    # -- stages ---------------------------------------------------------------------------------------------

    def units(self) -> list[Unit]:
        """The chains to run; prompts without rows need none."""
        have = [p for p in self.prompts if _parquet_names(self.run / p)]
        if self.scope == "prompt":
            names = [(f"prompt/{p}", [p]) for p in have]
        else:
            names = [("run", have)] if have else []
        return [Unit(name, prompts, str(self.output / WORK_DIR / name)) for name, prompts in names]

    def chains(self) -> list[list[Stage]]:
        from finephrase.dedup.stages import chain

        return [chain(self, unit) for unit in self.units()]

    def finalize_stage(self) -> Stage:
        from finephrase.dedup.stages import finalize

        return Stage("finalize", finalize(self), 1, f"{self.work_dir}/logs/finalize")

    # -- running here ---------------------------------------------------------------------------------------

    def run_local(self, workers: int = 1, echo=print) -> dict:
        """Every stage on this machine, in order, `workers` tasks at a time; one line per stage. Tasks that
        completed before are skipped. Returns the manifest's `dedup`."""
        stages = [s for chain in self.chains() for s in chain] + [self.finalize_stage()]
        width = max(len(s.name) for s in stages)
        for i, s in enumerate(stages, 1):
            echo(run_stage(s, workers, f"[{i:>{len(str(len(stages)))}}/{len(stages)}] {s.name:<{width}}"))
        return self.result()


def run_stage(stage: Stage, workers: int, label: str) -> str:
    """Run one stage with finephrase's LocalExecutor (quiet console; task logs in the stage's logging_dir)."""
    from finephrase.run.executor import LocalExecutor, setup_console_logging

    ex = LocalExecutor(stage.pipeline, tasks=stage.tasks, workers=max(1, min(workers, stage.tasks)),
                       logging_dir=stage.logging_dir)
    todo = len(ex.get_incomplete_ranks())
    tasks = f"{stage.tasks} task" + ("s" if stage.tasks != 1 else "")
    if todo == 0:
        return f"{label}  {tasks}, done before"
    t0 = time.monotonic()
    # datatrove's stages draw tqdm bars on stderr; here they and its console logs go nowhere (the task logs in
    # logging_dir keep everything; an error still ends the command with one line)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ex.run()
    finally:
        setup_console_logging()
    again = f" ({stage.tasks - todo} done before)" if todo < stage.tasks else ""
    return f"{label}  {tasks}{again}, {time.monotonic() - t0:.1f}s"
