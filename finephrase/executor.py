"""datatrove's LocalPipelineExecutor, with console logs that fit a CLI.

datatrove logs a task's exception with its full traceback to the console; a finephrase run-level error
(`FinephraseError`) is one line on the console instead. The task's log file (DIR/logs/logs/task_*.log) still
holds everything at DEBUG level, tracebacks included.
"""

from __future__ import annotations

import io

import datatrove.executor.base as dt_base
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.utils.logging import logger

from finephrase.layout import durable_write
from finephrase.console import setup_console_logging  # noqa: F401  (re-exported)


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


class LocalExecutor(LocalPipelineExecutor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _atomic_shared_files(self.logging_dir)

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        originals = dt_base.add_task_logger, dt_base.close_task_logger
        dt_base.add_task_logger, dt_base.close_task_logger = add_task_logger, close_task_logger
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        finally:
            dt_base.add_task_logger, dt_base.close_task_logger = originals
