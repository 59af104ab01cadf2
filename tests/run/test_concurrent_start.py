"""Many tasks of one run started in the same instant on a new output folder (a SLURM array's first second): none
may fail because of another, and the run verifies exactly once. Also where the filesystem has no flock
(FINEPHRASE_LOCK=file: the holder-file locks of finephrase/store/locks.py), and with a quarter of the tasks killed with
SIGKILL mid-run and rerun.

The tasks talk to a stand-in server (tests/fakeserver.py): what is under test is our own code's behaviour under
concurrency, not a model.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli, write_parquet
from fakeserver import FakeServer

TASKS = 16


def _input(tmp_path: Path, files: int = TASKS * 4, per_file: int = 6) -> Path:
    folder = tmp_path / "in"
    for f in range(files):
        rows = [{"id": f"f{f}-{i}", "text": f"Document {f}-{i} about topic {f * per_file + i}. " * 8}
                for i in range(per_file)]
        write_parquet(folder / f"part_{f:03d}.parquet", rows)
    return folder


def _start_together(src: Path, out: Path, url: str, tasks: int, env: dict | None = None) -> list[subprocess.Popen]:
    """`tasks` rephrase processes, released at the same instant: each waits for a go-file before importing."""
    go = out.parent / f".go-{out.name}-{time.time_ns()}"
    gate = (f"import os, sys, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
            f"from finephrase.cli import main\nsys.argv = ['finephrase'] + sys.argv[1:]\nsys.exit(main())")
    procs = []
    for rank in range(tasks):
        args = ["rephrase", str(src), "--prompt", "faq,table", "--output", str(out), "--backend", "endpoint",
                "--endpoint-url", url, "--tasks", str(tasks), "--rank", str(rank), "--chunk-size", "4"]
        procs.append(subprocess.Popen([sys.executable, "-c", gate, *args], cwd=REPO, text=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      env={**os.environ, **(env or {})}))
    time.sleep(1.0)  # all of them waiting at the gate
    go.touch()
    return procs


def _failures(procs: list[subprocess.Popen], timeout: float = 300) -> list[str]:
    out = []
    for rank, p in enumerate(procs):
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            out.append(f"task {rank} exited {p.returncode}: {err.strip().splitlines()[-1:] if err else ''}")
    return out


# the file lock (for file systems without flock) is the slower twin of the same test: `make test-slow`, .ci/run
@pytest.mark.parametrize("lock", ["flock", pytest.param("file", marks=pytest.mark.slow)])
def test_tasks_started_together_on_a_new_folder(tmp_path, lock):
    src = _input(tmp_path)
    fake = FakeServer().start()
    try:
        for trial in range(2):
            out = tmp_path / f"out-{lock}-{trial}"
            procs = _start_together(src, out, fake.url, TASKS, env={"FINEPHRASE_LOCK": lock})
            assert _failures(procs) == []
            r = run_cli("verify", out)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "OK" in r.stdout
            assert not list(out.glob(".*.tmp")) and not (out / ".lock.holder").exists()
    finally:
        fake.stop()


def test_a_quarter_killed_then_rerun_is_exactly_once(tmp_path):
    src = _input(tmp_path, per_file=12)
    fake = FakeServer(delay=0.05).start()
    try:
        out = tmp_path / "out"
        procs = _start_together(src, out, fake.url, TASKS)
        time.sleep(random.uniform(1.5, 3.0))
        victims = random.Random(0).sample(range(TASKS), TASKS // 4)
        for rank in victims:
            procs[rank].send_signal(signal.SIGKILL)
        failed = _failures(procs)
        assert all(f.split()[1] in {str(v) for v in victims} for f in failed), failed
        rerun = _start_together(src, out, fake.url, TASKS)  # the whole array again: finished tasks exit at once
        assert _failures(rerun) == []
        r = run_cli("verify", out)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        fake.stop()
