"""The stages of `finephrase decontaminate`, each a plain list of datatrove steps (what one executor runs):

    stage       steps                                                                        tasks
    index       BuildIndex(benchmarks -> OUT/.decontam/index)                                 1
    sources     the run's reader -> FindInSources(-> OUT/.decontam/sources)   the run's tasks (--check-sources)
    filter      DecontaminateFiles(SOURCE -> OUT/<prompt>/ + OUT/removed|flagged/<prompt>/)   --tasks
    finalize    FinalizeDecontam(counts checked, OUT/manifest.json)                           1

Each depends on the one before. `pipelines/decontaminate.py` spells the same lists out, as executors to edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finephrase.pipeline.decontam import (
    INDEX_DIR,
    SOURCES_DIR,
    BuildIndex,
    DecontaminateFiles,
    FinalizeDecontam,
    FindInSources,
)
from finephrase.run.stage import Stage

if TYPE_CHECKING:
    from finephrase.decontam.plan import DecontamPlan


def index(plan: DecontamPlan) -> list:
    return [BuildIndex(plan.specs, str(plan.work_dir / INDEX_DIR), plan.n, plan.share, plan.least)]


def sources(plan: DecontamPlan) -> list:
    from finephrase.verify.run import make_reader

    return [make_reader(plan.manifest["config"]),
            FindInSources(str(plan.work_dir / INDEX_DIR), str(plan.work_dir / SOURCES_DIR))]


def split(plan: DecontamPlan) -> list:
    return [DecontaminateFiles(str(plan.source), str(plan.output), plan.prompts,
                               audit_only=plan.record["audit_only"], check_sources=plan.record["check_sources"])]


def finalize(plan: DecontamPlan) -> list:
    return [FinalizeDecontam(str(plan.source), str(plan.output), plan.prompts, plan.record)]


def stages(plan: DecontamPlan) -> list[Stage]:
    """The stages in the order they run (sources only with --check-sources)."""
    logs = plan.work_dir / "logs"
    run_tasks = int(plan.manifest["config"]["tasks"])  # the run's reader, sharded as the run read its inputs
    chosen = [("index", index, 1), ("sources", sources, run_tasks), ("filter", split, plan.tasks),
              ("finalize", finalize, 1)]
    return [Stage(name, steps(plan), tasks, str(logs / name)) for name, steps, tasks in chosen
            if name != "sources" or plan.record["check_sources"]]
