"""The plan of `finephrase score`: the settings, the check of the input folder, the bucket count, the stages and
running them here. Light to import (no datatrove, no classifier at import time)."""

from __future__ import annotations

from pathlib import Path

from finephrase.argtypes import repeated_names
from finephrase.errors import UsageError
from finephrase.run.stage import Stage, check_output_folder, prepare_output, run_stages
from finephrase.scoring.spec import parse_spec
from finephrase.scoring.stats import SCORES_FILE, bucket_count, read_scores, sample_every

WORK_DIR = ".score"  # finephrase.pipeline.score.score_files.WORK_DIR (that module imports datatrove)
SETTINGS = "settings.json"


class ScorePlan:
    """What scores SOURCE's rows (and, with `sources`, their source documents) into OUTPUT with CLASSIFIERS.
    Creating it checks the folders and the specs (not the models: each task loads them) and records the settings
    in OUTPUT/.score/settings.json (other settings into the same OUTPUT are refused)."""

    def __init__(self, source, output, classifiers: list[str], sources: bool = False, tasks: int = 1,
                 batch_size: int = 1024, overwrite: bool = False):
        from finephrase.verify.finished import check_rows_folder

        self.source, self.output = Path(source).resolve(), Path(output).resolve()
        if not classifiers:
            raise UsageError("--classifiers: give at least one (NAME=fasttext:PATH or NAME=hf:MODEL)")
        self.specs = [parse_spec(c) for c in classifiers]
        if twice := repeated_names([s.name for s in self.specs]):
            raise UsageError(f"--classifiers: two are named {twice[0]}: each name is a column (score_NAME)")
        check_output_folder(self.source, self.output, "the source folder")
        self.manifest = check_rows_folder(self.source, "score", order="score, then compact, card, publish")
        self.prompts = list(self.manifest["config"]["prompts"])
        rows = sum(((self.manifest.get("counts") or {}).get("rows") or {}).values())
        docs = int((self.manifest.get("counts") or {}).get("documents") or 0)
        self.buckets = bucket_count(max(rows, docs))
        self.sample_every = sample_every(max(rows // max(1, len(self.prompts)), 1))
        self.tasks, self.batch_size = tasks, batch_size
        self.record = {"source": str(self.source), "with_sources": sources, "tasks": tasks,
                       "classifiers": [{"name": s.name, "kind": s.kind, "model": s.path, "label": s.label}
                                       for s in self.specs]}
        settings = {**self.record, "buckets": self.buckets, "source_rows": rows,
                    "source_created_at": self.manifest.get("created_at")}
        prepare_output(self.output, WORK_DIR, SETTINGS, settings, overwrite, "score", "scores")

    @property
    def specs_text(self) -> list[str]:
        return [f"{s.name}={s.kind}:{s.path}" + (f"#{s.label}" if s.label is not None else "") for s in self.specs]

    @property
    def done(self) -> bool:
        return (self.output / SCORES_FILE).is_file()

    def result(self) -> dict:
        return read_scores(self.output)

    def stages(self) -> list[Stage]:
        from finephrase.score.stages import stages

        return stages(self)

    def run_local(self, workers: int = 1, echo=print) -> dict:
        """Every stage here, in order, `workers` tasks at a time; one line per stage. Returns scores.json."""
        run_stages(self.stages(), workers, echo)
        return self.result()
