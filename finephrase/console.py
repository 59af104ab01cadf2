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
    logger.add(sys.stderr, level=level, format=_console_format, colorize=False)
