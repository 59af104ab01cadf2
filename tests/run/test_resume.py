"""Kill -9 and resume: exactly once, committed chunks not regenerated, input not re-read from the start."""

import os
import signal
import subprocess
import sys
import time

import orjson
import pyarrow.parquet as pq
from conftest import REPO, ledger_line_count, run_cli, run_cli_here, small_rows, write_parquet


def test_kill9_after_first_chunk_then_resume(llama_endpoint, tmp_path):
    rows = small_rows(10, chars=250)
    src = write_parquet(tmp_path / "docs.parquet", rows, row_group_size=3)  # resume must seek into row groups
    out = tmp_path / "out"
    args = ["rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--endpoint-url",
            llama_endpoint, "--chunk-size", "2", "--max-tokens", "64", "--context-length", "1024", "--seed", "3",
            "--max-attempts", "1",
            "--max-concurrency", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while ledger_line_count(out) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = [orjson.loads(l) for l in (out / ".ledger" / "rank_00000.jsonl").read_bytes().splitlines()]
    assert not any(e.get("finished") for e in committed), "killed too late: the run had already finished"
    committed_docs = sum(e["docs"] for e in committed)
    stamps = {f: (out / f).stat().st_mtime_ns for e in committed for f in e["files"]}

    assert run_cli_here("verify", out).returncode == 1  # unfinished: verify says so

    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    v = run_cli_here("verify", out)
    assert v.returncode == 0, v.stdout
    # committed chunks were not regenerated
    assert {f: (out / f).stat().st_mtime_ns for f in stamps} == stamps
    # the resumed task read only what was left (the reader seeks; it does not re-read from the start)
    stats = orjson.loads((out / "logs" / "stats" / "00000.json").read_bytes())
    reader = next(s for s in stats if "reader" in s["name"].lower())
    assert reader["stats"]["documents"] == len(rows) - committed_docs
    ids = [r_["source_id"] for d in ("faq", "rejects/faq") if (out / d).exists()
           for r_ in pq.read_table(out / d).to_pylist()]
    assert sorted(ids) == sorted(r_["id"] for r_ in rows)
    # the progress snapshot keeps both sessions: the killed one ends at its last sign of life
    snap = orjson.loads((out / ".ledger" / "rank_00000.progress.json").read_bytes())
    assert snap["state"] == "finished" and snap["committed_docs"] == len(rows) == snap["done_docs"]
    first, second = snap["sessions"]
    assert first["started_at"] <= first["ended_at"] <= second["started_at"] <= second["ended_at"]


def test_rerun_with_other_settings_is_refused(llama_endpoint, tmp_path):
    """In-process (run_cli_here): the refusals happen before any work, and the runs are endpoint runs."""
    src = write_parquet(tmp_path / "docs.parquet", small_rows(2, chars=200))
    out = tmp_path / "out"
    base = ["rephrase", src, "--output", out, "--backend", "endpoint", "--endpoint-url", llama_endpoint,
            "--max-tokens", "48", "--context-length", "1024",
            "--max-attempts", "1"]
    assert run_cli_here(*base, "--prompt", "faq", "--limit", "1").returncode == 0
    for change in (["--prompt", "math", "--limit", "1"], ["--prompt", "faq", "--limit", "1", "--temperature", "0.9"],
                   ["--prompt", "faq", "--limit", "1", "--tasks", "2"]):
        r = run_cli_here(*base, *change)
        assert r.returncode == 2, change
        line = r.stderr.strip().splitlines()[-1]
        assert line.startswith("error:") and "other settings" in line and "--overwrite" in line
        assert "Traceback" not in r.stderr
    # the same command again: nothing to do, still exactly once
    assert run_cli_here(*base, "--prompt", "faq", "--limit", "1").returncode == 0
    assert run_cli_here("verify", out).returncode == 0
    # --overwrite starts over with the new settings
    r = run_cli_here(*base, "--prompt", "math", "--limit", "1", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (out / "faq").exists()
    assert run_cli_here("verify", out).returncode == 0


def _started_and_committed(tmp_path, rows: list[dict], out):
    """A run of `rows` on the embedded engine in a process of its own, once its first chunk is committed:
    (the process, its command's arguments, the pids of its engine server)."""
    src = write_parquet(tmp_path / "docs.parquet", rows)
    args = ["rephrase", src, "--prompt", "faq", "--output", out, "--chunk-size", "2", "--max-tokens", "48",
            "--max-attempts", "1", "--context-length", "1024"]
    proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while ledger_line_count(out) < 1:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server = subprocess.run(["pgrep", "-f", f"-P{proc.pid}", "llamacpp_process"], capture_output=True,
                            text=True).stdout.split()
    return proc, args, server


def test_sigterm_drains_then_resumes(tmp_path):
    """SIGTERM (or SLURM's SIGUSR1 warning): stop taking documents, finish what is in flight, commit, exit 75."""
    rows = small_rows(24, chars=200)
    out = tmp_path / "out"
    proc, args, children = _started_and_committed(tmp_path, rows, out)
    assert children, "the embedded server should be a child of the run"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "draining" in err and "drained" in err.strip().splitlines()[-1] and "Traceback" not in err
    for pid in children:  # the server is gone
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    entries = [orjson.loads(l) for l in (out / ".ledger" / "rank_00000.jsonl").read_bytes().splitlines()]
    assert not any(e.get("finished") for e in entries)
    snap = orjson.loads((out / ".ledger" / "rank_00000.progress.json").read_bytes())
    assert snap["state"] == "drained"
    assert snap["session"]["tokens_counted_by"] == "engine"  # llama.cpp's /metrics and /slots, read as it generates
    # nothing in flight was thrown away: every document pulled before the signal is committed
    assert snap["committed_docs"] == sum(e["docs"] for e in entries) >= 1
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["status"] == "incomplete" and manifest["counts"]["documents"] == snap["committed_docs"]
    assert snap["committed_docs"] < len(rows)  # it did stop early
    r = run_cli(*args)  # and it resumes
    assert r.returncode == 0, r.stderr
    assert run_cli_here("verify", out).returncode == 0


def test_model_server_killed_mid_run_is_restarted(tmp_path):
    rows = small_rows(16, chars=200)
    out = tmp_path / "out"
    proc, _, server = _started_and_committed(tmp_path, rows, out)
    assert len(server) == 1
    os.kill(int(server[0]), signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "model server died: restart 1/3" in err
    v = run_cli_here("verify", out)
    assert v.returncode == 0, v.stdout
    ids = sorted(x["source_id"] for d in ("faq", "rejects/faq") if (out / d).exists()
                 for x in pq.read_table(out / d).to_pylist())
    assert ids == sorted(r["id"] for r in rows)
