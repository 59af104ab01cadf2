"""`kill -9` of `finephrase rephrase` leaves no process behind: not datatrove's Manager or pool workers (their
forkserver and resource tracker), not the model server. Against a stand-in model server (tests/fakeserver.py, not
a model) slow enough that the run is mid-way when it is killed; the embedded llama.cpp server once, for real."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, ledger_line_count, small_rows, write_parquet
from fakeserver import FakeServer


def _live(pid: str) -> bool:
    """A process that runs: a zombie (dead, waiting to be reaped by whoever adopted it) does not count."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def in_group(pgid: int) -> list[str]:
    """The live processes of process group `pgid` (pid and command line)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pgrp = int(f.read().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if pgrp == pgid and _live(pid):
            found.append(f"{pid}: {_cmdline(pid)}")
    return found


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def naming(text: str) -> list[str]:
    """The live processes whose command line holds `text` (this test's unique output path)."""
    return [f"{pid}: {_cmdline(pid)}" for pid in filter(str.isdigit, os.listdir("/proc"))
            if pid != str(os.getpid()) and text in _cmdline(pid) and _live(pid)]


def survivors(pgid: int, text: str, wait: float = 10.0) -> list[str]:
    """What is left of the killed command after up to `wait` seconds (every helper should be gone well before)."""
    deadline = time.monotonic() + wait
    while True:
        left = sorted(set(in_group(pgid)) | set(naming(text)))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def start(tmp_path: Path, *flags) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"orphan-check-{os.getpid()}-{time.monotonic_ns()}"  # unique: found by command line
    proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", "rephrase", str(tmp_path / "in"), "--prompt",
                             "faq", "--output", str(out), "--chunk-size", "2", "--max-concurrency", "2", *flags],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "err.txt", "w"),
                            start_new_session=True)  # its own process group: what it leaves is found by group
    return proc, out


def kill_leftovers(proc: subprocess.Popen, out: Path):
    """After the test, pass or fail (a timeout while waiting included): nothing of this command keeps running."""
    for line in set(in_group(proc.pid)) | set(naming(str(out))):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_mid_run(proc: subprocess.Popen, out: Path, ranks, tmp_path: Path):
    deadline = time.monotonic() + 120
    while not all(ledger_line_count(out, r) >= 1 for r in ranks):
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
        time.sleep(0.05)


def kill9_and_check(proc: subprocess.Popen, out: Path):
    pgid = proc.pid
    try:
        os.kill(proc.pid, signal.SIGKILL)  # the command alone, as `kill -9 PID` does: not its group
        proc.wait()
        left = survivors(pgid, str(out))
        assert not left, "outlived the killed command:\n" + "\n".join(left)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            pass  # no process at all in the group
        else:  # zombies only: dead, not yet reaped by whoever adopted them
            assert not in_group(pgid)
    finally:
        kill_leftovers(proc, out)  # after a failure: only ours


@pytest.fixture
def slow_fake(tmp_path):
    rows = small_rows(60, chars=120)
    for i in range(2):  # two files: with --tasks 2 each task has work
        write_parquet(tmp_path / "in" / f"part-{i}.parquet", rows[i * 30:(i + 1) * 30])
    fake = FakeServer(delay=0.4).start()  # 30 documents per task at 2 in flight: 6 s; killed after its first chunk
    yield ["--backend", "endpoint", "--endpoint-url", fake.url, "--model", "fake-model"]
    fake.stop()


def test_kill9_leaves_no_process(tmp_path, slow_fake):
    proc, out = start(tmp_path, *slow_fake)
    try:
        wait_mid_run(proc, out, [0], tmp_path)
        kill9_and_check(proc, out)
    finally:
        kill_leftovers(proc, out)


def test_kill9_with_workers_leaves_no_process(tmp_path, slow_fake):
    proc, out = start(tmp_path, *slow_fake, "--workers", "2", "--tasks", "2")
    try:
        wait_mid_run(proc, out, [0, 1], tmp_path)
        helpers = in_group(proc.pid)
        assert len(helpers) >= 4, helpers  # the command, datatrove's Manager, a forkserver, two workers, ...
        kill9_and_check(proc, out)
    finally:
        kill_leftovers(proc, out)


def test_kill9_stops_the_embedded_server(tmp_path):
    pytest.importorskip("xllamacpp")
    write_parquet(tmp_path / "in" / "docs.parquet", small_rows(30, chars=200))
    proc, out = start(tmp_path, "--max-tokens", "48", "--context-length", "1024", "--max-attempts", "1")
    try:
        deadline = time.monotonic() + 120
        while "rephrasing " not in (tmp_path / "err.txt").read_text():  # the server answers, the task runs
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
            time.sleep(0.1)
        server = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "llamacpp_process"], capture_output=True,
                                text=True).stdout.split()
        assert len(server) == 1, "the embedded server should be a child of the run"
        try:
            kill9_and_check(proc, out)
            deadline = time.monotonic() + 15  # SIGTERM when its parent died: it stops its engine and exits
            while _live(server[0]) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _live(server[0]), _cmdline(server[0])
        finally:
            if _live(server[0]):
                os.kill(int(server[0]), signal.SIGKILL)
    finally:
        kill_leftovers(proc, out)


def _embedded_server_of(proc: subprocess.Popen, other_than: str | None = None, wait: float = 120) -> str:
    deadline = time.monotonic() + wait
    while True:
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "llamacpp_process"], capture_output=True,
                               text=True).stdout.split()
        found = [p for p in found if p != other_than and _live(p)]
        if found:
            return found[0]
        assert proc.poll() is None and time.monotonic() < deadline, "no embedded server came up"
        time.sleep(0.2)


def test_kill9_stops_a_restarted_embedded_server(tmp_path):
    """The server killed, the run restarts it (from a worker thread), then the run is killed: the restarted
    server goes too. It stayed behind before (measured: two such servers outlived the chaos test by 35 minutes;
    their engine stopped, but the interpreter's exit waited on llama.cpp's HTTP listener; one in five of these
    scenarios left one)."""
    pytest.importorskip("xllamacpp")
    write_parquet(tmp_path / "in" / "docs.parquet", small_rows(40, chars=200))
    proc, out = start(tmp_path, "--max-tokens", "48", "--context-length", "1024", "--max-attempts", "1")
    restarted = None
    try:
        first = _embedded_server_of(proc)
        while "rephrasing " not in (tmp_path / "err.txt").read_text():
            assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-3000:]
            time.sleep(0.1)
        os.kill(int(first), signal.SIGKILL)
        restarted = _embedded_server_of(proc, other_than=first)
        deadline = time.monotonic() + 60
        while "model server died: restart 1/" not in (tmp_path / "err.txt").read_text():
            assert time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(2)  # requests in flight on the new server
        kill9_and_check(proc, out)
        deadline = time.monotonic() + 20
        while _live(restarted) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _live(restarted), _cmdline(restarted)
    finally:
        if restarted and _live(restarted):
            os.kill(int(restarted), signal.SIGKILL)
        kill_leftovers(proc, out)
