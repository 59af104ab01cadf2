"""Console logging for the CLI process (loguru, which datatrove logs through too), without importing datatrove:
commands that do not run a pipeline start faster."""

from __future__ import annotations

import os
import sys

from loguru import logger


def _console_format(record) -> str:
    return "{time:HH:mm:ss} | <level>{level: <7}</level> | {message}\n"


def setup_console_logging(level: str | None = None):
    """Console logging: WARNING and up (FINEPHRASE_LOG_LEVEL=INFO for more), one line each."""
    logger.remove()
    level = level or os.environ.get("FINEPHRASE_LOG_LEVEL", "WARNING")
    logger.add(sys.stderr, level=level, format=_console_format, colorize=False, filter=_not_a_task_failure)


def _not_a_task_failure(record) -> bool:
    """datatrove logs a failing task's exception as ERROR; the task log keeps it and the CLI prints the one-line
    `error: ...` with the log's path, so the console does not show it twice."""
    return not (record["level"].no >= 40 and (record["name"] or "").startswith("datatrove"))
