"""The plan of a dedup: the settings, the check of the input run, its units (chains of stages) and running them.

Light to import (no datatrove at import time): `finephrase.cli` loads it for every command.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import orjson

from finephrase.dedup.units import Stage, Unit, approx_threshold, exact_config, job_name, minhash_config  # noqa: F401
from finephrase.errors import UsageError
from finephrase.run.stage import (  # noqa: F401 (run_stage: finephrase.dedup.run_stage)
    check_output_folder,
    prepare_output,
    run_stage,
    run_stages,
)
from finephrase.verify.finished import check_run  # noqa: F401 (finephrase.dedup.check_run)
from finephrase.store.datafiles import parquet_files
from finephrase.store.layout import MANIFEST, read_manifest

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


# -- the plan -------------------------------------------------------------------------------------------------


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
        check_output_folder(self.run, self.output, "RUN_DIR")
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
        prepare_output(self.output, WORK_DIR, SETTINGS, self.settings, overwrite, "dedup", "a dedup")

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
        have = [p for p in self.prompts if parquet_files(self.run / p)]
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
        run_stages([s for chain in self.chains() for s in chain] + [self.finalize_stage()], workers, echo)
        return self.result()
