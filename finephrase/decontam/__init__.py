"""`finephrase decontaminate SOURCE --benchmarks SPEC... --output OUT`: take out (or flag) the rows of a finished
run or dedup output that reproduce benchmark text.

Stages (each a datatrove pipeline; on SLURM one job array each, see pipelines/decontaminate.py):

    index     the benchmarks' n-gram index, built once into OUT/.decontam/index/            1 task
    sources   the run's inputs read again: which source documents overlap (--check-sources)  the run's tasks
    filter    each data file split into OUT/<prompt>/ and OUT/removed/<prompt>/              --tasks
    finalize  counts checked, OUT/manifest.json with a `decontamination` record              1 task

Rows are never changed; a row is removed when it contains one indexed n-gram (finephrase/contamination/ says
what is indexed and how texts are normalized). OUT/manifest.json, written last, marks a complete run of the
command; until then the same command resumes.

Modules: `plan` (settings, the check of SOURCE, running the stages here), `stages` (each stage's steps; imports
datatrove), `render` (the summary), `command` (argparse and `main`).
"""

from finephrase.decontam.command import add_parser, main
from finephrase.decontam.plan import SETTINGS, WORK_DIR, DecontamPlan, check_source
from finephrase.decontam.render import render_summary

__all__ = ["SETTINGS", "WORK_DIR", "DecontamPlan", "add_parser", "check_source", "main", "render_summary"]
