"""Deduplicate a finished run: exact, then near (MinHash) duplicates, per prompt or across the whole run.

The same stages as `finephrase dedup` (see docs/dedup.md), as datatrove executors you can edit. Run it from the
repository root:

    python pipelines/dedup.py            # here, stage after stage; rerun to resume
    python pipelines/dedup.py --slurm    # submit every stage as a SLURM job array that starts when the stage
                                         # before it succeeded (sbatch --dependency=afterok), then return

Submit from a login node (not from inside a SLURM job). `squeue --me` shows the jobs; when the last one
(dedup-finalize) has finished, OUTPUT/manifest.json holds the counts. Resubmitting skips what completed.
"""

import sys

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor

from finephrase.dedup import DedupPlan, minhash_config, render_summary

RUN = "output/finephrase"  # a finished run (`finephrase verify` passes)
OUTPUT = "output/finephrase-dedup"  # a new folder: same layout as a run, plus removed/<prompt>/
SCOPE = "prompt"  # "prompt": duplicates within each prompt; "run": across all prompts too
TASKS = 16  # shards of the rows (by file) for the reading stages
MINHASH = minhash_config(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)  # ~0.72 Jaccard similarity

# SLURM settings (only used with --slurm): a CPU partition is enough
SLURM = dict(partition="cpu", qos="", time="04:00:00", cpus_per_task=2, mem_per_cpu_gb=4,  # qos "": the default
             venv_path=".venv/bin/activate")


def executor(stage, depends=None, depends_job_id=None, slurm=False):
    """One datatrove executor per stage; `depends`: the stage it waits for."""
    if slurm:
        return SlurmPipelineExecutor(stage.pipeline, tasks=stage.tasks, logging_dir=stage.logging_dir,
                                     job_name=f"dedup-{stage.slug}", depends=depends, depends_job_id=depends_job_id,
                                     **SLURM)
    return LocalPipelineExecutor(stage.pipeline, tasks=stage.tasks, workers=min(4, stage.tasks),
                                 logging_dir=stage.logging_dir, depends=depends)


if __name__ == "__main__":  # required: datatrove's workers re-import this file
    slurm = "--slurm" in sys.argv[1:]
    plan = DedupPlan(RUN, OUTPUT, scope=SCOPE, tasks=TASKS, minhash=MINHASH)  # checks RUN, records the settings
    if plan.done:  # finished before: only the counts
        print(render_summary(plan.result(), OUTPUT))
        sys.exit(0)
    lasts = []
    for chain in plan.chains():  # one chain per prompt (SCOPE "prompt") or one for the run; chains are independent
        last = None
        for stage in chain:
            last = executor(stage, depends=last, slurm=slurm)  # each stage waits for the one before
        last.run()  # here: runs the chain (its dependencies first); SLURM: submits the chain's jobs
        lasts.append(last)
    final = plan.finalize_stage()  # waits for the last stage of every chain
    if slurm:
        job_ids = [str(e.job_id) for e in lasts if e.job_id not in (None, -1)]
        executor(final, depends_job_id=":".join(job_ids) or None, slurm=True).run()
    else:
        executor(final).run()
        print(render_summary(plan.result(), OUTPUT))
