"""The embedded engine's threads follow the CPUs the task may use (finephrase/process/cpus.py), not the machine's
cores: two engines on one machine (two SLURM tasks, two test workers) each keep to their own."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

from finephrase.process.cpus import cpus_allowed


def test_affinity_and_slurms_cpus_per_task_bound_the_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert cpus_allowed() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert cpus_allowed() == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "16")  # more than the affinity leaves: the affinity
    assert cpus_allowed() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")
    assert cpus_allowed() == 4


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_the_engine_command_takes_the_processs_affinity():
    """In a process pinned to one CPU (as `taskset -c 0` or a SLURM task would), the server gets one thread."""
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from finephrase.serving import LlamaCppServer; "
            "c = LlamaCppServer(port=1).command(); print(c[c.index('--threads') + 1])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={k: v for k, v in os.environ.items() if k != "SLURM_CPUS_PER_TASK"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_threads_given_are_kept():
    from finephrase.serving import LlamaCppServer

    command = LlamaCppServer(port=1, threads=3).command()
    assert command[command.index("--threads") + 1] == "3"
