"""Chaos: SIGKILL the run (worker) and the model server at seeded random moments, at least 10 faults, rerun
until it finishes. With the real SmolLM2-135M through llama.cpp. The result must account for exactly the same
(document, prompt) pairs as a clean run, with no duplicates, and `verify` must pass."""

import os
import random
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli, small_rows, write_parquet

pytestmark = pytest.mark.slow  # three minutes of faults: `make test-slow` (and .ci/run)

PROMPTS = ("faq", "summarize")


def _pairs(out):
    pairs = []
    for p in PROMPTS:
        for d in (out / p, out / "rejects" / p):
            if d.exists():
                pairs += [(x["source_id"], p) for x in pq.read_table(d, columns=["source_id"]).to_pylist()]
    return pairs


def _server_pid(pid):
    found = subprocess.run(["pgrep", "-f", f"-P{pid}", "llamacpp_process"], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.stdout.split() else None


def test_chaos_exactly_once(tmp_path):
    rng = random.Random(20261124)
    # enough work that the run cannot finish before its 12 faults even on a quiet machine
    rows = small_rows(60, chars=120)
    src = write_parquet(tmp_path / "docs.parquet", rows, row_group_size=17)
    flags = ["--prompt", ",".join(PROMPTS), "--chunk-size", "3", "--max-tokens", "32", "--context-length", "1024",
             "--seed", "1"]

    clean = tmp_path / "clean"
    assert run_cli("rephrase", src, "--output", clean, *flags).returncode == 0

    out = tmp_path / "chaos"
    faults = {"worker": 0, "server": 0}
    attempts = 0
    while True:
        attempts += 1
        assert attempts < 40, faults
        proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", "rephrase", str(src), "--output", str(out),
                                 *flags], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        # a killed server is restarted by the run itself, so faults go on within the same attempt
        while sum(faults.values()) < 12 and proc.poll() is None:
            time.sleep(rng.uniform(1.0, 4.0))
            if proc.poll() is not None:
                break
            server = _server_pid(proc.pid)
            if rng.choice(["worker", "server"]) == "server" and server:
                os.kill(server, signal.SIGKILL)
                faults["server"] += 1
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                faults["worker"] += 1
        _, err = proc.communicate(timeout=600)
        assert "Traceback" not in err, err
        if proc.returncode == 0:
            break
    assert sum(faults.values()) >= 10 and faults["worker"] and faults["server"], faults

    got = _pairs(out)
    assert len(got) == len(set(got)), "duplicated rows"
    assert sorted(got) == sorted(_pairs(clean)) == sorted((r["id"], p) for r in rows for p in PROMPTS)
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
