"""Which share of a job this process is: `--rank R --tasks N` from the flags, else from the SLURM array it runs
in, else the whole job (0 of 1). Every stage that splits over an array (compact, mix, verify, gate) asks here."""

from __future__ import annotations

import os

from finephrase.errors import UsageError


def task_of(rank: int | None, tasks: int | None) -> tuple[int, int]:
    """(rank, tasks) from the flags, else from the SLURM array this runs in, else (0, 1)."""
    if rank is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        rank = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
        if tasks is None:
            tasks = int(os.environ.get("SLURM_ARRAY_TASK_COUNT", 0)) or (
                int(os.environ.get("SLURM_ARRAY_TASK_MAX", rank)) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0)) + 1)
    rank, tasks = rank or 0, tasks or 1
    if tasks < 1 or not 0 <= rank < tasks:
        raise UsageError(f"--rank {rank} is outside 0..{tasks - 1} (--tasks {tasks})")
    return rank, tasks


def share_from_flags(rank: str | None, tasks: int | None) -> tuple[int, int] | None:
    """(R, N) of a share given as `--rank R --tasks N` or `--rank auto` (R from the SLURM array this runs in, and N
    too unless --tasks says; see task_of); None without --rank (the whole job)."""
    if rank is None:
        if tasks is not None:
            raise UsageError("--tasks goes with --rank R (or --rank auto in a SLURM array)")
        return None
    if rank == "auto":
        if "SLURM_ARRAY_TASK_ID" not in os.environ:
            raise UsageError("--rank auto reads SLURM_ARRAY_TASK_ID, which is not set (not a SLURM array task): "
                             "pass --rank R --tasks N")
        return task_of(None, tasks)
    if not rank.isdigit():
        raise UsageError(f"--rank takes a task number (from 0) or `auto`, not {rank!r}")
    if tasks is None:
        raise UsageError("--rank R needs --tasks N (how many tasks share the work)")
    return task_of(int(rank), tasks)
