"""Deduplicate a finished run: exact, then near (MinHash) duplicates, per prompt or across the whole run.

The same stages as `finephrase dedup` (see docs/dedup.md), spelled out as datatrove executors you can edit, in
the shape of datatrove's examples/minhash_deduplication.py: each stage is a list of steps, run by an executor
that `depends` on the stage before. Run it from the repository root:

    python pipelines/dedup.py            # here, stage after stage; rerun to resume
    python pipelines/dedup.py --slurm    # submit every stage as a SLURM job array that starts when the stage
                                         # before it succeeded (sbatch --dependency=afterok), then return

Submit from a login node (not from inside a SLURM job). `squeue --me` shows the jobs; when the last one
(dedup-finalize) has finished, OUTPUT/manifest.json holds the counts. Resubmitting skips what completed.

Unedited, the lists are those of `finephrase dedup` (finephrase/dedup/stages.py), so the output is the same as
`finephrase dedup RUN --output OUTPUT --scope SCOPE --tasks TASKS` with these MinHash settings. A stage reads
what the stage before wrote in its unit's work folder `w`: keep the folder names in step when editing.
"""

import sys

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter, ExactDedupSignature, ExactFindDedups
from datatrove.pipeline.dedup.minhash import (
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)

from finephrase.dedup import DedupPlan, exact_config, job_name, minhash_config, render_summary
from finephrase.pipeline.dedup import (
    Finalize,
    KeptIndex,
    RemovedWriter,
    RemoveFilesForClusters,
    RowsReader,
    RowsWriter,
    SplitWords,
)

RUN = "output/finephrase"  # a finished run (`finephrase verify` passes)
OUTPUT = "output/finephrase-dedup"  # a new folder: same layout as a run, plus removed/<prompt>/
SCOPE = "prompt"  # "prompt": duplicates within each prompt; "run": across all prompts too
TASKS = 16  # shards of the rows (by file) for the reading stages
MINHASH = minhash_config(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)  # ~0.72 Jaccard similarity
EXACT = exact_config()  # exact duplicates: the same text after case folding and whitespace collapsing
WORKERS = 4  # without --slurm: tasks run at once here

# SLURM settings (only used with --slurm): a CPU partition is enough
SLURM = dict(partition="cpu", qos="", time="04:00:00", cpus_per_task=2, mem_per_cpu_gb=4,  # qos "": the default
             venv_path=".venv/bin/activate")
SUBMIT = "--slurm" in sys.argv[1:]


def executor(name, pipeline, tasks, logging_dir, depends=None, depends_job_id=None):
    """One datatrove executor per stage: here a LocalPipelineExecutor; with --slurm a job array named after the
    stage. `depends`: the executor of the stage it waits for."""
    if SUBMIT:
        return SlurmPipelineExecutor(pipeline, tasks=tasks, logging_dir=logging_dir, job_name=job_name(name),
                                     depends=depends, depends_job_id=depends_job_id, **SLURM)
    return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(WORKERS, tasks), logging_dir=logging_dir,
                                 depends=depends)


def dedup_unit(run, output, unit):
    """The seven stages of one unit (a prompt, or the whole run), each waiting for the one before; returns the
    last one. `w`: the unit's work folder, OUTPUT/.dedup/prompt/<prompt> or OUTPUT/.dedup/run."""
    w, label = unit.folder, unit.label

    # exact 1/3: the hash of each row's normalized text
    exact_signatures = executor(f"{label}: exact 1/3 signatures", [
        RowsReader(run, unit.prompts),
        ExactDedupSignature(f"{w}/exact_sigs", config=EXACT),
    ], tasks=TASKS, logging_dir=f"{w}/logs/exact_signatures")

    # exact 2/3: the rows whose hash an earlier row has
    exact_find = executor(f"{label}: exact 2/3 find", [
        ExactFindDedups(f"{w}/exact_sigs", f"{w}/exact_dups", config=EXACT),
    ], tasks=1, logging_dir=f"{w}/logs/exact_find", depends=exact_signatures)

    # exact 3/3: the same rows again (same reader, same TASKS); duplicates aside, the kept ones to exact_kept/
    exact_filter = executor(f"{label}: exact 3/3 filter", [
        RowsReader(run, unit.prompts),
        ExactDedupFilter(f"{w}/exact_dups", config=EXACT,
                         exclusion_writer=RemovedWriter(f"{w}/removed/exact", "exact")),
        KeptIndex(f"{w}/kept/exact", "exact"),  # which kept row each removed one duplicates
        RowsWriter(f"{w}/exact_kept", "${rank}.parquet"),
    ], tasks=TASKS, logging_dir=f"{w}/logs/exact_filter", depends=exact_find)

    # near 1/4: MinHash signatures of the rows left after exact dedup
    near_signatures = executor(f"{label}: near 1/4 signatures", [
        RowsReader(f"{w}/exact_kept"),
        MinhashDedupSignature(f"{w}/minhash_sigs", config=MINHASH, language=SplitWords()),
    ], tasks=TASKS, logging_dir=f"{w}/logs/near_signatures", depends=exact_filter)

    # near 2/4: the pairs of rows that share a bucket, one task per bucket
    near_buckets = executor(f"{label}: near 2/4 buckets", [
        MinhashDedupBuckets(f"{w}/minhash_sigs", f"{w}/minhash_buckets", config=MINHASH),
    ], tasks=MINHASH.num_buckets, logging_dir=f"{w}/logs/near_buckets", depends=near_signatures)

    # near 3/4: pairs chained into clusters (cluster ids kept for duplicate_of)
    near_clusters = executor(f"{label}: near 3/4 clusters", [
        MinhashDedupCluster(f"{w}/minhash_buckets", f"{w}/minhash_clusters", config=MINHASH,
                            save_cluster_id=True),
        RemoveFilesForClusters(f"{w}/minhash_clusters"),
    ], tasks=1, logging_dir=f"{w}/logs/near_clusters", depends=near_buckets)

    # near 4/4: the same rows as near 1/4; all but one row of each cluster aside, the others to OUTPUT/<prompt>/
    return executor(f"{label}: near 4/4 filter", [
        RowsReader(f"{w}/exact_kept"),
        MinhashDedupFilter(f"{w}/minhash_clusters", load_cluster_ids=True,
                           exclusion_writer=RemovedWriter(f"{w}/removed/near", "near")),
        KeptIndex(f"{w}/kept/near", "near"),
        RowsWriter(output),
    ], tasks=TASKS, logging_dir=f"{w}/logs/near_filter", depends=near_clusters)


if __name__ == "__main__":  # required: datatrove's workers re-import this file
    plan = DedupPlan(RUN, OUTPUT, scope=SCOPE, tasks=TASKS, minhash=MINHASH)  # checks RUN, records the settings
    if plan.done:  # finished before: only the counts
        print(render_summary(plan.result(), OUTPUT))
        sys.exit(0)
    run, output = str(plan.run), str(plan.output)  # absolute paths: SLURM jobs may start elsewhere
    lasts = []
    for unit in plan.units():  # one per prompt (SCOPE "prompt") or one for the run; units are independent
        last = dedup_unit(run, output, unit)
        last.run()  # here: runs the unit's stages (its dependencies first); SLURM: submits the unit's jobs
        lasts.append(last)

    # finalize, after the last stage of every unit: removed rows with duplicate_of to OUTPUT/removed/, counts
    # checked, OUTPUT/manifest.json
    job_ids = [str(e.job_id) for e in lasts if e.job_id not in (None, -1)] if SUBMIT else []
    executor("finalize", [
        Finalize(run, output, plan.prompts, plan.units(), plan.record),
    ], tasks=1, logging_dir=f"{plan.work_dir}/logs/finalize", depends_job_id=":".join(job_ids) or None).run()
    if not SUBMIT:
        print(render_summary(plan.result(), OUTPUT))
