"""`finephrase sweep FILE`: a grid of rephrasing runs, prompts x models x sources, one run per grid point.

    finephrase sweep pipelines/sweep_example.toml --dry-run       # what would run, what is skipped and why
    finephrase sweep pipelines/sweep_example.toml --submit        # one sbatch array job per point (slurm/rephrase.sh)
    finephrase sweep pipelines/sweep_example.toml --local         # the points one after another, here

FILE is TOML, or Python defining a dict `SWEEP` with the same keys (docs/sweeps.md):

    output_root = "output/sweeps/demo"          # each point writes ROOT/<source>/<model>/<prompt>/
    [settings]                                  # common settings: RunConfig.for_backend keywords (the
                                                # sweepable ones of finephrase/run/settings.py)
    backend = "vllm"
    [[sources]]                                 # name, inputs, optional where; any setting may be overridden
    name = "fwe-hq"
    inputs = ["hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT"]
    where = ["int_score >= 4"]
    [[grids]]                                   # prompts x models x sources (default: all sources)
    prompts = ["faq", "math"]
    models = ["smollm2-1.7b", "gemma3-1b"]

Several grids may share points (the same folder): such a point runs once. A point whose manifest says
`finished` is skipped, one whose folder holds an unfinished run resumes it. Submissions are recorded in
ROOT/.sweep/submissions.jsonl; a point submitted before and not finished is not submitted again while its job is
still queued or running (asked with `squeue`), since two jobs on one run folder would write the same tasks twice.
"""

from finephrase.sweep.command import add_parser, main
from finephrase.sweep.definition import check_settings, load_definition, load_sweep, model_label
from finephrase.sweep.definition import check_settings as _check_settings  # the name tests know it by
from finephrase.sweep.launch import find_script, run_locally, sbatch_command, submit
from finephrase.sweep.point import Point, Sweep
from finephrase.sweep.state import SUBMISSIONS, State, active_jobs, point_state, submissions

__all__ = ["SUBMISSIONS", "Point", "State", "Sweep", "_check_settings", "active_jobs", "add_parser", "check_settings",
           "find_script", "load_definition", "load_sweep", "main", "model_label", "point_state", "run_locally",
           "sbatch_command", "submissions", "submit"]
