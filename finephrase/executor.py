"""datatrove's LocalPipelineExecutor, with console logs that fit a CLI.

datatrove logs a task's exception with its full traceback to the console; a finephrase run-level error
(`FinephraseError`) is one line on the console instead. The task's log file (DIR/logs/logs/task_*.log) still
holds everything at DEBUG level, tracebacks included.
"""

from __future__ import annotations

import datatrove.executor.base as dt_base
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.utils.logging import logger

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


class LocalExecutor(LocalPipelineExecutor):
    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        originals = dt_base.add_task_logger, dt_base.close_task_logger
        dt_base.add_task_logger, dt_base.close_task_logger = add_task_logger, close_task_logger
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        finally:
            dt_base.add_task_logger, dt_base.close_task_logger = originals
