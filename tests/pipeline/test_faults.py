"""Request-level faults, against a stand-in server (tests/fakeserver.py): what is under test is our own
client's and run's behaviour under faults, not generation."""

import pyarrow.parquet as pq
from conftest import run_cli, run_cli_here
from fakeserver import FakeServer


def _docs(tmp_path, texts):
    import orjson

    p = tmp_path / "docs.jsonl"
    p.write_bytes(b"".join(orjson.dumps({"id": f"d{i}", "text": t}) + b"\n" for i, t in enumerate(texts)))
    return p


def test_overflow_timeout_5xx_retry(tmp_path):
    fake = FakeServer(slow_seconds=3).start()
    try:
        src = _docs(tmp_path, ["plain document one", "OVERFLOW please", "SLOW answer", "FLAKY server",
                               "RETRY once then fine", "plain document two"])
        out = tmp_path / "out"
        r = run_cli_here("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                         "--endpoint-url", fake.url, "--request-timeout", "1", "--max-retries", "1")
        assert r.returncode == 0, r.stderr
        rejects = {x["source_id"]: x["reject_reason"] for x in pq.read_table(out / "rejects" / "faq").to_pylist()}
        assert rejects == {"d1": "context_overflow", "d2": "timeout", "d3": "http_500"}
        rows = {x["source_id"] for x in pq.read_table(out / "faq").to_pylist()}
        assert rows == {"d0", "d4", "d5"}  # d4 succeeded on its retry
        assert run_cli_here("verify", out).returncode == 0
    finally:
        fake.stop()


def test_server_dies_mid_run_then_resume(tmp_path):
    texts = [f"document number {i} about lists and dicts" for i in range(20)]
    src = _docs(tmp_path, texts)
    out = tmp_path / "out"
    fake = FakeServer(die_after=9).start()
    args = ["rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--chunk-size", "4",
            "--max-concurrency", "1", "--max-retries", "1"]
    r = run_cli(*args, "--endpoint-url", fake.url)
    # a dead server is a run-level error, not 20 rejects
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "unreachable" in r.stderr.strip().splitlines()[-1] or "unreachable" in r.stderr
    assert not (out / "rejects").exists()
    committed = pq.read_table(out / "faq").num_rows
    assert 0 < committed < 20 and committed % 4 == 0
    fake2 = FakeServer().start()
    try:
        r = run_cli(*args, "--endpoint-url", fake2.url)  # the endpoint URL may change between attempts
        assert r.returncode == 0, r.stderr
        assert fake2.requests == 20 - committed + 1  # only what was left (+1 preflight request)
    finally:
        fake2.stop()
    ids = sorted(x["source_id"] for x in pq.read_table(out / "faq").to_pylist())
    assert ids == sorted(f"d{i}" for i in range(20))
    assert run_cli_here("verify", out).returncode == 0


def test_reader_that_does_not_resume_is_refused(tmp_path):
    """A hand-driven pipeline whose reader lacks resume_dir would commit the first documents twice: refused."""
    import pytest

    from finephrase.errors import FinephraseError
    from finephrase.pipeline.filters.quality import QualityFilter
    from finephrase.pipeline.inference.rephrase import Rephrase
    from finephrase.pipeline.readers.resumable import ResumableReader
    from finephrase.pipeline.writers.chunk_writer import ChunkWriter
    from finephrase.prompts.library import load_prompts
    from finephrase.serving import Endpoint
    from finephrase.serving.client import Sampling

    fake = FakeServer().start()

    def drive(reader):  # the steps chained by hand, as datatrove's executor chains them
        data = reader.run(rank=0, world_size=1)
        for step in (Rephrase(load_prompts("faq"), Endpoint(fake.url, "fake-model"), Sampling(max_tokens=32),
                              context_length=1024, progress_tty=False, chunk_size=2, resume_dir=str(out)),
                     QualityFilter(), ChunkWriter(str(out), chunk_size=2)):
            data = step.run(data, rank=0, world_size=1)
        list(data)

    try:
        src = _docs(tmp_path, [f"doc {i}" for i in range(6)])
        out = tmp_path / "out"
        drive(ResumableReader(str(src), limit=4))
        (out / ".ledger" / "rank_00000.jsonl").write_bytes(  # forget "finished": an interrupted run
            b"".join(l + b"\n" for l in (out / ".ledger" / "rank_00000.jsonl").read_bytes().splitlines()[:-1]))
        with pytest.raises(FinephraseError, match="resume_dir"):
            drive(ResumableReader(str(src)))
        drive(ResumableReader(str(src), resume_dir=str(out)))
        ids = sorted(x["source_id"] for x in pq.read_table(out / "faq").to_pylist())
        assert ids == [f"d{i}" for i in range(6)]
    finally:
        fake.stop()


def test_second_process_on_the_same_task_is_refused(tmp_path):
    """A manual resubmit while the old job still runs: the second process stops at once, the first finishes."""
    import subprocess
    import sys
    import time

    from conftest import REPO

    fake = FakeServer(slow_seconds=1.0).start()
    try:
        src = _docs(tmp_path, [f"SLOW document {i}" for i in range(6)])
        out = tmp_path / "out"
        args = ["rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--endpoint-url",
                fake.url, "--max-concurrency", "1", "--chunk-size", "2"]
        first = subprocess.Popen([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out / ".ledger" / "rank_00000.lock").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = run_cli(*args)
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith("error: task 0 is already running (pid ") and "Traceback" not in second.stderr
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert run_cli_here("verify", out).returncode == 0
        assert run_cli(*args).returncode == 0  # the lock went with the first process
    finally:
        fake.stop()
