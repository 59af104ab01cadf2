"""The CPUs this process may use: its affinity (what `taskset`, a cgroup cpuset or SLURM's task affinity leave
it), and no more than SLURM_CPUS_PER_TASK where SLURM says. The embedded engine's threads default to this count:
llama.cpp's own default is the machine's physical cores, and its decoding threads spin, so two engines (or an
engine beside other work) on fewer cores than their threads slow each other many times over."""

from __future__ import annotations

import os


def cpus_allowed() -> int:
    """How many CPUs this process may run on (at least 1)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        allowed = os.cpu_count() or 1
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit() and int(per_task) > 0:
        allowed = min(allowed, int(per_task))
    return max(1, allowed)
