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

Modules: `plan` (settings, the check of RUN, DedupPlan and its units, running stages here), `stages` (each
stage's list of steps; imports datatrove, so it loads only when used), `render` (the counts table), `command`
(argparse and `main`).
"""

from __future__ import annotations

import importlib

from finephrase.dedup.command import add_parser, main
from finephrase.dedup.plan import (
    DEFAULT_MINHASH,
    EXACT_NORMALIZATION,
    SCOPES,
    SETTINGS,
    WORK_DIR,
    DedupPlan,
    Stage,
    Unit,
    approx_threshold,
    check_run,
    exact_config,
    job_name,
    minhash_config,
    run_stage,
)
from finephrase.dedup.render import render_summary

# finephrase.dedup.stages imports datatrove (a third of a second); `finephrase` loads this package for every
# command, so its names load on first use
_STAGES = ("exact_signatures", "exact_find", "exact_filter", "near_signatures", "near_buckets", "near_clusters",
           "near_filter", "finalize", "chain", "logging_dir")


def __getattr__(name: str):
    if name in _STAGES:
        return getattr(importlib.import_module("finephrase.dedup.stages"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_MINHASH", "EXACT_NORMALIZATION", "SCOPES", "SETTINGS", "WORK_DIR", "DedupPlan", "Stage", "Unit",
           "add_parser", "approx_threshold", "check_run", "exact_config", "job_name", "main", "minhash_config",
           "render_summary", "run_stage", *_STAGES]
