"""Running a rephrasing pipeline: `run(pipeline, output=..., **slurm_task(...))`.

A pipeline is a plain list of datatrove steps (pipelines/*.py, docs/pipelines.md):

    [ResumableReader(...), Select(...), Rephrase(prompts, server, sampling), QualityFilter(), ChunkWriter(OUT)]

`run` reads what the run is from the steps themselves (finephrase/pipeline/shape.py): it checks the inputs,
refuses an output folder that holds a run with other settings (the fingerprint, manifest.py) or resumes it,
starts the model server and stops it (also on errors and Ctrl-C), runs the steps with datatrove's local executor,
and updates the manifest. `finephrase rephrase` builds its list from its flags (`RunConfig`, config.py) and runs
it here too, so a command and the pipeline file with the same settings are the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import orjson

from finephrase.errors import FinephraseError, UsageError
from finephrase.pipeline.readers.resumable import resolve_inputs
from finephrase.pipeline.shape import Shape, connected, inspect_pipeline, with_step
from finephrase.process.drain import drain_on_signals
from finephrase.process.array_task import in_array, task_of, worker_processes
from finephrase.process.exits import ending
from finephrase.run.config import BACKEND_DEFAULTS, RunConfig, build_pipeline, make_server  # noqa: F401  (re-exported)
from finephrase.run.executor import LocalExecutor
from finephrase.run.manifest import (  # noqa: F401
    collect_counts,
    describe_difference,
    finalize_manifest,
    fingerprint,
    input_listing,
    prepare_output,
    same_run,
    session_record,
)
from finephrase.run.preflight import check_inputs
from finephrase.run.summary import summary
from finephrase.serving import Endpoint, LlamaCppServer, ManagedServer
from finephrase.serving.client import ChatClient, RequestRejected, Sampling, api_key_from
from finephrase.serving.handle import ServerHandle
from finephrase.store.layout import LOGS, MANIFEST, read_manifest, recorded_tasks
from finephrase.store.ledger import unfinished_tasks


def run(pipeline: list, *, tasks: int = 1, rank: int | None = None, workers: int = 1, overwrite: bool = False,
        gpus_per_task: int | None = None, output: str | None = None, exit_on_error: bool = False) -> dict:
    """Run (or resume) `pipeline` as `tasks` tasks (only task `rank` with `rank`: one SLURM array task), with
    `workers` processes. `output`, if given, must be the ChunkWriter's folder. Returns the manifest. The list
    is not changed: the run connects its own copy of it to the output folder.

    SIGTERM and SIGUSR1 drain the run (drain.py). Errors are raised (FinephraseError: one line, Drained,
    KeyboardInterrupt); with `exit_on_error=True` (what a pipeline file passes) they end the script the way they
    end `finephrase rephrase`: one line, and exit code 2 (bad settings or input), 75 (drained: rerun to resume),
    130 (interrupted) or 1 (a task failed; its traceback is in the task's log)."""
    drain_on_signals()
    if not exit_on_error:
        return _run(pipeline, tasks, rank, workers, overwrite, gpus_per_task, output)
    try:
        return _run(pipeline, tasks, rank, workers, overwrite, gpus_per_task, output)
    except BaseException as e:  # one line and an exit code, as the CLI's (process/exits.py)
        end = ending(e, "committed chunks are kept; rerun the same command to resume", _task_logs(pipeline))
        if end is None:
            raise
        print(end[0], file=sys.stderr)
        sys.exit(end[1])


def _task_logs(pipeline: list) -> str | None:
    """Where the tasks' logs (a failed task's traceback) are."""
    try:
        return str(Path(inspect_pipeline(pipeline).output) / LOGS / "logs")
    except FinephraseError:
        return None


def _run(pipeline: list, tasks: int, rank: int | None, workers: int, overwrite: bool, gpus_per_task: int | None,
         output: str | None) -> dict:
    t0 = time.monotonic()
    shape = inspect_pipeline(pipeline)
    if output is not None and Path(output).resolve() != Path(shape.output).resolve():
        raise UsageError(f"output {output} is not the ChunkWriter's folder {shape.output}")
    workers = worker_processes(workers, tasks, rank)
    shape = connected(shape)
    out, server, settings = Path(shape.output), shape.rephrase.server, shape.rephrase.settings
    input_files = resolve_inputs(shape.reader.inputs)
    reader = shape.reader  # its id column is checked only when given explicitly (else positional ids are fine)
    check_inputs(input_files, reader.text_column, _conditions(shape),  # before a folder or server exists
                 reader.id_column if getattr(reader, "id_column_given", False) else None)
    if gpus_per_task is None:
        gpus_per_task = 1 if server.backend == "vllm" else 0
    manifest = None
    try:
        if server.backend == "endpoint":  # its model name is needed for the fingerprint (no model is loaded)
            server.start()
        fp = fingerprint(shape, tasks, input_files)
        ranks = [rank] if rank is not None else list(range(tasks))
        if not overwrite and _finished(out, fp, ranks):
            return _already_finished(out, rank, tasks)
        server.check_install()  # vLLM: the recipe's flags and packages against the installed vLLM (vllm_flags.py)
        manifest = prepare_output(out, fp, session_record(shape, workers, rank, gpus_per_task),
                                  shape.rephrase.prompts, rank, overwrite)
        with _started(server, out, rank):
            preflight(server.base_url, server.model, api_key_from(settings.api_key_env), settings.chat_template_kwargs)
            print(f"rephrasing {len(input_files)} input file(s) with "
                  f"{', '.join(p.name for p in shape.rephrase.prompts)} -> {out} ({tasks} task(s), "
                  f"{settings.max_concurrency} requests in flight per task)", file=sys.stderr)
            steps = _shared(shape, workers).steps
            local = dict(local_tasks=1, local_rank_offset=rank) if rank is not None else {}
            LocalExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(out / LOGS), **local).run()
    finally:
        if manifest is not None:  # also after an error or Ctrl-C: the counts of what was committed
            manifest = finalize_manifest(out, tasks, (manifest["sessions"][-1]["id"], ranks))
    print(summary(out, manifest["counts"], time.monotonic() - t0, [p.name for p in shape.rephrase.prompts],
                  constrained=settings.constrain_style is not None), file=sys.stderr)
    return manifest


def _conditions(shape: Shape) -> list[str]:
    return [c for f in shape.source_filters for c in (getattr(f, "setting", None) or {}).get("where", [])]


@contextlib.contextmanager
def _started(server, out: Path, rank: int | None):
    """The run's handle on its server: a managed one is started (its log under DIR/logs/ unless it has one) and
    stopped at the end, also on errors and Ctrl-C; an endpoint was asked already."""
    log = str(out / LOGS / ("server.log" if rank is None else f"server_{rank:05d}.log"))
    if isinstance(server, ManagedServer):
        print(f"starting the {server.backend} model server ({server.model}) ...", file=sys.stderr)
    with ServerHandle(server, log_path=log) as handle:
        if handle.started_here:
            print(f"model server ready at {server.base_url} (log: {server.log_path})", file=sys.stderr)
        yield handle


def _shared(shape: Shape, workers: int) -> Shape:
    """One process: the task gets the server itself and can restart it if it dies; several worker processes
    share it through its address (token counting then needs the GGUF named), in a copy of the step."""
    server, rephrase, settings = shape.rephrase.server, shape.rephrase, shape.rephrase.settings
    if workers == 1:
        return shape
    gguf = settings.tokenizer_gguf
    if isinstance(server, LlamaCppServer) and gguf is None:
        gguf = str(server.gguf_path)
    tty = False if settings.progress_tty is None else settings.progress_tty
    return with_step(shape, rephrase, rephrase.for_run(Endpoint(server.base_url, server.model),
                                                       tokenizer_gguf=gguf, progress_tty=tty))


def _finished(out: Path, fp: dict, ranks: list[int]) -> bool:
    """True when `out` holds this very run (same fingerprint) and every task of `ranks` has finished: nothing
    to start, no server to load."""
    if not (out / MANIFEST).is_file():
        return False
    try:
        old = read_manifest(out)
    except orjson.JSONDecodeError:
        return False
    if not same_run(old.get("config"), fp):
        return False  # prepare_output says so, with its message
    return not unfinished_tasks(out, ranks)


def _already_finished(out: Path, rank: int | None, tasks: int) -> dict:
    what = f"task {rank} of the run" if rank is not None else "the run"
    print(f"{what} in {out} has already finished: nothing to do (no model server started). "
          f"`finephrase verify {out}` checks it; --overwrite starts over", file=sys.stderr)
    manifest = read_manifest(out)
    if rank is None and manifest.get("status") != "finished":  # killed after its last commit
        manifest = finalize_manifest(out, tasks)
    return manifest


def execute(cfg: RunConfig, overwrite: bool = False) -> dict:
    """Run (or resume) the pipeline `cfg` stands for (what `finephrase rephrase` does). Returns the manifest."""
    return run(build_pipeline(cfg), tasks=cfg.tasks, rank=cfg.rank, workers=cfg.workers, overwrite=overwrite,
               gpus_per_task=cfg.gpus_per_task, exit_on_error=False)


def slurm_task(output: str | Path | None = None) -> dict:
    """`rank` and `tasks` for a pipeline definition run as one SLURM array task (slurm/rephrase.sh), else {}.

    The rule of every stage (process/array_task.py): the array index as it is; tasks from FINEPHRASE_TASKS, else
    the existing run's count when `output` holds one (resubmitting a few tasks of an array keeps the sharding),
    else the size of a whole array numbered from 0. FINEPHRASE_RANK overrides the index.
    """
    if not in_array():
        return {}
    rank, tasks = task_of(None, None, recorded_tasks(output) if output is not None else None)
    return {"rank": rank, "tasks": tasks}


def preflight(base_url: str, model: str, api_key: str | None, chat_template_kwargs: dict | None = None):
    """One tiny request, so a wrong model name or a broken server stops the run before any work."""

    async def probe():
        async with ChatClient(base_url, model, timeout=120, max_retries=1, api_key=api_key,
                              chat_template_kwargs=chat_template_kwargs) as c:
            await c.chat([{"role": "user", "content": "Say OK."}], Sampling(max_tokens=1))

    try:
        asyncio.run(probe())
    except RequestRejected as e:
        raise UsageError(f"the server refused a test request for model '{model}' ({e}): check --model") from None
