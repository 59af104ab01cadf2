"""A stage of a post-run command (dedup, decontaminate): one datatrove step list run as an array of tasks, and
running it on this machine with finephrase's LocalExecutor; the command's OUTPUT folder (checked, resumed or
started over). On SLURM, a pipeline file gives the same lists to
datatrove's SlurmPipelineExecutor, one job array per stage (pipelines/dedup.py, pipelines/decontaminate.py)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from finephrase.errors import UsageError
from finephrase.store.layout import durable_write


def slug(name: str) -> str:
    """A stage's name as part of a job name: "faq: exact 1/3 signatures" -> "faq-exact-1of3-signatures"."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name.replace("/", "of")).strip("-")


@dataclass
class Stage:
    """One datatrove pipeline to run with `tasks` tasks, its logs and completion markers in `logging_dir`."""

    name: str
    pipeline: list
    tasks: int
    logging_dir: str

    @property
    def slug(self) -> str:
        """The name as a job name: "faq: exact 1/3 signatures" -> "faq-exact-1of3-signatures"."""
        return slug(self.name)


def run_stage(stage: Stage, workers: int, label: str) -> str:
    """Run one stage with finephrase's LocalExecutor (quiet console; task logs in the stage's logging_dir)."""
    from finephrase.run.executor import LocalExecutor, setup_console_logging

    ex = LocalExecutor(stage.pipeline, tasks=stage.tasks, workers=max(1, min(workers, stage.tasks)),
                       logging_dir=stage.logging_dir)
    todo = len(ex.get_incomplete_ranks())
    tasks = f"{stage.tasks} task" + ("s" if stage.tasks != 1 else "")
    if todo == 0:
        return f"{label}  {tasks}, done before"
    t0 = time.monotonic()
    # datatrove's stages draw tqdm bars on stderr; here they and its console logs go nowhere (the task logs in
    # logging_dir keep everything; an error still ends the command with one line)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ex.run()
    finally:
        setup_console_logging()
    again = f" ({stage.tasks - todo} done before)" if todo < stage.tasks else ""
    return f"{label}  {tasks}{again}, {time.monotonic() - t0:.1f}s"


def check_output_folder(source: Path, output: Path, what: str) -> None:
    """A post-run command's OUTPUT must be a folder of its own: not SOURCE (named `what` in the error), not
    inside it (it would look like a prompt folder), not around it."""
    if output == source:
        raise UsageError(f"--output must be a new folder, not {what} itself ({source})")
    if source in output.parents:
        raise UsageError(f"--output must not be inside {what} ({output} is in {source}): it would look like a "
                         f"prompt folder of the run")
    if output in source.parents:
        raise UsageError(f"--output must not contain {what} ({source} is in {output})")


def prepare_output(out: Path, work_dir: str, settings_file: str, settings: dict, overwrite: bool, command: str,
                   noun: str) -> None:
    """OUTPUT for a post-run command (`finephrase COMMAND`, whose work is `noun`, e.g. "a dedup"): new, or this
    command's earlier output with the same settings (resumed); other settings are refused unless `overwrite`,
    which deletes it. The settings go into OUTPUT/<work_dir>/<settings_file>."""
    path = out / work_dir / settings_file
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out} is a file, not a folder")
    existing = None
    if path.is_file():
        try:
            existing = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            existing = {}
    elif out.is_dir() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not a `finephrase {command}` output: choose another --output")
    if existing is not None and (overwrite or existing != settings):
        if not overwrite:
            diff = ", ".join(f"{k}: {existing.get(k)!r} -> {v!r}" for k, v in settings.items()
                             if existing.get(k) != v) or "unreadable settings"
            raise UsageError(f"{out} holds {noun} with other settings ({diff}): pass --overwrite to redo "
                             f"it, or choose another --output")
        shutil.rmtree(out)
    (out / work_dir).mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        durable_write(path, orjson.dumps(settings, option=orjson.OPT_INDENT_2))


def run_stages(stages: list[Stage], workers: int, echo=print) -> None:
    """Every stage here, in order, `workers` tasks at a time; one line per stage (tasks done before are skipped)."""
    width = max(len(s.name) for s in stages)
    digits = len(str(len(stages)))
    for i, s in enumerate(stages, 1):
        echo(run_stage(s, workers, f"[{i:>{digits}}/{len(stages)}] {s.name:<{width}}"))


def quiet_datatrove() -> None:
    """datatrove's expected warnings stay in the task logs, and no progress bars from --workers processes."""
    os.environ.setdefault("FINEPHRASE_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TQDM_DISABLE", "1")


def add_stage_options(p, tasks_help: str, redo: str) -> None:
    """--tasks, --workers and --overwrite of a post-run command (`redo`: what --overwrite deletes)."""
    from finephrase.argtypes import positive_int

    p.add_argument("--tasks", type=positive_int, default=1, help=f"{tasks_help} (1)")
    p.add_argument("--workers", type=positive_int, default=1, help="tasks run at once on this machine (1)")
    p.add_argument("--overwrite", action="store_true", help=f"delete {redo} in OUT and redo it")


def run_command(plan, output: str, done_line: str, start_line, workers: int, render) -> int:
    """A post-run command's main once its plan is made (dedup, decontaminate, score): a finished output says so
    (`done_line`) and shows its summary; otherwise `start_line()` is printed, the stages run here in `workers`
    processes, and the summary follows. `render(result, output)` writes the summary."""
    if plan.done:
        print(f"{plan.output}: {done_line} with these settings (pass --overwrite to redo)")
        print(render(plan.result(), output))
        return 0
    print(start_line(), flush=True)
    result = plan.run_local(workers, echo=lambda line: print(line, flush=True))
    print(render(result, output))
    return 0
