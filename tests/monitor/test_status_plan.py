"""`finephrase status` against real small runs (real model, and the stand-in server with two tasks), and
`finephrase plan` against the FinePhrase paper's own figures."""

import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import small_rows, write_parquet
from conftest import run_cli as run_in_subprocess  # a run: its own process, as users start it
from conftest import run_cli_here as run_cli  # the fast layer: the other commands start no model
from fakeserver import FakeServer

from finephrase.monitor.cost_plan import PRESETS, plan
from finephrase.monitor.status import collect

PROMPTS = ("faq", "summarize")


def _status(out, *args) -> dict:
    r = run_cli("status", out, "--json", *args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return orjson.loads(r.stdout)


def _table(folder: Path):
    return pq.read_table(folder) if folder.exists() else None


def _from_files(out: Path, prompts) -> dict:
    """What the parquet files hold: the numbers status must show."""
    rows, rejects, output_tokens, input_tokens, prompt_tokens, cached, ids = {}, Counter(), 0, 0, 0, 0, set()
    for p in prompts:
        t = _table(out / p)
        rows[p] = t.num_rows if t is not None else 0
        if t is not None:
            output_tokens += sum(x or 0 for x in t.column("output_tokens").to_pylist())
            input_tokens += sum(x or 0 for x in t.column("input_tokens").to_pylist())
            ids.update(t.column("source_id").to_pylist())
        rj = _table(out / "rejects" / p)
        if rj is not None:
            rejects.update(f"{p}/{r}" for r in rj.column("reject_reason").to_pylist())
            ids.update(rj.column("source_id").to_pylist())
        for x in (t, rj):  # every generation's prefill, published or not
            if x is not None:
                prompt_tokens += sum(v or 0 for v in x.column("input_tokens").to_pylist())
                cached += sum(v or 0 for v in x.column("cached_tokens").to_pylist())
    f = _table(out / "filtered")
    filtered = Counter(f.column("filter_reason").to_pylist()) if f is not None else Counter()
    if f is not None:
        ids.update(f.column("source_id").to_pylist())
    return {"rows": rows, "rejects": dict(rejects), "output_tokens": output_tokens, "input_tokens": input_tokens,
            "prompt_tokens": prompt_tokens, "cached_tokens": cached, "docs": len(ids), "filtered": dict(filtered)}


def _session_hours(out: Path, tasks: int) -> float:
    total = 0.0
    for rank in range(tasks):
        snap = orjson.loads((out / ".ledger" / f"rank_{rank:05d}.progress.json").read_bytes())
        total += sum(s["ended_at"] - s["started_at"] for s in snap["sessions"])
    return total / 3600


# -- the real model -----------------------------------------------------------------------------------------------


def test_status_real_model_run(llama_endpoint, tmp_path):
    docs = small_rows(4, chars=200)
    src = write_parquet(tmp_path / "in" / "docs.parquet", docs)
    out = tmp_path / "out"
    r = run_in_subprocess("rephrase", src, "--prompt", ",".join(PROMPTS), "--output", out, "--backend", "endpoint",
                "--endpoint-url", llama_endpoint, "--max-tokens", "48", "--context-length", "1024", "--seed", "0",
                "--chunk-size", "2", "--max-attempts", "1")  # discarded attempts are in no file to count from
    assert r.returncode == 0, r.stderr

    got = _status(out)
    want = _from_files(out, PROMPTS)
    t = got["total"]
    assert got["state"] == "finished" and got["states"] == {"finished": 1}
    assert got["per_task"][0]["state"] == "finished"
    assert t["docs_done"] == want["docs"] == len(docs)
    assert t["docs_total"] == len(docs) and t["docs_total_kind"] == "exact"
    assert t["rows"] == want["rows"]
    assert t["rejects"] == want["rejects"]
    assert t["rejects_total"] == sum(want["rejects"].values())
    assert sum(t["rows"].values()) + t["rejects_total"] == len(docs) * len(PROMPTS)
    assert t["output_tokens"] == want["output_tokens"]
    assert t["input_tokens"] == want["input_tokens"]  # of the published rows
    assert t["prompt_tokens"] == want["prompt_tokens"] > 0 and t["cached_tokens"] == want["cached_tokens"]
    assert t["eta_s"] == 0
    if t["output_tokens"]:
        assert t["output_tok_s"] > 0
    # the endpoint backend holds no GPU: 0 GPU-hours, and no cost without a price
    assert got["per_task"][0]["active_s"] > 0
    assert t["gpu_hours"] == 0 and t["cost"] is None

    priced = _status(out, "--gpus-per-task", "1", "--price-per-gpu-hour", "2.5")["total"]
    assert priced["gpu_hours"] > 0
    assert priced["gpu_hours"] == pytest.approx(_session_hours(out, 1), rel=1e-6)
    assert priced["cost"] == pytest.approx(priced["gpu_hours"] * 2.5)
    if priced["output_tokens"]:
        assert priced["gpu_hours_per_billion_output_tokens"] == pytest.approx(
            priced["gpu_hours"] / (priced["output_tokens"] / 1e9))

    human = run_cli("status", out, "--price-per-gpu-hour", "2.5", "--gpus-per-task", "1")
    assert human.returncode == 0, human.stderr
    assert "FINISHED" in human.stdout and f"{len(docs)} / {len(docs)} (100.0%)" in human.stdout
    assert "GPU-hours" in human.stdout and "cost $" in human.stdout


# -- the stand-in server, two tasks ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fake")
    rows = small_rows(30, chars=200)
    for i, r in enumerate(rows):
        r["n"] = i
    for i in (3, 22):  # two context_overflow rejects per prompt
        rows[i]["text"] = "OVERFLOW " + rows[i]["text"]
    write_parquet(tmp / "in" / "a.parquet", rows[:18], row_group_size=5)
    write_parquet(tmp / "in" / "b.parquet", rows[18:])
    out = tmp / "out"
    fake = FakeServer().start()
    try:
        r = run_in_subprocess("rephrase", tmp / "in", "--prompt", "faq,math", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--tasks", "2", "--workers", "2", "--chunk-size", "4",
                    "--where", "n >= 2")
    finally:
        fake.stop()
    assert r.returncode == 0, r.stderr
    return out, rows


def test_status_two_tasks(fake_run):
    out, rows = fake_run
    got = _status(out, "--price-per-gpu-hour", "4")
    want = _from_files(out, ("faq", "math"))
    t = got["total"]
    assert got["state"] == "finished" and got["tasks"] == 2
    assert [x["state"] for x in got["per_task"]] == ["finished", "finished"]
    assert t["docs_done"] == want["docs"] == len(rows) == t["docs_total"]
    assert t["docs_total_kind"] == "exact"
    # 2 files for 2 tasks: sharded by row group, a.parquet's 5+5+5+3 and b.parquet's 12 dealt out in turn
    assert [x["docs_total"] for x in got["per_task"]] == [5 + 5 + 12, 5 + 3]
    assert t["rows"] == want["rows"] and t["rejects"] == want["rejects"]
    assert t["rejects"] == {"faq/context_overflow": 2, "math/context_overflow": 2}
    assert t["filtered"] == want["filtered"] == {"where:n>=2": 2}
    assert t["output_tokens"] == want["output_tokens"] > 0
    assert sum(x["output_tokens"] for x in got["per_task"]) == t["output_tokens"]
    assert t["gpu_hours"] == 0 and t["cost"] == 0  # the endpoint backend: gpus_per_task 0
    g = _status(out, "--gpus-per-task", "2", "--price-per-gpu-hour", "4")["total"]
    assert g["gpu_hours"] == pytest.approx(2 * _session_hours(out, 2), rel=1e-6)
    assert g["cost"] == pytest.approx(4 * g["gpu_hours"])
    assert g["output_tok_s_per_gpu"] == pytest.approx(g["output_tokens"] / (g["gpu_hours"] * 3600))


def _copy(fake_run, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(fake_run[0], out)
    return out


def _edit_snapshot(out: Path, rank: int, **changes):
    path = out / ".ledger" / f"rank_{rank:05d}.progress.json"
    snap = orjson.loads(path.read_bytes())
    sessions = changes.pop("sessions_last", None)
    if sessions:
        snap["sessions"][-1].update(sessions)
    snap.update(changes)
    path.write_bytes(orjson.dumps(snap))


def test_status_interrupted_and_stale(fake_run, tmp_path):
    out = _copy(fake_run, tmp_path)
    ledger = out / ".ledger" / "rank_00001.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    assert b'"finished":true' in lines[-1]
    ledger.write_bytes(b"".join(lines[:-2]))  # the finished line and the last commit are gone: killed before them
    _edit_snapshot(out, 1, state="interrupted")
    got = _status(out)
    assert got["state"] == "interrupted"
    assert [x["state"] for x in got["per_task"]] == ["finished", "interrupted"]
    last = orjson.loads(lines[-2])
    assert got["per_task"][1]["docs_done"] == 8 - last["docs"]  # task 1 holds 8 rows (row groups 1 and 3 of a)
    assert got["per_task"][1]["docs_total"] == 8 and got["per_task"][1]["docs_total_kind"] == "exact"
    assert got["total"]["docs_done"] < got["total"]["docs_total"] == 30
    assert got["total"]["eta_s"] > 0  # remaining documents at the lifetime rate
    human = run_cli("status", out)
    assert human.returncode == 0 and "INTERRUPTED" in human.stdout and "FINISHED" not in human.stdout

    # the state variants below only change snapshots: read them in-process (same code as the command)
    # "running", but silent for 10 minutes: stale; its session counts until its last snapshot
    now = time.time()
    _edit_snapshot(out, 1, state="running", updated_at=now - 600, eta_s=5.0,
                   sessions_last={"ended_at": None, "started_at": now - 700, "host": "elsewhere"})
    got = collect(out, gpus_per_task=1)
    assert got["state"] == "stale" and got["per_task"][1]["state"] == "stale"
    assert got["per_task"][1]["active_s"] == pytest.approx(100, abs=1)

    # running on this machine, in a live process: running, counted until now, ETA from its snapshot
    _edit_snapshot(out, 1, updated_at=time.time(),
                   sessions_last={"host": socket.gethostname(), "pid": os.getpid()})
    got = collect(out, gpus_per_task=1)
    assert got["state"] == "running" and got["per_task"][1]["state"] == "running"
    assert 690 < got["per_task"][1]["active_s"] < 760
    assert got["per_task"][1]["gpu_hours"] == pytest.approx(got["per_task"][1]["active_s"] / 3600)
    assert 0 < got["per_task"][1]["eta_s"] <= 5.0
    # ... whose process is gone (SIGKILL): not running any more
    proc = subprocess.Popen(["true"])
    proc.wait()
    _edit_snapshot(out, 1, sessions_last={"pid": proc.pid})
    assert collect(out)["per_task"][1]["state"] == "interrupted"


def test_status_not_a_run(tmp_path):
    for d in (tmp_path, tmp_path / "missing"):
        r = run_cli("status", d)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(d) in lines[0], r.stderr


# -- plan ----------------------------------------------------------------------------------------------------------


def _plan(*args) -> dict:
    r = run_cli("plan", "--json", *args)
    assert r.returncode == 0, r.stderr
    return orjson.loads(r.stdout)


def test_plan_reproduces_the_paper():
    # FinePhrase: 339M FineWeb-Edu documents x 4 prompts x ~359 tokens at ~9.2K tok/s/GPU = ~14.7K GPU-hours
    p = _plan("--documents", "339M", "--prompt", "faq,math,table,tutorial", "--preset", "smollm2-1.7b-h100-tuned",
              "--gpus", "1", "--gpus", "100")
    assert p["output_tokens"] == pytest.approx(486e9, rel=0.01)  # the paper's 486B completion tokens
    assert 13_230 <= p["gpu_hours"] <= 16_170
    assert p["gpu_hours_per_billion_output_tokens"] == pytest.approx(30, abs=3)
    walls = {x["gpus"]: x["wall_hours"] for x in p["by_gpus"]}
    assert walls[100] == pytest.approx(p["gpu_hours"] / 100)
    assert walls[1] == pytest.approx(p["gpu_hours"])
    # the same from source tokens: sample-350BT at the default tokens per document
    q = _plan("--source-tokens", "350B", "--prompts", "4", "--price-per-gpu-hour", "2", "--gpus", "8,100")
    assert 13_230 <= q["gpu_hours"] <= 16_170
    assert q["cost"] == pytest.approx(2 * q["gpu_hours"])
    assert [x["gpus"] for x in q["by_gpus"]] == [8, 100]

    human = run_cli("plan", "--documents", "339M", "--prompts", "4", "--gpus", "100")
    assert human.returncode == 0, human.stderr
    assert "GPU-hours" in human.stdout and "30.1 GPU-hours per billion" in human.stdout
    assert "6d" in human.stdout  # ~6 wall-clock days on 100 GPUs, as the paper says


def test_plan_presets_throughput_and_bad_input(fake_run):
    r = run_cli("plan", "--list-presets")
    assert r.returncode == 0
    assert "smollm2-1.7b-h100-tuned" in r.stdout and "9,220" in r.stdout
    assert "smollm2-1.7b-h100-untuned" in r.stdout and "5,255" in r.stdout and "source:" in r.stdout

    assert PRESETS["smollm2-1.7b-h100-untuned"]["tok_s_per_gpu"] == 5255
    given = plan(1e6, 2, 500, 1000, [1, 4])
    assert given["gpu_hours"] == pytest.approx(1e6 * 2 * 500 / 1000 / 3600)
    assert given["by_gpus"][1]["wall_hours"] == pytest.approx(given["gpu_hours"] / 4)

    # measured on a run: its lifetime output tokens per GPU-second, as status computes them
    out = fake_run[0]
    measured = _plan("--documents", "1000", "--from-run", out, "--gpus-per-task", "1")
    s = collect(out, gpus_per_task=1)["total"]
    assert measured["tok_s_per_gpu"] == pytest.approx(s["output_tok_s_per_gpu"], rel=1e-3)

    for args in (["--prompts", "4"], ["--documents", "5", "--from-run", out]):  # the endpoint run held no GPU
        r = run_cli("plan", *args)
        assert r.returncode == 2, args
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
