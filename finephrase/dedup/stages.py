"""The stages of `finephrase dedup`, each a plain list of datatrove steps (what one datatrove executor runs).

One function per stage, `(plan, unit) -> list`: `plan` a DedupPlan (the run, OUTPUT, the settings), `unit` one of
`plan.units()` (its prompts, its work folder `w` = OUTPUT/.dedup/<unit>). A stage reads what the stage before it
wrote in `w`, so each one depends on the one before:

    stage                  steps                                                               tasks
    exact 1/3 signatures   RowsReader(RUN) -> ExactDedupSignature(w/exact_sigs)                  --tasks
    exact 2/3 find         ExactFindDedups(w/exact_sigs -> w/exact_dups)                          1
    exact 3/3 filter       RowsReader(RUN) -> ExactDedupFilter(w/exact_dups, exclusion_writer=
                           RemovedWriter exact) -> KeptIndex exact -> RowsWriter(w/exact_kept)    --tasks
    near 1/4 signatures    RowsReader(w/exact_kept) -> MinhashDedupSignature(w/minhash_sigs)      --tasks
    near 2/4 buckets       MinhashDedupBuckets(w/minhash_sigs -> w/minhash_buckets)               --buckets
    near 3/4 clusters      MinhashDedupCluster(-> w/minhash_clusters) -> RemoveFilesForClusters   1
    near 4/4 filter        RowsReader(w/exact_kept) -> MinhashDedupFilter(w/minhash_clusters,
                           exclusion_writer=RemovedWriter near) -> KeptIndex near -> RowsWriter(OUT)  --tasks
    finalize               Finalize, after the last stage of every unit                           1

`chain(plan, unit)` turns them into the Stage objects `finephrase dedup` runs; `pipelines/dedup.py` spells the
same lists out, as datatrove executors to edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter, ExactDedupSignature, ExactFindDedups
from datatrove.pipeline.dedup.minhash import (
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)

from finephrase.dedup.units import Stage, Unit, exact_config
from finephrase.pipeline.dedup import (
    Finalize,
    KeptIndex,
    RemovedWriter,
    RemoveFilesForClusters,
    RowsReader,
    RowsWriter,
    SplitWords,
)

if TYPE_CHECKING:  # the plan imports this module's stages
    from finephrase.dedup.plan import DedupPlan


def exact_signatures(plan: DedupPlan, unit: Unit) -> list:
    """exact 1/3: the hash of each row's normalized text."""
    w = unit.folder
    return [
        RowsReader(str(plan.run), unit.prompts),
        ExactDedupSignature(f"{w}/exact_sigs", config=exact_config()),
    ]


def exact_find(plan: DedupPlan, unit: Unit) -> list:
    """exact 2/3 (one task): the rows whose hash an earlier row has."""
    w = unit.folder
    return [
        ExactFindDedups(f"{w}/exact_sigs", f"{w}/exact_dups", config=exact_config()),
    ]


def exact_filter(plan: DedupPlan, unit: Unit) -> list:
    """exact 3/3: the same rows as exact 1/3 (same reader, same tasks); the duplicates go aside, the kept row of
    each group is noted, the others are copied to `exact_kept/` for the near stages."""
    w = unit.folder
    return [
        RowsReader(str(plan.run), unit.prompts),
        ExactDedupFilter(f"{w}/exact_dups", config=exact_config(),
                         exclusion_writer=RemovedWriter(f"{w}/removed/exact", "exact")),
        KeptIndex(f"{w}/kept/exact", "exact"),
        RowsWriter(f"{w}/exact_kept", "${rank}.parquet"),
    ]


def near_signatures(plan: DedupPlan, unit: Unit) -> list:
    """near 1/4: MinHash signatures of the rows left after exact dedup."""
    w = unit.folder
    return [
        RowsReader(f"{w}/exact_kept"),
        MinhashDedupSignature(f"{w}/minhash_sigs", config=plan.minhash, language=SplitWords()),
    ]


def near_buckets(plan: DedupPlan, unit: Unit) -> list:
    """near 2/4 (one task per bucket): the pairs of rows that share a bucket."""
    w = unit.folder
    return [
        MinhashDedupBuckets(f"{w}/minhash_sigs", f"{w}/minhash_buckets", config=plan.minhash),
    ]


def near_clusters(plan: DedupPlan, unit: Unit) -> list:
    """near 3/4 (one task): the pairs chained into clusters; all but one row of each go."""
    w = unit.folder
    return [
        MinhashDedupCluster(f"{w}/minhash_buckets", f"{w}/minhash_clusters", config=plan.minhash,
                            save_cluster_id=True),
        RemoveFilesForClusters(f"{w}/minhash_clusters"),
    ]


def near_filter(plan: DedupPlan, unit: Unit) -> list:
    """near 4/4: the same rows as near 1/4; the near duplicates go aside, the kept row of each cluster is noted,
    the others are the output, OUT/<prompt>/."""
    w = unit.folder
    return [
        RowsReader(f"{w}/exact_kept"),
        MinhashDedupFilter(f"{w}/minhash_clusters", load_cluster_ids=True,
                           exclusion_writer=RemovedWriter(f"{w}/removed/near", "near")),
        KeptIndex(f"{w}/kept/near", "near"),
        RowsWriter(str(plan.output)),
    ]


def finalize(plan: DedupPlan) -> list:
    """The last stage (one task, after every unit): removed rows with `duplicate_of` to OUT/removed/, counts
    checked, OUT/manifest.json."""
    return [
        Finalize(str(plan.run), str(plan.output), plan.prompts, plan.units(), plan.record),
    ]


def logging_dir(unit: Unit, stage: str) -> str:
    """A stage's datatrove logging_dir: "exact 1/3 signatures" -> <unit folder>/logs/exact_signatures."""
    kind, _, what = stage.split(" ")
    return f"{unit.folder}/logs/{kind}_{what}"


def chain(plan: DedupPlan, unit: Unit) -> list[Stage]:
    """The seven stages of a unit, in the order they run, as `finephrase dedup` runs them."""
    n = plan.tasks
    stages = [
        ("exact 1/3 signatures", exact_signatures, n),
        ("exact 2/3 find", exact_find, 1),
        ("exact 3/3 filter", exact_filter, n),
        ("near 1/4 signatures", near_signatures, n),
        ("near 2/4 buckets", near_buckets, plan.minhash.num_buckets),
        ("near 3/4 clusters", near_clusters, 1),
        ("near 4/4 filter", near_filter, n),
    ]
    return [Stage(f"{unit.label}: {name}", steps(plan, unit), tasks, logging_dir(unit, name))
            for name, steps, tasks in stages]
