"""The re-check of a folder's units, in this process or spread over worker processes, and the report."""

from __future__ import annotations

from pathlib import Path

from finephrase.quality.recheck.plan import Plan, Unit, make_plan
from finephrase.quality.recheck.stream import check_unit
from finephrase.quality.recheck.tally import EXAMPLES, Tally


def _work(args: tuple) -> Tally:
    return check_unit(*args)


def check(plan: Plan, units: list[Unit], workers: int = 1, examples: int = EXAMPLES) -> Tally:
    """The tally of `units` of the plan; with workers > 1, the units are shared out to that many processes
    (spawned: nothing of this process is inherited) and their tallies merged (the same result, in any order)."""
    total = Tally(plan.prompts, examples)
    jobs = [(str(plan.root), plan.cfg, plan.source_checks, examples, u) for u in units]
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            total.merge(_work(job))
        return total
    import multiprocessing
    import os

    from finephrase.process.children import helper_init

    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs)), initializer=helper_init,
                                                   initargs=(os.getpid(),)) as pool:
        for tally in pool.imap_unordered(_work, jobs, chunksize=1):
            total.merge(tally)
    return total


def report(plan: Plan, tally: Tally) -> dict:
    """The report: whether the copy and off-topic checks ran (and if not, why), and per prompt rows, would_reject,
    reasons and examples."""
    out = {"source_checks": plan.source_checks, "prompts": tally.report()}
    if plan.skipped:
        out["source_skipped"] = plan.skipped
    return out


def recheck(root: str | Path, use_source: bool = True, examples: int = EXAMPLES, workers: int = 1) -> dict:
    """`finephrase gate DIR` in Python: the report of every published row of the folder."""
    plan = make_plan(Path(root), use_source)
    return report(plan, check(plan, plan.units, workers, examples))
