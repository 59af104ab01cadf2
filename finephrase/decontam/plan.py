"""The plan of a decontamination: the settings, the check of the input folder, the stages and running them here.
Light to import (no datatrove at import time): `finephrase.cli` loads it for every command."""

from __future__ import annotations

from pathlib import Path

import orjson

from finephrase.argtypes import repeated_names
from finephrase.contamination.benchmarks import parse_spec
from finephrase.contamination.index import DEFAULTS
from finephrase.errors import UsageError
from finephrase.run.stage import Stage, check_output_folder, prepare_output, run_stages
from finephrase.store.folders import folder_kind
from finephrase.store.layout import MANIFEST, read_manifest

WORK_DIR = ".decontam"  # finephrase.pipeline.decontam.WORK_DIR (that module imports datatrove)
SETTINGS = "settings.json"


def check_source(source: Path) -> dict:
    """The manifest of a folder decontaminate reads: a finished run or a consistent dedup output, not compacted."""
    from finephrase.verify.finished import check_rows_folder

    if folder_kind(source) == "decontaminated":
        raise UsageError(f"{source} is decontaminated already: decontaminate the folder it came from with every "
                         f"benchmark at once")
    return check_rows_folder(source, "decontaminate", ("run", "dedup"), "dedup -> decontaminate -> compact")


class DecontamPlan:
    """What decontaminates SOURCE into OUTPUT against BENCHMARKS. Creating it checks both folders and the
    benchmark specs, and records the settings in OUTPUT/.decontam/settings.json (other settings are refused)."""

    def __init__(self, source, output, benchmarks: list[str], n: int = DEFAULTS["n"],
                 boilerplate_share: float = DEFAULTS["boilerplate_share"],
                 boilerplate_min: int = DEFAULTS["boilerplate_min"], tasks: int = 1, audit_only: bool = False,
                 check_sources: bool = False, overwrite: bool = False):
        self.source = Path(source).resolve()
        self.output = Path(output).resolve()
        if not benchmarks:
            raise UsageError("--benchmarks: give at least one benchmark file (NAME=PATH[#LAYOUT])")
        if n < 3:
            raise UsageError(f"--ngram {n}: at least 3 words (short n-grams match ordinary phrases)")
        if not 0 < boilerplate_share <= 1:
            raise UsageError(f"--boilerplate-share {boilerplate_share}: a share of the items, in (0, 1]")
        self.specs = [parse_spec(b) for b in benchmarks]
        if twice := repeated_names([s.name for s in self.specs]):
            raise UsageError(f"--benchmarks: two benchmarks named {twice[0]}: give each its own NAME=")
        check_output_folder(self.source, self.output, "the source folder")
        self.manifest = check_source(self.source)
        self.prompts = list(self.manifest["config"]["prompts"])
        self.n, self.share, self.least, self.tasks = n, boilerplate_share, boilerplate_min, tasks
        self.record = {"source": str(self.source), "audit_only": audit_only, "check_sources": check_sources,
                       "tasks": tasks}
        self.settings = {**self.record, "benchmarks": [s.describe() for s in self.specs], "n": n,
                         "boilerplate_share": boilerplate_share, "boilerplate_min": boilerplate_min,
                         "source_rows": (self.manifest.get("counts") or {}).get("rows"),
                         "source_created_at": self.manifest.get("created_at")}
        prepare_output(self.output, WORK_DIR, SETTINGS, self.settings, overwrite, "decontaminate",
                       "a decontamination")

    @property
    def work_dir(self) -> Path:
        return self.output / WORK_DIR

    @property
    def done(self) -> bool:
        """OUTPUT/manifest.json exists: finalize has run, the decontamination is complete."""
        path = self.output / MANIFEST
        return path.is_file() and "decontamination" in orjson.loads(path.read_bytes())

    def result(self) -> dict:
        return read_manifest(self.output)["decontamination"]

    def stages(self) -> list[Stage]:
        from finephrase.decontam.stages import stages

        return stages(self)

    def run_local(self, workers: int = 1, echo=print) -> dict:
        """Every stage on this machine, in order, `workers` tasks at a time; one line per stage. Tasks that
        completed before are skipped. Returns the manifest's `decontamination`."""
        run_stages(self.stages(), workers, echo)
        return self.result()
