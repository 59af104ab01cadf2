"""One exit-code ladder for everything that ends a command: the `finephrase` CLI and a pipeline file
(`run(pipeline, exit_on_error=True)`). An error ends it with one line on stderr and its code:

    75   drained (SIGTERM, SLURM's warning signal): what was committed is kept; rerun (or requeue) to resume
    2    bad settings or input (a FinephraseError: its message is the line)
    130  interrupted (Ctrl-C)
    1    anything else (a task failed inside the executor: its traceback is in the task's log)
"""

from __future__ import annotations

from finephrase.errors import FinephraseError
from finephrase.process.drain import DRAINED_EXIT_CODE, Drained

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130
FAILED_EXIT_CODE = 1


def ending(e: BaseException, interrupted: str, task_logs: str | None = None) -> tuple[str, int] | None:
    """(the line, the exit code) that ends a command on `e`, or None for what is not ours to end (SystemExit).
    `interrupted`: what the line says after Ctrl-C; `task_logs`: where a failed task's traceback is."""
    if isinstance(e, Drained):
        return f"drained: {e}; rerun the same command (or requeue) to resume", DRAINED_EXIT_CODE
    if isinstance(e, FinephraseError):
        return f"error: {e}", USAGE_EXIT_CODE
    if isinstance(e, KeyboardInterrupt):
        return f"\ninterrupted: {interrupted}", INTERRUPTED_EXIT_CODE
    if isinstance(e, Exception):
        return f"error: {type(e).__name__}: {e}" + (f" (task logs: {task_logs}/)" if task_logs else ""), \
            FAILED_EXIT_CODE
    return None
