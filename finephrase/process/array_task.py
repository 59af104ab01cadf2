"""Which share of a job this process is: the one rule every stage uses (rephrase, pipeline files through
`slurm_task`, compact, mix, verify, gate).

- rank: `--rank R` (or FINEPHRASE_RANK), else the SLURM array index as it is (SLURM_ARRAY_TASK_ID, like
  datatrove's SLURM executor: resubmitting `--array=3,7` reruns tasks 3 and 7), else the whole job (0 of 1).
- tasks: `--tasks N` (or FINEPHRASE_TASKS), else the count the run already records (a rephrase run's manifest),
  else the array's size when the array is a whole one numbered from 0 (`--array=0-N`). Any other array (part of
  one, or one starting above 0) must say `--tasks`: its own size is not the run's.
"""

from __future__ import annotations

import os

from finephrase.errors import UsageError


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a task number") from None


def _array_size() -> int:
    """The SLURM array's size when it is a whole array numbered from 0, else a one-line error."""
    low, high, count = (_env_int(f"SLURM_ARRAY_TASK_{k}") for k in ("MIN", "MAX", "COUNT"))
    if high is None and count is not None:
        high = (low or 0) + count - 1
    if high is None:
        raise UsageError("the task count is unknown: pass --tasks N (the run's number of tasks)")
    if (low or 0) != 0 or (count is not None and count != high + 1):
        raise UsageError(f"this SLURM array runs tasks {low}..{high} ({count} of them), not a whole array from 0, "
                         "so its size is not the run's task count: pass --tasks N")
    return high + 1


def task_of(rank: int | None, tasks: int | None, recorded_tasks: int | None = None) -> tuple[int, int]:
    """(rank, tasks) of this process by the module's rule; (0, 1) outside an array when nothing is given."""
    rank = rank if rank is not None else _env_rank()
    tasks = tasks if tasks is not None else _env_int("FINEPHRASE_TASKS")
    tasks = tasks if tasks is not None else recorded_tasks
    if rank is None:
        rank, tasks = 0, tasks or 1
    elif tasks is None:
        tasks = _array_size()
    check_rank(rank, tasks)
    return rank, tasks


def check_rank(rank: int, tasks: int) -> None:
    """A one-line error unless `rank` is one of `tasks` tasks."""
    if tasks < 1 or not 0 <= rank < tasks:
        raise UsageError(f"--rank {rank} is outside 0..{tasks - 1} (--tasks {tasks})")


def worker_processes(workers: int, tasks: int, rank: int | None) -> int:
    """The processes a run uses, by one rule for the command and run(): one for one task of an array (`rank`),
    else `workers`, at most one per task. One-line errors for a count below 1 or a rank outside the tasks."""
    if tasks < 1 or workers < 1:
        raise UsageError("--tasks and --workers must be at least 1")
    if rank is not None:
        check_rank(rank, tasks)
        return 1
    return min(workers, tasks)


def _env_rank() -> int | None:
    """The rank the environment gives: FINEPHRASE_RANK, else the SLURM array index as it is."""
    rank = _env_int("FINEPHRASE_RANK")
    return rank if rank is not None else _env_int("SLURM_ARRAY_TASK_ID")


def in_array() -> bool:
    """Whether this process has a rank to take from its environment (a SLURM array task, or FINEPHRASE_RANK)."""
    return _env_rank() is not None


def share_from_flags(rank: str | None, tasks: int | None) -> tuple[int, int] | None:
    """(R, N) of a share given as `--rank R --tasks N` or `--rank auto` (R from the SLURM array this runs in, and N
    too unless --tasks says; see task_of); None without --rank (the whole job)."""
    if rank is None:
        if tasks is not None:
            raise UsageError("--tasks goes with --rank R (or --rank auto in a SLURM array)")
        return None
    if rank == "auto":
        if not in_array():
            raise UsageError("--rank auto reads SLURM_ARRAY_TASK_ID, which is not set (not a SLURM array task): "
                             "pass --rank R --tasks N")
        return task_of(None, tasks)
    if not rank.isdigit():
        raise UsageError(f"--rank takes a task number (from 0) or `auto`, not {rank!r}")
    if tasks is None:
        raise UsageError("--rank R needs --tasks N (how many tasks share the work)")
    return task_of(int(rank), tasks)
