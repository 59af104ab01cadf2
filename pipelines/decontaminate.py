"""Decontaminate a finished run or dedup output: take out the rows that reproduce benchmark text.

The same stages as `finephrase decontaminate` (see docs/decontamination.md), spelled out as datatrove executors
you can edit, each `depends` on the stage before. Run it from the repository root:

    python pipelines/decontaminate.py            # here, stage after stage; rerun to resume
    python pipelines/decontaminate.py --slurm    # submit each stage as a SLURM job array that starts when the
                                                 # stage before it succeeded (afterok), then return

When the last job (decontam-finalize) has finished, OUTPUT/manifest.json holds the counts; `finephrase verify
OUTPUT` checks every row is kept or removed exactly once. Resubmitting skips what completed.

Unedited, the lists are those of `finephrase decontaminate SOURCE --benchmarks ... --output OUTPUT --tasks TASKS`
(finephrase/decontam/stages.py).
"""

import sys

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

from finephrase.decontam import DecontamPlan, render_summary
from finephrase.pipeline.decontam import BuildIndex, DecontaminateFiles, FinalizeDecontam, FindInSources
from finephrase.verify.run import make_reader

SOURCE = "output/finephrase-dedup"  # a finished run or dedup output
OUTPUT = "output/finephrase-clean"  # a new folder: same layout, plus removed/<prompt>/
BENCHMARKS = [  # NAME=PATH[#LAYOUT] or NAME=PATH#COLUMN,COLUMN: local or hf:// parquet/jsonl/json files
    "gsm8k=hf://datasets/openai/gsm8k/main/test-*.parquet#gsm8k",
    "mmlu=hf://datasets/cais/mmlu/all/test-*.parquet#mmlu",
]
NGRAM = 10  # words per n-gram
AUDIT_ONLY = False  # True: remove nothing, list the overlapping rows in OUTPUT/flagged/<prompt>/
CHECK_SOURCES = True  # also read the run's inputs again: did the source page already have the overlap?
TASKS = 16  # shares of the data files for the filter stage
WORKERS = 4  # without --slurm: tasks run at once here

# SLURM settings (only used with --slurm): a CPU partition is enough
SLURM = dict(partition="cpu", qos="", time="04:00:00", cpus_per_task=2, mem_per_cpu_gb=4,
             venv_path=".venv/bin/activate")
SUBMIT = "--slurm" in sys.argv[1:]


def executor(name, pipeline, tasks, logging_dir, depends=None):
    """Here a LocalPipelineExecutor; with --slurm a job array named after the stage."""
    if SUBMIT:
        return SlurmPipelineExecutor(pipeline, tasks=tasks, logging_dir=logging_dir, job_name=f"decontam-{name}",
                                     depends=depends, **SLURM)
    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(WORKERS, tasks), logging_dir=logging_dir,
                                 depends=depends)


def decontaminate(plan):
    """The stages, each waiting for the one before; returns the last one (finalize). `w`: OUTPUT/.decontam."""
    source, output, w = str(plan.source), str(plan.output), plan.work_dir  # absolute: jobs may start elsewhere

    # index (one task): the benchmarks' n-grams, built once, read by every task after it
    last = executor("index", [
        BuildIndex(BENCHMARKS, f"{w}/index", n=NGRAM),
    ], tasks=1, logging_dir=f"{w}/logs/index")

    if CHECK_SOURCES:  # the run's inputs, read by its own reader with its own task count
        last = executor("sources", [
            make_reader(plan.manifest["config"]),
            FindInSources(f"{w}/index", f"{w}/sources"),
        ], tasks=int(plan.manifest["config"]["tasks"]), logging_dir=f"{w}/logs/sources", depends=last)

    # filter: each data file into OUTPUT/<prompt>/ and OUTPUT/removed/<prompt>/ (or flagged/)
    last = executor("filter", [
        DecontaminateFiles(source, output, plan.prompts, audit_only=AUDIT_ONLY, check_sources=CHECK_SOURCES),
    ], tasks=TASKS, logging_dir=f"{w}/logs/filter", depends=last)

    # finalize: every row kept or removed exactly once, OUTPUT/manifest.json
    return executor("finalize", [
        FinalizeDecontam(source, output, plan.prompts, plan.record),
    ], tasks=1, logging_dir=f"{w}/logs/finalize", depends=last)


if __name__ == "__main__":  # required: datatrove's workers re-import this file
    plan = DecontamPlan(SOURCE, OUTPUT, BENCHMARKS, n=NGRAM, tasks=TASKS, audit_only=AUDIT_ONLY,
                        check_sources=CHECK_SOURCES)  # checks SOURCE and the specs, records the settings
    if plan.done:
        print(render_summary(plan.result(), OUTPUT))
        sys.exit(0)
    decontaminate(plan).run()  # here: every stage, dependencies first; SLURM: submits the jobs
    if not SUBMIT:
        print(render_summary(plan.result(), OUTPUT))
