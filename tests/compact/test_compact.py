"""`finephrase compact` and publishing within the Hub's limits.

What is tested is our own I/O (planning, streaming shards, exactly-once commits, the limits), so the runs come
from stand-in servers, not a model: benchmarks/zero_server.py (zero latency, one fixed answer) for the 20,000
documents, tests/fakeserver.py elsewhere; the Hub is tests/hubstandin.py, which enforces the Hub's limits (files
per commit and folder and repo, file size, commits per hour) the way the Hub answers: 400 / 429.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, small_rows, write_parquet
from conftest import run_cli as run_in_subprocess  # a run: its own process, as users start it
from conftest import run_cli_here as run_cli  # the fast layer: the other commands start no model
from consumer import load_every_config
from fakeserver import FakeServer
from hub_client import REPO_ID, cli, hub_env, start_standin
from hubstandin import read_events, read_tree

from finephrase.argtypes import parse_size
from finephrase.compact.plan import Shard, make_plan
from finephrase.publish.commits import CommitPace, batches
from finephrase.store.hub_limits import HubLimits, violations


def _rephrase(src: Path, out: Path, url: str, *flags) -> None:
    r = run_in_subprocess("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                          "--endpoint-url", url, "--max-retries", "0", "--progress-interval", "600", *flags,
                          timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """20,000 documents in 2-document chunks: 10,000 chunk files in faq/ (or rejects/faq/), too many for the Hub."""
    from _common import ZeroServer

    root = tmp_path_factory.mktemp("big")
    texts = [f"Document {i} explains how topic {i % 97} works, with a short example and a note." for i in range(20_000)]
    src = write_parquet(root / "in.parquet", [{"id": f"d{i:05d}", "text": t} for i, t in enumerate(texts)])
    zero = ZeroServer().start()
    try:
        _rephrase(src, root / "run", zero.url, "--chunk-size", "2", "--max-concurrency", "64")
    finally:
        zero.stop()
    return root / "run"


@pytest.mark.slow  # 10,000 chunk files written by a real run, then compacted and published: ~80 s
def test_a_big_chunked_run_is_compacted_and_published_within_the_hubs_limits(big_run, tmp_path):
    per_folder = [len(list(d.glob("*.parquet"))) for d in (big_run / "faq", big_run / "rejects" / "faq")]
    assert max(per_folder) >= 10_000  # 10,000 chunks: over the Hub's entries per folder
    hub, port = start_standin(tmp_path / "hub")
    env = hub_env(tmp_path, f"http://127.0.0.1:{port}")
    try:
        refused = cli("publish", big_run, "--repo", REPO_ID, "--no-verify", "--private", env=env)
        assert refused.returncode == 2 and "finephrase compact" in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert not any(e["event"] in ("create", "commit") for e in read_events(tmp_path / "hub"))  # nothing sent

        out = tmp_path / "compacted"
        r = run_cli("compact", big_run, "--output", out, "--target-rows", "3000")
        assert r.returncode == 0, r.stderr
        shards = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
        assert shards and all(Path(s).name.startswith("train-") for s in shards)
        assert sum(pq.ParquetFile(out / s).metadata.num_rows for s in shards) == 20_000
        assert run_cli("verify", out).returncode == 0

        r = cli("publish", out, "--repo", REPO_ID, "--private", env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    finally:
        hub.kill()
        hub.wait()
    events = read_events(tmp_path / "hub")
    assert not [e for e in events if e["event"] == "limit"]  # the stand-in refused nothing
    commits = [e for e in events if e["event"] == "commit"]
    assert commits and all(e["files"] < 100 for e in commits)
    tree = read_tree(tmp_path / "hub", REPO_ID)
    for s in shards:
        assert tree[s] == (out / s).read_bytes(), s  # byte for byte
    folders = {}
    for path in tree:
        folders[path.rsplit("/", 1)[0] if "/" in path else ""] = folders.get(path.rsplit("/", 1)[0], 0) + 1
    assert max(folders.values()) < 10_000
    repo_copy = tmp_path / "from-hub"
    for path, data in tree.items():
        (repo_copy / path).parent.mkdir(parents=True, exist_ok=True)
        (repo_copy / path).write_bytes(data)
    loaded = load_every_config(repo_copy, tmp_path / "hf-cache")
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    assert loaded.get("faq", 0) == counts["rows"].get("faq", 0)


def _small_run(tmp_path: Path, n: int, chunk: int) -> Path:
    src = write_parquet(tmp_path / "in.parquet", [{**r, "id": f"d{i:04d}"} for i, r in
                                                  enumerate(small_rows(20) * (n // 20))])
    fake = FakeServer().start()
    try:
        _rephrase(src, tmp_path / "run", fake.url, "--chunk-size", str(chunk), "--max-concurrency", "16")
    finally:
        fake.stop()
    return tmp_path / "run"


def test_compact_killed_midway_continues_exactly_once(tmp_path):
    run = _small_run(tmp_path, 400, 2)  # 200 chunk files in faq/
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "finephrase.cli", "compact", str(run), "--output", str(out), "--target-rows", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done_log = out / ".compact" / "done_00000.jsonl"
    deadline = time.monotonic() + 120
    while not (done_log.exists() and done_log.read_bytes().count(b"\n") >= 20):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {orjson.loads(line)["path"] for line in done_log.read_bytes().splitlines() if line.strip()}
    plan = orjson.loads((out / ".compact" / "plan.json").read_bytes())
    assert 20 <= len(before) < len(plan["shards"]), "the kill did not land midway"
    assert not (out / "manifest.json").exists()
    stamps = {p: os.stat(out / p).st_ino for p in before}

    r = run_cli("compact", run, "--output", out, "--target-rows", "2")
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} done before" in r.stderr
    assert {p: os.stat(out / p).st_ino for p in before} == stamps  # committed shards were not written again
    lines = [orjson.loads(line)["path"] for line in done_log.read_bytes().splitlines() if line.strip()]
    assert len(lines) == len(set(lines)) == len(plan["shards"])  # each shard committed once
    assert not list(out.rglob(".*.tmp"))
    assert run_cli("verify", out).returncode == 0
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in out.rglob("train-*.parquet")) == 400


def test_compact_refuses_what_it_cannot_read(tmp_path):
    run = _small_run(tmp_path, 20, 5)
    r = run_cli("compact", run, "--output", run / "inside")
    assert r.returncode == 2 and "inside the source" in r.stderr
    r = run_cli("compact", tmp_path / "in.parquet", "--output", tmp_path / "x")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert run_cli("compact", run, "--output", tmp_path / "c", "--target-rows", "7").returncode == 0
    r = run_cli("compact", run, "--output", tmp_path / "c", "--target-rows", "8")
    assert r.returncode == 2 and "holds a compaction" in r.stderr
    r = run_cli("compact", tmp_path / "c", "--output", tmp_path / "cc")
    assert r.returncode == 2 and "compacted already" in r.stderr


def test_the_plan_is_deterministic_and_splits_folders_before_the_hubs_limit():
    files = {"faq": [(f"faq/00000_{i:06d}.parquet", 10, 1000) for i in range(50)]}
    a = make_plan(Path("."), files, target_bytes=None, target_rows=20, per_part=4)
    b = make_plan(Path("."), files, target_bytes=None, target_rows=20, per_part=4)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert len(a) == 25 and all(s.rows == 20 for s in a)
    assert a[0].path == "faq/part-0000/train-00000-of-00025.parquet"
    assert a[24].path == "faq/part-0006/train-00024-of-00025.parquet"
    assert Shard("faq", 3, 9, per_part=9999).path == "faq/train-00003-of-00009.parquet"
    by_size = make_plan(Path("."), files, target_bytes=5000, target_rows=None)
    assert [len(s.files) for s in by_size] == [5] * 10
    assert parse_size("500MB") == 500_000_000 and parse_size("1.5G") == 1_500_000_000 and parse_size("42") == 42


def test_the_limits_and_the_commit_pace():
    limits = HubLimits()
    assert violations([(f"faq/{i}.parquet", 10) for i in range(9_999)], limits, extra_files=2) == []
    msg = violations([(f"faq/{i}.parquet", 10) for i in range(10_000)], limits)
    assert len(msg) == 1 and "10,000 files in faq/" in msg[0]
    assert "per repo" in " ".join(violations([(f"f{i % 50}/{i}", 1) for i in range(100_000)], limits))
    assert "20 GB" in violations([("faq/big.parquet", 25 * 10**9)], limits)[0]
    assert [len(b) for b in batches([(f"faq/{i:03d}", 1) for i in range(250)], limits)] == [99, 99, 52]

    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    pace = CommitPace(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pace.wait()
        now[0] += 10
    assert slept == []
    pace.wait()  # the fourth commit in the same hour waits until the first is an hour old
    assert slept == [3600 - 30] and now[0] == 3600


def test_a_shard_keeps_row_groups_statistics_and_the_schema(tmp_path):
    from finephrase.compact.write import write_shard
    from finephrase.store.schema import OUTPUT_SCHEMA

    rows = [{"id": f"d{i}/faq", "source_id": f"d{i}", "prompt": "faq", "prompt_hash": "h", "text": "x" * 200,
             "output_tokens": i} for i in range(1000)]
    for k in range(4):
        pq.write_table(pa.Table.from_pylist(rows[k * 250:(k + 1) * 250], schema=OUTPUT_SCHEMA),
                       tmp_path / f"00000_{k:06d}.parquet")
    rec = write_shard(tmp_path, tmp_path / "out", "faq/train-00000-of-00001.parquet",
                      [f"00000_{k:06d}.parquet" for k in range(4)], 1000)
    pf = pq.ParquetFile(tmp_path / "out" / rec["path"])
    assert rec["rows"] == pf.metadata.num_rows == 1000 and pf.schema_arrow.equals(OUTPUT_SCHEMA)
    col = pf.schema_arrow.get_field_index("output_tokens")
    stats = pf.metadata.row_group(0).column(col).statistics
    assert stats is not None and stats.min == 0 and stats.max == 999
    assert pf.metadata.row_group(0).column(pf.schema_arrow.get_field_index("text")).statistics is None
    assert pq.read_table(tmp_path / "out" / rec["path"]).column("source_id").to_pylist() == [r["source_id"]
                                                                                               for r in rows]


def test_card_dedup_and_mix_read_a_compacted_run(tmp_path):
    """A compacted run is read like the run: its card's configs load, dedup and mix take it, and a compacted dedup
    output brings in the run's rejects and filtered lists."""
    rows = [{**r, "id": f"d{i:03d}", "int_score": i % 3} for i, r in enumerate(small_rows(20) * 3)]
    rows[5]["text"] = "FLAKY " + rows[5]["text"]  # the stand-in answers 500: a reject
    src = write_parquet(tmp_path / "in.parquet", rows)
    fake = FakeServer().start()
    try:
        _rephrase(src, tmp_path / "run", fake.url, "--chunk-size", "4", "--where", "int_score >= 1")
    finally:
        fake.stop()
    run, out = tmp_path / "run", tmp_path / "compacted"
    assert run_cli("compact", run, "--output", out, "--target-rows", "10").returncode == 0
    r = run_cli("status", out)
    assert r.returncode == 0 and "FINISHED compaction of" in r.stdout, r.stdout + r.stderr
    r = run_cli("report", out)
    assert r.returncode == 2 and "is a compaction of" in r.stderr
    r = run_cli("card", out)
    assert r.returncode == 0, r.stderr
    loaded = load_every_config(out, tmp_path / "cache")
    counts = orjson.loads((run / "manifest.json").read_bytes())["counts"]
    assert loaded["faq"] == counts["rows"]["faq"]

    dedup = tmp_path / "dedup"
    r = run_cli("dedup", out, "--output", dedup)
    assert r.returncode == 0, r.stderr
    assert run_cli("verify", dedup).returncode == 0
    final = tmp_path / "final"
    r = run_cli("compact", dedup, "--output", final)
    assert r.returncode == 0, r.stderr
    assert (final / "rejects" / "faq").is_dir() and (final / "filtered").is_dir()  # from the run
    v = run_cli("verify", final)
    assert v.returncode == 0, v.stdout

    r = run_cli("mix", "--synthetic", out, "--source", src, "--output", tmp_path / "mix", "--synthetic-share", "0.5",
                "--allow-repeats")
    assert r.returncode == 0, r.stderr
    mixed = pq.read_table(tmp_path / "mix" / "train").to_pylist()
    assert any(m["source"].startswith("synthetic:") for m in mixed)
