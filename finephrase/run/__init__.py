"""Running a pipeline: the orchestration (`runner.py`: `run()`, `execute()`, `slurm_task()`), the run's settings
(`settings.py`: one table for the CLI, RunConfig and sweeps; `config.py`: RunConfig and the step list it builds),
the checks before anything starts (`preflight.py`), the run's manifest (`manifest.py`) and datatrove's local
executor made safe for many tasks (`executor.py`).

`from finephrase.run import run, slurm_task` is what a pipeline file needs; the names are loaded on first use,
so a command that only reads `finephrase.run.settings` does not import the pipeline, datatrove and the engines.
"""

from __future__ import annotations

_RUNNER_NAMES = ("run", "execute", "slurm_task", "summary", "RunConfig", "build_pipeline", "make_server",
                 "BACKEND_DEFAULTS")


def __getattr__(name: str):
    if name in _RUNNER_NAMES:
        from finephrase.run import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'finephrase.run' has no attribute '{name}'")


__all__ = list(_RUNNER_NAMES)
