"""`finephrase verify` chunk by chunk, per task and merged: each committed chunk's files hold exactly the ids of
its own input range; the ranges tile the task's input; each task's verdict is recorded in DIR/.verify/ and reused
only while what it covered is unchanged; a share of the tasks (--rank R --tasks N) records its tasks' verdicts and
a plain verify merges them into the report a from-scratch verify prints; card refuses a run changed since.

A stand-in server (tests/fakeserver.py, not a model) answers: what is under test is verify's own accounting.
"""

import os
import shutil
import subprocess
import sys

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, write_parquet
from conftest import run_cli as run_in_subprocess  # a run: its own process, as users start it
from conftest import run_cli_here as run_cli  # the fast layer: the other commands start no model
from fakeserver import FakeServer

from finephrase.verify import render, verify


def _rows(n: int, filtered=()) -> list[dict]:
    return [{"id": f"d{i:03d}", "int_score": 1 if i in filtered else 3,
             "text": f"Document {i} is about topic {i % 7} and explains it in a few words, with an example of {i}."}
            for i in range(n)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished run: 2 tasks of 12 documents each (one input file per task), chunks of 3, prompt faq, some
    documents filtered (int_score 1)."""
    root = tmp_path_factory.mktemp("vc")
    rows = _rows(24, filtered={4, 17})
    write_parquet(root / "in" / "a.parquet", rows[:12])
    write_parquet(root / "in" / "b.parquet", rows[12:])
    fake = FakeServer().start()
    try:
        r = run_in_subprocess("rephrase", root / "in", "--prompt", "faq", "--output", root / "run", "--backend",
                              "endpoint", "--endpoint-url", fake.url, "--tasks", "2", "--workers", "2",
                              "--chunk-size", "3", "--seed", "1", "--where", "int_score >= 2")
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        fake.stop()
    return root / "run"


@pytest.fixture
def run(base, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(base, d)
    shutil.rmtree(d / ".verify", ignore_errors=True)
    return d


def _ledger(run, rank=0) -> list[dict]:
    return [orjson.loads(x) for x in (run / ".ledger" / f"rank_{rank:05d}.jsonl").read_bytes().splitlines()]


def _write_ledger(run, lines, rank=0):
    (run / ".ledger" / f"rank_{rank:05d}.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))


def _chunks(run, rank=0) -> list[dict]:
    return sorted((e for e in _ledger(run, rank) if not e.get("finished")), key=lambda e: e["first"])


def _faq_file(run, entry) -> str:
    return next(f for f in entry["files"] if f.startswith("faq/"))


def _problems(run) -> list[str]:
    return verify(run, fresh=True).problems


def test_a_clean_run_passes_and_records_a_verdict_per_task(run):
    r = run_cli("verify", run)
    assert r.returncode == 0, r.stdout
    assert "OK: every (document, prompt) has exactly one row or reject" in r.stdout
    assert "24 input documents, 2 filtered, 1 prompts, 2 tasks" in r.stdout
    for rank in (0, 1):
        v = orjson.loads((run / ".verify" / f"task_{rank:05d}.json").read_bytes())
        assert v["ok"] and v["problems"] == [] and v["stats"]["input_documents"] == 12 and v["rank"] == rank
        assert v["signature"]["ledger"]["size"] == (run / ".ledger" / f"rank_{rank:05d}.jsonl").stat().st_size
    again = verify(run)
    assert again.ok and again.reused == 2 and again.checked == 0


def test_a_missing_row_and_a_duplicate_are_found_in_their_chunk(run):
    a, b = _chunks(run)[:2]
    t = pq.read_table(run / _faq_file(run, a))
    pq.write_table(t.slice(1), run / _faq_file(run, a))  # its first row lost
    t2 = pq.read_table(run / _faq_file(run, b))
    pq.write_table(pa.concat_tables([t2, t2.slice(0, 1)]), run / _faq_file(run, b))  # its first row twice
    problems = _problems(run)
    lost, twice = t.column("source_id")[0].as_py(), t2.column("source_id")[0].as_py()
    assert f"task 0, prompt faq: 1 documents missing (chunk {a['chunk']}): {lost}" in problems, problems
    assert f"task 0, prompt faq: 1 documents duplicated (chunk {b['chunk']}): {twice}" in problems, problems
    assert len(problems) == 2


def test_a_row_moved_to_another_chunks_file_is_out_of_its_range(run):
    a, b = _chunks(run)[:2]
    ta, tb = pq.read_table(run / _faq_file(run, a)), pq.read_table(run / _faq_file(run, b))
    moved = ta.column("source_id")[0].as_py()
    pq.write_table(ta.slice(1), run / _faq_file(run, a))
    pq.write_table(pa.concat_tables([tb, ta.slice(0, 1)]), run / _faq_file(run, b))
    problems = _problems(run)
    assert problems == [f"task 0, prompt faq: 1 documents missing (chunk {a['chunk']}): {moved}",
                        f"task 0, prompt faq: 1 ids not in the input range of their chunk (chunk {b['chunk']}): "
                        f"{moved}"], problems


def test_a_gap_and_an_overlap_between_ledger_ranges(run):
    lines = _ledger(run)
    chunks = sorted((e for e in lines if not e.get("finished")), key=lambda e: e["first"])
    second = chunks[1]
    gap = [dict(e, first=e["first"] + 1) if e is second else e for e in lines]
    _write_ledger(run, gap)
    problems = _problems(run)
    n = second["first"]
    assert f"task 0: documents {n}..{n} are in no committed chunk (a gap before chunk {second['chunk']})" \
        in problems, problems
    assert any(p.startswith("task 0, prompt faq: 1 ") and "(no chunk)" in p for p in problems), problems

    overlap = [dict(e, first=e["first"] - 1) if e is second else e for e in lines]
    _write_ledger(run, overlap)
    problems = _problems(run)
    assert f"task 0: chunk {second['chunk']} ({n - 1}..{second['pos']['read']}) overlaps the chunk before it " \
        f"(up to {n - 1})" in problems, problems


def test_an_uncommitted_file_and_an_unfinished_task(run):
    shutil.copy(run / _faq_file(run, _chunks(run)[0]), run / "faq" / "00001_000099.parquet")
    problems = _problems(run)
    assert problems == ["1 files not committed by any ledger line (an interrupted run; rerun the same command to "
                        "clean up and resume): faq/00001_000099.parquet"], problems
    (run / "faq" / "00001_000099.parquet").unlink()
    lines = [e for e in _ledger(run, 1) if not e.get("finished")]
    _write_ledger(run, lines[:-1], rank=1)  # killed before its last commit: that chunk's files are leftovers
    problems = _problems(run)
    assert problems[0].startswith(f"{len(lines[-1]['files'])} files not committed by any ledger line")
    assert problems[1].startswith("task 1 has not finished (")
    assert "task 1, prompt faq: " in problems[-1] and "documents missing (no chunk)" in problems[-1]


def test_shares_merge_to_the_whole_run_report(run, tmp_path):
    # a broken run, so that the report has something to compare
    pq.write_table(pq.read_table(run / _faq_file(run, _chunks(run, 1)[0])).slice(1),
                   run / _faq_file(run, _chunks(run, 1)[0]))
    shutil.copy(run / _faq_file(run, _chunks(run)[0]), run / "faq" / "00003_000000.parquet")
    scratch = verify(run, fresh=True)
    shutil.rmtree(run / ".verify")
    shares = [run_cli("verify", run, "--rank", r, "--tasks", "2", "--json") for r in (0, 1)]
    assert [s.returncode for s in shares] == [0, 1], [s.stdout for s in shares]
    assert orjson.loads(shares[0].stdout)["stats"]["share"] == {"rank": 0, "of": 2, "tasks_checked": 1}
    assert sorted(os.listdir(run / ".verify")) == ["task_00000.json", "task_00001.json"]
    merged = run_cli("verify", run)
    assert merged.returncode == 1 and "2 recorded verdicts reused, 0 checked now" in merged.stderr
    assert merged.stdout.strip() == render(scratch, run)
    assert "files not committed by any ledger line" in merged.stdout  # found by the merge's own scan
    # K worker processes: the same report
    assert render(verify(run, workers=2, fresh=True), run) == render(scratch, run)
    auto = run_cli("verify", run, "--rank", "auto", env={"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"})
    assert auto.returncode == 1 and "tasks 1::2: 1 of them" in auto.stdout
    bad = run_cli("verify", run, "--rank", "2", "--tasks", "2")
    assert bad.returncode == 2 and "--rank 2 is outside 0..1" in bad.stderr


def test_a_stale_verdict_is_checked_again(run):
    assert verify(run).checked == 2
    victim = run / _faq_file(run, _chunks(run, 1)[0])
    pq.write_table(pq.read_table(victim).slice(1), victim)  # task 1's files changed after its verdict
    report = verify(run)
    assert report.reused == 1 and report.checked == 1 and not report.ok
    assert report.problems[0].startswith("task 1, prompt faq: 1 documents missing")
    v = orjson.loads((run / ".verify" / "task_00001.json").read_bytes())
    assert not v["ok"]


def test_card_refuses_a_run_changed_after_its_verdict(run):
    assert run_cli("verify", run, "--rank", "0", "--tasks", "1").returncode == 0
    (run / _faq_file(run, _chunks(run)[0])).unlink()
    r = run_cli("card", run)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "does not pass `finephrase verify`" in r.stderr and "missing" in r.stderr
    assert not (run / "README.md").exists()


# -- memory -----------------------------------------------------------------------------------------------------


def _generated_run(root, docs: int, chunk: int = 2000, tasks: int = 2):
    """A run folder written directly with pyarrow and ledger lines (no model, no server): what is under test is
    verify's own memory, so the folder only needs to be a correct run of `docs` documents."""
    from finephrase.pipeline.readers.resumable import ResumableReader
    from finephrase.run.manifest import input_listing
    from finephrase.store.layout import write_manifest

    src = root / "in" / "docs.parquet"
    ids = [f"doc-{i:09d}" for i in range(docs)]
    write_parquet(src, [{"id": i, "text": "x"} for i in ids], row_group_size=5000)
    reader = ResumableReader([str(src)])
    cfg = {"inputs": [str(src)], "text_column": "text", "id_column": "id", "limit": -1, "prompts": {"faq": "h"},
           "tasks": tasks, "input_files": input_listing(reader.files)}
    out = root / "run"
    (out / "faq").mkdir(parents=True)
    (out / ".ledger").mkdir()
    for rank in range(tasks):
        lines, batch = [], []
        for doc in [*reader.iter_documents(rank, tasks, columns=["id"]), None]:
            if doc is not None:
                batch.append(doc)
            if batch and (doc is None or len(batch) == chunk):
                name = f"faq/{rank:05d}_{len(lines):06d}.parquet"
                pq.write_table(pa.table({"source_id": [d.id for d in batch]}), out / name)
                lines.append({"chunk": len(lines), "first": batch[0].metadata["_fp_pos"]["read"],
                              "pos": batch[-1].metadata["_fp_pos"], "docs": len(batch), "rows": len(batch),
                              "rejects": 0, "filtered": 0, "files": [name]})
                batch = []
        lines.append({"finished": True})
        _write_ledger(out, lines, rank)
    write_manifest(out, {"config": cfg, "status": "finished"})
    return out


def _peak_rss_mb(run) -> float:
    """verify's peak RSS, in a fresh process: VmHWM, the high-water mark of that process's own memory. (Not
    getrusage's ru_maxrss: Linux carries it over from the parent across fork and exec, so it would count this
    pytest process, which has just written the folder.)"""
    code = ("import re, sys; from finephrase.verify import verify; r = verify(sys.argv[1], fresh=True); "
            "assert r.ok, r.problems[:3]; "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.strip())


@pytest.mark.slow
def test_verify_memory_does_not_grow_with_the_run(tmp_path):
    small = _peak_rss_mb(_generated_run(tmp_path / "small", 40_000))
    large = _peak_rss_mb(_generated_run(tmp_path / "large", 400_000))
    print(f"verify peak RSS: {small:.0f} MB for 40k documents, {large:.0f} MB for 400k")
    assert large <= 1.2 * small, (small, large)
