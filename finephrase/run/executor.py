"""datatrove's LocalPipelineExecutor, with console logs that fit a CLI and no process that outlives the run.

datatrove logs a task's exception with its full traceback to the console; a finephrase run-level error
(`FinephraseError`) is one line on the console instead. The task's log file (DIR/logs/logs/task_*.log) still
holds everything at DEBUG level, tracebacks included.

Processes: datatrove's `run` starts a `multiprocess.Manager()` server process (forked from the command, so with
its drain handler) even for one worker, and for several a pool; killed with `kill -9`, the command left them
running. Here one worker runs with no Manager process (a plain queue holds its one local rank), and the Manager
and the pool workers of several are helpers that die with the command (children.py).
"""

from __future__ import annotations

import io
import os
import queue

import datatrove.executor.base as dt_base
import datatrove.executor.local as dt_local
import multiprocess
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.utils.logging import logger
from multiprocess.managers import SyncManager

from finephrase.process.children import helper_init
from finephrase.process.console import setup_console_logging  # noqa: F401  (re-exported)
from finephrase.store.layout import durable_write


def _file_format(record) -> str:
    return "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}\n{exception}"


def add_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "a")  # append: earlier attempts stay readable
    setup_console_logging(None if local_rank == 0 else "ERROR")
    logger.add(logfile, level="DEBUG", format=_file_format, colorize=False)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def close_task_logger(logfile):
    logger.complete()
    setup_console_logging()  # datatrove would put back its DEBUG console logger here
    logfile.close()


# written by every task of a run into the same logging folder: replaced atomically, never written in place (a
# hundred array tasks that start together would interleave their bytes in one file)
SHARED_LOG_FILES = ("executor.json", "stats.json")


class _AtomicText(io.StringIO):
    """A text file that lands at `path` only when closed, by durable_write (tmp file of its own, then rename)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            durable_write(self.path, self.getvalue())
        super().close()


def _atomic_shared_files(folder) -> None:
    """Make `folder.open(name, "w...")` of SHARED_LOG_FILES atomic (a local logging folder only)."""
    plain_open = folder.open

    def open_(path, mode="r", *args, **kwargs):
        if path in SHARED_LOG_FILES and "w" in mode and folder.is_local():
            return _AtomicText(folder.resolve_paths(path))
        return plain_open(path, mode, *args, **kwargs)

    folder.open = open_


class _InProcess:
    """The Manager of a one-worker run: nothing to share between processes, so no server process."""

    Queue = queue.Queue

    def shutdown(self):
        pass


class _HelperPools:
    """A multiprocess context whose pool workers are helpers of this process (children.py)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def Pool(self, processes):  # noqa: N802  (multiprocess's name)
        return self.ctx.Pool(processes, initializer=helper_init, initargs=(os.getpid(),))


class _Multiprocess:
    """`multiprocess` as datatrove's LocalPipelineExecutor.run sees it while a LocalExecutor runs."""

    def __init__(self, workers: int):
        self.workers = workers

    def Manager(self):  # noqa: N802
        if self.workers == 1:
            return _InProcess()
        manager = SyncManager(ctx=multiprocess.get_context())
        manager.start(helper_init, (os.getpid(),))
        return manager

    def get_context(self, method=None):
        return _HelperPools(multiprocess.get_context(method))


class LocalExecutor(LocalPipelineExecutor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _atomic_shared_files(self.logging_dir)

    def run(self):
        # datatrove (0.10.1) reaches processes only through `multiprocess.Manager()` and
        # `multiprocess.get_context(...).Pool(n)` in its module: it sees _Multiprocess there while this runs
        previous, dt_local.multiprocess = dt_local.multiprocess, _Multiprocess(self.workers)
        try:
            return super().run()
        finally:
            dt_local.multiprocess = previous

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        originals = dt_base.add_task_logger, dt_base.close_task_logger
        dt_base.add_task_logger, dt_base.close_task_logger = add_task_logger, close_task_logger
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        finally:
            dt_base.add_task_logger, dt_base.close_task_logger = originals
