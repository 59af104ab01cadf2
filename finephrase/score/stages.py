"""The stages of `finephrase score`, each a plain list of datatrove steps:

    stage      steps                                                                   tasks
    rows       ScoreRows(SOURCE's rows -> OUT/.score/rows/<bucket>/)                    --tasks
    sources    the run's reader -> ScoreSources(-> OUT/.score/sources/<bucket>/)        the run's tasks (--sources)
    join       JoinScores(-> OUT/<prompt>/BBBBB.parquet, partial summaries)            one per bucket
    finalize   FinalizeScores(every row scored once, OUT/scores.json)                  1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finephrase.pipeline.score import FinalizeScores, JoinScores, ScoreRows, ScoreSources
from finephrase.run.stage import Stage

if TYPE_CHECKING:
    from finephrase.score.plan import ScorePlan


def rows(plan: ScorePlan) -> list:
    return [ScoreRows(str(plan.source), str(plan.output), plan.prompts, plan.specs_text, plan.buckets,
                      plan.batch_size)]


def sources(plan: ScorePlan) -> list:
    from finephrase.verify.run import make_reader

    return [make_reader(plan.manifest["config"]),
            ScoreSources(str(plan.output), plan.specs_text, plan.buckets, plan.batch_size)]


def join(plan: ScorePlan) -> list:
    return [JoinScores(str(plan.output), plan.prompts, [s.name for s in plan.specs], plan.record["with_sources"],
                       plan.sample_every)]


def finalize(plan: ScorePlan) -> list:
    return [FinalizeScores(str(plan.source), str(plan.output), plan.prompts, plan.record)]


def stages(plan: ScorePlan) -> list[Stage]:
    logs = plan.output / ".score" / "logs"
    run_tasks = int(plan.manifest["config"]["tasks"])
    chosen = [("rows", rows, plan.tasks), ("sources", sources, run_tasks), ("join", join, plan.buckets),
              ("finalize", finalize, 1)]
    return [Stage(name, steps(plan), tasks, str(logs / name)) for name, steps, tasks in chosen
            if name != "sources" or plan.record["with_sources"]]
