"""`finephrase dedup RUN --output OUT`: remove exact and near duplicates from the rows of a finished run.

The dedup is datatrove's, in dependent stages (each stage a datatrove pipeline; on SLURM, one job array each,
started `afterok` of the stage before, see `pipelines/dedup.py`):

    exact  1/3 signatures   RowsReader(RUN) -> ExactDedupSignature                                   --tasks
           2/3 find         ExactFindDedups                                                          1 task
           3/3 filter       RowsReader(RUN) -> ExactDedupFilter(exclusion_writer=RemovedWriter exact)
                            -> KeptIndex exact -> RowsWriter(.dedup/<unit>/exact_kept)              --tasks
    near   1/4 signatures   RowsReader(exact_kept) -> MinhashDedupSignature                          --tasks
           2/4 buckets      MinhashDedupBuckets                                                      --buckets tasks
           3/4 clusters     MinhashDedupCluster(save_cluster_id) -> RemoveFilesForClusters          1 task
           4/4 filter       RowsReader(exact_kept) -> MinhashDedupFilter(exclusion_writer=RemovedWriter near,
                            load_cluster_ids) -> KeptIndex near -> RowsWriter(OUT)                   --tasks
    finalize                removed rows with `duplicate_of` to OUT/removed/, counts checked, manifest  1 task

Scope `prompt` (default) runs one such chain per prompt: a row is only compared with rows of its own prompt.
Scope `run` runs one chain over all prompts together, so a row can also be a duplicate of another prompt's.
A row is `exact` when its text equals a kept row's after case folding and whitespace collapsing, `near` when
MinHash LSH puts it in a cluster with a kept row. Exactly one row of each group is kept (which one is
deterministic: the same input and settings give the same result; usually the first in file order); the others
go to OUT/removed/<prompt>/ with `dedup_reason` and `duplicate_of`.

OUT/manifest.json, written last, marks a complete dedup; until then a rerun of the same command resumes (stages
and tasks that completed are skipped: datatrove's completion markers under OUT/.dedup/).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from finephrase.argtypes import positive_int
from finephrase.datafiles import parquet_files
from finephrase.errors import UsageError
from finephrase.layout import MANIFEST, durable_write

SCOPES = ("prompt", "run")
WORK_DIR = ".dedup"  # OUT/.dedup: datatrove's intermediate files, logs and completion markers
SETTINGS = "settings.json"
DEFAULT_MINHASH = {"n_grams": 5, "num_buckets": 14, "hashes_per_bucket": 8, "seed": 1}  # datatrove's / FineWeb's


def minhash_config(n_grams: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1):
    """datatrove's MinhashConfig, with 64-bit SHA-1 shingle hashes: its default, xxhash, fails on str shingles with
    xxhash >= 4 ("Strings must be encoded before hashing")."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket, seed=seed,
                         hash_config=HashConfig(precision=64, hash_fc="sha1"))
EXACT_NORMALIZATION = "casefold, whitespace collapsed"


def approx_threshold(num_buckets: int, hashes_per_bucket: int) -> float:
    """Similarity at which a pair has a 50/50 chance to share a bucket: about (1/b)^(1/r) for LSH with b bands of
    r rows. Pairs well above it are nearly always found, pairs well below nearly never."""
    return (1 / num_buckets) ** (1 / hashes_per_bucket)


@dataclass
class Stage:
    """One datatrove pipeline to run with `tasks` tasks, its logs and completion markers in `logging_dir`."""

    name: str
    pipeline: list
    tasks: int
    logging_dir: str

    @property
    def slug(self) -> str:
        """The name as a job name: "faq: exact 1/3 signatures" -> "faq-exact-1of3-signatures"."""
        return re.sub(r"[^A-Za-z0-9_.]+", "-", self.name.replace("/", "of")).strip("-")


def _check_datatrove_dedup():
    try:
        importlib.import_module("datatrove.pipeline.dedup")
    except ModuleNotFoundError as e:  # its __init__ imports every dedup module, exact_substrings needs tokenizers
        raise UsageError(f"datatrove's dedup stages cannot be imported ({e}): pip install {e.name}") from None


# -- the input run --------------------------------------------------------------------------------------------


def _parquet_names(folder: Path) -> list[str]:
    return [p.name for p in parquet_files(folder)]


def check_run(run: Path, full_verify: bool = False) -> dict:
    """The run's manifest if RUN is a finished run whose rows are all committed and counted; a UsageError else.

    Without `full_verify` this reads only RUN (manifest, ledgers, parquet footers); with it, `finephrase verify`
    also re-reads the run's inputs to prove every (document, prompt) has exactly one row or reject."""
    from finephrase.ledger import all_ledgers
    from finephrase.status import load_manifest

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
    ledgers = all_ledgers(run)
    tasks = manifest["config"]["tasks"]
    unfinished = [r for r in range(tasks) if r not in ledgers or not ledgers[r].finished]
    if unfinished:
        raise UsageError(f"{run} is not a finished run: task(s) {', '.join(map(str, unfinished[:5]))} of {tasks} "
                         f"have not finished (see `finephrase verify {run}`)")
    committed = {f for s in ledgers.values() for e in s.entries for f in e.get("files", [])}
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


# -- the plan: stages, chains, settings -----------------------------------------------------------------------


class DedupPlan:
    """The stages that dedup RUN into OUTPUT. Creating it checks RUN and OUTPUT and records the settings in
    OUTPUT/.dedup/settings.json (a later plan into the same OUTPUT with other settings is refused).

    - `chains()`: one list of stages per unit (a prompt, or the whole run), each stage depending on the one
      before; chains are independent of each other;
    - `finalize_stage()`: the last stage, after every chain;
    - `run_local(workers)`: all of it on this machine, one line per stage.
    """

    def __init__(self, run_dir, output, scope: str = "prompt", tasks: int = 1, minhash=None,
                 verify: bool = False, overwrite: bool = False):
        self.run = Path(run_dir).resolve()
        self.output = Path(output).resolve()
        if scope not in SCOPES:
            raise UsageError(f"scope must be one of {', '.join(SCOPES)}: {scope}")
        if self.output == self.run:
            raise UsageError(f"--output must be a new folder, not RUN_DIR itself ({self.run})")
        if self.run in self.output.parents:
            raise UsageError(f"--output must not be inside RUN_DIR ({self.output} is in {self.run}): it would "
                             f"look like a prompt folder of the run")
        if self.output in self.run.parents:
            raise UsageError(f"--output must not contain RUN_DIR ({self.run} is in {self.output})")
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
        return orjson.loads((self.output / MANIFEST).read_bytes())["dedup"]

    # -- stages ---------------------------------------------------------------------------------------------

    def units(self) -> list[tuple[str, list[str]]]:
        """(work folder under OUTPUT/.dedup, prompts) per chain; prompts without rows need none."""
        have = [p for p in self.prompts if _parquet_names(self.run / p)]
        if self.scope == "prompt":
            return [(f"prompt/{p}", [p]) for p in have]
        return [("run", have)] if have else []

    def chain(self, unit: str, prompts: list[str]) -> list[Stage]:
        from datatrove.pipeline.dedup.exact_dedup import (
            ExactDedupConfig,
            ExactDedupFilter,
            ExactDedupSignature,
            ExactFindDedups,
        )
        from datatrove.pipeline.dedup.minhash import (
            MinhashDedupBuckets,
            MinhashDedupCluster,
            MinhashDedupFilter,
            MinhashDedupSignature,
        )

        from finephrase.pipeline.dedup import (
            KeptIndex,
            RemovedWriter,
            RemoveFilesForClusters,
            RowsReader,
            RowsWriter,
            SplitWords,
            exact_text,
        )

        w = self.output / WORK_DIR / unit
        run, mh, n = str(self.run), self.minhash, self.tasks
        exact = ExactDedupConfig(content_getter=exact_text)
        label = unit.split("/", 1)[-1]

        def stage(name: str, pipeline: list, tasks: int) -> Stage:
            kind, _, what = name.split(" ")  # "exact 1/3 signatures": its logs in logs/exact_signatures
            return Stage(f"{label}: {name}", pipeline, tasks, str(w / "logs" / f"{kind}_{what}"))

        return [
            stage("exact 1/3 signatures", [
                RowsReader(run, prompts),
                ExactDedupSignature(str(w / "exact_sigs"), config=exact),
            ], n),
            stage("exact 2/3 find", [
                ExactFindDedups(str(w / "exact_sigs"), str(w / "exact_dups"), config=exact),
            ], 1),
            stage("exact 3/3 filter", [
                RowsReader(run, prompts),
                ExactDedupFilter(str(w / "exact_dups"), config=exact,
                                 exclusion_writer=RemovedWriter(str(w / "removed" / "exact"), "exact")),
                KeptIndex(str(w / "kept" / "exact"), "exact"),
                RowsWriter(str(w / "exact_kept"), "${rank}.parquet"),
            ], n),
            stage("near 1/4 signatures", [
                RowsReader(str(w / "exact_kept")),
                MinhashDedupSignature(str(w / "minhash_sigs"), config=mh, language=SplitWords()),
            ], n),
            stage("near 2/4 buckets", [
                MinhashDedupBuckets(str(w / "minhash_sigs"), str(w / "minhash_buckets"), config=mh),
            ], mh.num_buckets),
            stage("near 3/4 clusters", [
                MinhashDedupCluster(str(w / "minhash_buckets"), str(w / "minhash_clusters"), config=mh,
                                    save_cluster_id=True),
                RemoveFilesForClusters(str(w / "minhash_clusters")),
            ], 1),
            stage("near 4/4 filter", [
                RowsReader(str(w / "exact_kept")),
                MinhashDedupFilter(str(w / "minhash_clusters"), load_cluster_ids=True,
                                   exclusion_writer=RemovedWriter(str(w / "removed" / "near"), "near")),
                KeptIndex(str(w / "kept" / "near"), "near"),
                RowsWriter(str(self.output)),
            ], n),
        ]

    def chains(self) -> list[list[Stage]]:
        return [self.chain(unit, prompts) for unit, prompts in self.units()]

    def finalize_stage(self) -> Stage:
        from finephrase.pipeline.dedup import Finalize

        step = Finalize(str(self.run), str(self.output), self.prompts, self.units(), self.record)
        return Stage("finalize", [step], 1, str(self.output / WORK_DIR / "logs" / "finalize"))

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
    from finephrase.executor import LocalExecutor, setup_console_logging

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


def render_summary(result: dict, output: Path | str) -> str:
    prompts = list(result["input"])
    rows = [(p, result["input"][p], result["kept"][p], result["removed"][p].get("exact", 0),
             result["removed"][p].get("near", 0)) for p in prompts]
    rows.append(("total", *(sum(r[i] for r in rows) for i in range(1, 5))))
    w = max(6, *(len(r[0]) for r in rows))
    lines = [f"{'prompt':<{w}}  {'input':>9}  {'kept':>9}  {'exact':>9}  {'near':>9}"]
    lines += [f"{p:<{w}}  {a:>9,}  {k:>9,}  {e:>9,}  {n:>9,}" for p, a, k, e, n in rows]
    lines.append(f"kept rows: {output}/<prompt>/; removed rows: {output}/removed/<prompt>/ "
                 f"(columns dedup_reason, duplicate_of)")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------------------


def add_parser(sub):
    p = sub.add_parser(
        "dedup", help="remove exact and near duplicates from a finished run's rows (datatrove MinHash)",
        description=textwrap.fill(
            "Deduplicate the rows of a finished run RUN_DIR into OUT_DIR, which gets the same layout as a run "
            "(OUT_DIR/<prompt>/*.parquet with the same schema, and manifest.json: the run's, with the kept counts "
            "and a `dedup` key). Exact duplicates (same text after case folding and whitespace collapsing) go "
            "first, then near duplicates (MinHash LSH). One row of each group is kept; each removed row goes to "
            "OUT_DIR/removed/<prompt>/ with `dedup_reason` (exact, near) and `duplicate_of` (the id of the row it "
            "duplicates). Intermediate files, logs and completion markers: OUT_DIR/.dedup/. Rerun the same command "
            "to resume; on a finished OUT_DIR it says so. See docs/dedup.md; pipelines/dedup.py runs the same "
            "stages as dependent SLURM jobs.", 100),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase dedup output/hq --output output/hq-dedup\n"
        "  finephrase dedup output/hq --output output/hq-dedup-run --scope run --tasks 8 --workers 8")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run (finephrase rephrase's output folder)")
    p.add_argument("--output", "-o", required=True, metavar="OUT_DIR",
                   help="where the deduplicated run goes (a new folder, or this command's earlier output)")
    p.add_argument("--scope", choices=SCOPES, default="prompt",
                   help="prompt (default): compare rows only within each prompt; run: across all prompts too, so a "
                   "row may be removed as a duplicate of another prompt's row")
    g = p.add_argument_group("near duplicates (datatrove MinhashConfig)")
    g.add_argument("--ngrams", type=positive_int, default=DEFAULT_MINHASH["n_grams"],
                   help="words per shingle (5)")
    g.add_argument("--buckets", type=positive_int, default=DEFAULT_MINHASH["num_buckets"],
                   help="LSH buckets (bands) (14); also the task count of the buckets stage")
    g.add_argument("--hashes-per-bucket", type=positive_int, default=DEFAULT_MINHASH["hashes_per_bucket"],
                   help="hashes per bucket (8). Pairs of texts more similar (Jaccard of shingles) than about "
                   "(1/buckets)^(1/hashes-per-bucket) are found: 0.72 with the defaults; fewer buckets or more "
                   "hashes per bucket: stricter")
    g.add_argument("--seed", type=int, default=DEFAULT_MINHASH["seed"], help="seed of the MinHash functions (1)")
    g = p.add_argument_group("execution")
    g.add_argument("--tasks", type=positive_int, default=1,
                   help="shards of the rows (by file) for the read/filter stages (1); part of the settings: a "
                   "rerun into OUT_DIR must use the same")
    g.add_argument("--workers", type=positive_int, default=1, help="tasks run at once on this machine (1)")
    g.add_argument("--verify", action="store_true",
                   help="also run `finephrase verify RUN_DIR` first (re-reads the run's inputs). Without it RUN_DIR "
                   "is checked from its own files: finished status and ledgers, every file committed, row counts")
    g.add_argument("--overwrite", action="store_true", help="delete an earlier dedup in OUT_DIR and start over")
    p.set_defaults(func=main)


def main(args) -> int:
    os.environ.setdefault("FINEPHRASE_LOG_LEVEL", "ERROR")  # datatrove's expected warnings stay in the task logs
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars from --workers processes either
    minhash = minhash_config(n_grams=args.ngrams, num_buckets=args.buckets, hashes_per_bucket=args.hashes_per_bucket,
                             seed=args.seed)
    plan = DedupPlan(args.run_dir, args.output, scope=args.scope, tasks=args.tasks, minhash=minhash,
                     verify=args.verify, overwrite=args.overwrite)
    if plan.done:
        print(f"{plan.output}: already deduplicated from {plan.run} with these settings (pass --overwrite to redo)")
        print(render_summary(plan.result(), args.output))
        return 0
    prm = plan.record["params"]
    print(f"dedup {plan.run} -> {plan.output}: scope {plan.scope}, {len(plan.prompts)} prompts, {plan.tasks} "
          f"task{'s' if plan.tasks != 1 else ''}, {args.workers} worker{'s' if args.workers != 1 else ''}; exact "
          f"({EXACT_NORMALIZATION}), then MinHash {prm['n_grams']}-grams, {prm['num_buckets']} buckets x "
          f"{prm['hashes_per_bucket']} hashes (~{prm['approx_threshold']:.2f} similarity)", flush=True)
    result = plan.run_local(args.workers, echo=lambda line: print(line, flush=True))
    print(render_summary(result, args.output))
    return 0
