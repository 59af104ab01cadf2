"""On a real SLURM cluster (slurm-wlm on localhost: `slurm/local-cluster.sh up`, which .ci/run does), with the
real embedded model in every array task. Skipped when no cluster answers."""

import os
import re
import shutil
import subprocess
import time

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import REPO, ledger_line_count, run_cli, small_rows, source_ids, write_parquet

pytestmark = pytest.mark.slurm


def _cluster_up() -> bool:
    if not shutil.which("sbatch") or not os.environ.get("SLURM_CONF"):
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mixed", "allocated"))


if not _cluster_up():
    pytest.skip("no SLURM cluster (run `slurm/local-cluster.sh up` and export SLURM_CONF)", allow_module_level=True)

FLAGS = ["--max-tokens", "48", "--context-length", "1024", "--chunk-size", "2", "--seed", "0"]
SBATCH = ["sbatch", "--parsable", "--gpus-per-node=0", "--cpus-per-task=1", "--time=15"]


def _inputs(tmp_path, files=2, per_file=3, chars=160):
    rows = small_rows(files * per_file, chars=chars)
    for i in range(files):
        write_parquet(tmp_path / "in" / f"part-{i}.parquet", rows[i * per_file:(i + 1) * per_file])
    return tmp_path / "in", rows


def _submit(tmp_path, out, inputs, array="0-1", extra=()):
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    r = subprocess.run([*SBATCH, f"--array={array}", f"--output={logs}/%A_%a.out", *extra, "slurm/rephrase.sh",
                        "rephrase", str(inputs), "--prompt", "faq", "--output", str(out), *FLAGS],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def _queued(job) -> bool:
    r = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True, text=True)
    return bool(r.stdout.strip())


def _wait_gone(job, timeout=300):
    deadline = time.monotonic() + timeout
    while _queued(job):
        assert time.monotonic() < deadline, subprocess.run(["squeue"], capture_output=True, text=True).stdout
        time.sleep(0.5)


def _wait_first_commit(out, job, timeout=300):
    deadline = time.monotonic() + timeout
    while ledger_line_count(out) < 1:
        assert time.monotonic() < deadline and _queued(job), "no chunk committed"
        time.sleep(0.1)


def test_array_job_exactly_once(tmp_path):
    inputs, rows = _inputs(tmp_path)
    out = tmp_path / "out"
    job = _submit(tmp_path, out, inputs)
    dedup_out = tmp_path / "dedup"
    stage = _stage(tmp_path, job, "dedup", out, "--output", dedup_out)  # the next stage, chained with afterok
    _wait_gone(job)
    logs = sorted(p for p in (tmp_path / "logs").iterdir() if not p.name.endswith("_stage.out"))
    assert len(logs) == 2, logs
    for log in logs:
        text = log.read_text()
        assert "exit 0" in text, text[-2000:]
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["status"] == "finished" and manifest["config"]["tasks"] == 2
    assert {s["rank"] for s in manifest["sessions"]} == {0, 1}
    assert source_ids(out) == sorted(r["id"] for r in rows)
    # the dedup stage ran after the array, on the finished run: every row kept or removed, once
    _wait_gone(stage)
    stage_log = (tmp_path / "logs" / f"{stage}_stage.out").read_text()
    assert "stage exit 0" in stage_log, stage_log
    d = orjson.loads((dedup_out / "manifest.json").read_bytes())["dedup"]
    kept = pq.read_table(dedup_out / "faq").num_rows if d["kept"]["faq"] else 0
    assert kept == d["kept"]["faq"] and d["input"]["faq"] == manifest["counts"]["rows"]["faq"]
    assert d["kept"]["faq"] + sum(d["removed"]["faq"].values()) == d["input"]["faq"]
    # resubmitting the finished run does nothing and changes nothing: its tasks start no model server
    files = _files(out)
    again = _submit(tmp_path, out, inputs)
    _wait_gone(again)
    assert _files(out) == files
    for log in sorted((tmp_path / "logs").glob(f"{again}_*.out")):
        text = log.read_text()
        assert "already finished" in text and "starting the embedded model server" not in text, text[-2000:]
    assert len(list((tmp_path / "logs").glob(f"{again}_*.out"))) == 2
    assert run_cli("verify", out).returncode == 0


def _files(out) -> list[str]:
    """The run's data files (rows and rejects), as relative paths."""
    return sorted(p.relative_to(out).as_posix() for d in ("faq", "rejects/faq") if (out / d).is_dir()
                  for p in (out / d).iterdir())


@pytest.mark.slow  # over a minute of the suite's 2 cores, with a real model per task: `make test-slow`, .ci/run
def test_requeue_mid_run(tmp_path):
    inputs, rows = _inputs(tmp_path, files=1, per_file=12)
    out = tmp_path / "out"
    job = _submit(tmp_path, out, inputs, array="0")
    stage = _stage(tmp_path, job, "verify", out)  # chained: must wait for the requeued task's second attempt
    _wait_first_commit(out, job)
    task = f"{job}_0"
    subprocess.run(["scontrol", "requeue", task], check=True)
    # a requeued job is held back ~2 minutes by default: start it as soon as it is pending again
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", task, "-o", "%T"], capture_output=True, text=True).stdout
        if "PENDING" in state:
            subprocess.run(["scontrol", "update", f"jobid={task}", "StartTime=now"], capture_output=True)
            break
        time.sleep(0.2)
    _wait_gone(job)
    log = (tmp_path / "logs" / f"{job}_0.out").read_text()
    assert "attempt 0" in log and "attempt 1" in log, log[-3000:]  # the earlier attempt's log is kept
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    assert source_ids(out) == sorted(r["id"] for r in rows)
    # the afterok stage ran once, after the task's last attempt ended, and found the run complete
    _wait_gone(stage)
    stage_log = (tmp_path / "logs" / f"{stage}_stage.out").read_text()
    assert stage_log.count("stage job") == 1 and "stage exit 0" in stage_log, stage_log
    assert "OK: every (document, prompt) has exactly one row or reject" in stage_log, stage_log
    task_end = re.findall(r"task 0 exit 0 at (\S+Z)", log)[-1]
    stage_start = re.search(r"stage job \d+ on \S+ at (\S+Z):", stage_log).group(1)
    assert stage_start >= task_end, (stage_log, log[-500:])


def _stage(tmp_path, after_job, *args):
    """sbatch slurm/stage.sh ARGS as a job that depends on `after_job` (afterok)."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    r = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=1", "--time=15", f"--dependency=afterok:{after_job}",
                        f"--output={logs}/%j_stage.out", "slurm/stage.sh", *map(str, args)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def test_stage_cancelled_when_a_task_fails(tmp_path):
    """afterok on an array with a failed task: the stage is cancelled (--kill-on-invalid-dep), not left
    waiting in the queue forever, and never runs."""
    out = tmp_path / "out"
    job = _submit(tmp_path, out, tmp_path / "missing.parquet", array="0-1")
    stage = _stage(tmp_path, job, "verify", out)
    _wait_gone(job)
    _wait_gone(stage, timeout=60)
    assert not (tmp_path / "logs" / f"{stage}_stage.out").exists()
    state = subprocess.run(["scontrol", "show", "job", stage], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in state or "Invalid job id" in state or not state, state


@pytest.mark.slow  # over a minute of the suite's 2 cores, with a real model per task: `make test-slow`, .ci/run
def test_scancel_then_resubmit(tmp_path):
    inputs, rows = _inputs(tmp_path, files=1, per_file=12)
    out = tmp_path / "out"
    job = _submit(tmp_path, out, inputs, array="0")
    _wait_first_commit(out, job)
    subprocess.run(["scancel", job], check=True)
    _wait_gone(job)
    assert run_cli("verify", out).returncode == 1  # not finished
    job2 = _submit(tmp_path, out, inputs, array="0")
    _wait_gone(job2)
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    assert source_ids(out) == sorted(r["id"] for r in rows)


def test_compaction_array_after_the_rephrase_array(tmp_path):
    """`finephrase compact` as a 2-task array chained after the rephrase array: each task writes its own shards
    (the plan's rank::tasks), the one that commits the last shard writes the manifest; the result verifies."""
    inputs, rows = _inputs(tmp_path, files=2, per_file=4)
    out, compacted = tmp_path / "out", tmp_path / "compacted"
    job = _submit(tmp_path, out, inputs)
    logs = tmp_path / "logs"
    r = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=1", "--time=15", "--array=0-1",
                        f"--dependency=afterok:{job}", f"--output={logs}/%A_%a_compact.out", "slurm/stage.sh",
                        "compact", str(out), "--output", str(compacted), "--target-rows", "1"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    stage = r.stdout.strip().split(";")[0]
    _wait_gone(job)
    _wait_gone(stage)
    task_logs = sorted(logs.glob(f"{stage}_*_compact.out"))
    assert len(task_logs) == 2 and all("stage exit 0" in p.read_text() for p in task_logs), \
        [p.read_text()[-1500:] for p in task_logs]
    done = {rank: [orjson.loads(line)["path"] for line in
                   (compacted / ".compact" / f"done_{rank:05d}.jsonl").read_bytes().splitlines()] for rank in (0, 1)}
    assert done[0] and done[1] and not set(done[0]) & set(done[1])  # both tasks wrote, no shard twice
    plan = orjson.loads((compacted / ".compact" / "plan.json").read_bytes())
    assert sorted(done[0] + done[1]) == sorted(s["path"] for s in plan["shards"])
    assert orjson.loads((compacted / "manifest.json").read_bytes())["compacted"]["folders"]
    v = run_cli("verify", compacted)
    assert v.returncode == 0, v.stdout
    assert source_ids(compacted) == sorted(r["id"] for r in rows)


@pytest.mark.slow  # over a minute of the suite's 2 cores, with a real model per task: `make test-slow`, .ci/run
def test_sixteen_task_array_with_a_requeue(tmp_path):
    """A 16-task array on one new output folder, one task requeued mid-run: no task exits non-zero (none fails
    because another started or finished beside it), and the run verifies exactly once. The tasks talk to a
    stand-in server (tests/fakeserver.py): what is under test is our own code on a real cluster, not a model."""
    from fakeserver import FakeServer

    for i in range(32):
        write_parquet(tmp_path / "in" / f"part-{i:02d}.parquet",
                      [{"id": f"p{i}-{j}", "text": f"Document {i}-{j} on subject {i * 8 + j}. " * 6} for j in range(8)])
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    fake = FakeServer(delay=0.15).start()
    try:
        r = subprocess.run([*SBATCH, "--array=0-15", f"--output={logs}/%A_%a.out", "slurm/rephrase.sh", "rephrase",
                            str(tmp_path / "in"), "--prompt", "faq,table", "--output", str(out), "--backend",
                            "endpoint", "--endpoint-url", fake.url, "--chunk-size", "2", "--max-concurrency", "2"],
                           cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        job = r.stdout.strip().split(";")[0]
        deadline = time.monotonic() + 300
        while ledger_line_count(out, rank=3) < 1:  # task 3 has committed a chunk: requeue it mid-run
            assert time.monotonic() < deadline and _queued(job), "task 3 committed nothing"
            time.sleep(0.1)
        subprocess.run(["scontrol", "requeue", f"{job}_3"], check=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = subprocess.run(["squeue", "-h", "-j", f"{job}_3", "-o", "%T"], capture_output=True, text=True)
            if "PENDING" in state.stdout:
                subprocess.run(["scontrol", "update", f"jobid={job}_3", "StartTime=now"], capture_output=True)
                break
            time.sleep(0.2)
        _wait_gone(job, timeout=600)
    finally:
        fake.stop()
    task_logs = sorted(logs.glob(f"{job}_*.out"))
    assert len(task_logs) == 16
    for log in task_logs:
        text = log.read_text()
        ends = re.findall(r"task \d+ exit (\d+)", text)
        assert ends and ends[-1] == "0" and "not a finephrase run" not in text, text[-2000:]
    assert "attempt 1" in (logs / f"{job}_3.out").read_text()
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    assert len(source_ids(out)) == 32 * 8


def test_decontaminate_and_score_as_chained_stages(tmp_path):
    """The post-run stages of docs/publishing.md on the cluster: decontaminate, then score after it (afterok), each
    one CPU job of slurm/stage.sh; the outputs verify and add up."""
    import random

    from classifiers import hq_text, lq_text, train_hq_lq
    from synthetic_runs import PROMPTS, write_run

    rng = random.Random(11)
    item = " ".join(hq_text(rng, 1) + f" w{i}" for i in range(14))
    (tmp_path / "bench.jsonl").write_bytes(orjson.dumps({"question": item, "answer": "yes"}) + b"\n")
    texts = {p: [lq_text(rng, 30) for _ in range(20)] for p in PROMPTS}
    texts["faq"][3] = f"Question: {item}?"
    run = write_run(tmp_path, [hq_text(rng, 20) for _ in range(20)], texts, chunk_size=10)
    model = train_hq_lq(tmp_path)
    first = subprocess.run(["sbatch", "--parsable", "--time=1", f"--output={tmp_path}/first.out", "--wrap", "true"],
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    clean, scores = tmp_path / "clean", tmp_path / "scores"
    job = _stage(tmp_path, first.stdout.strip(), "decontaminate", run, "--benchmarks", f"b={tmp_path}/bench.jsonl",
                 "--output", clean, "--check-sources")
    score = _stage(tmp_path, job, "score", clean, "--classifiers", f"q=fasttext:{model}", "--sources",
                   "--output", scores, "--tasks", "2", "--workers", "2")
    _wait_gone(score)
    for j in (job, score):
        log = (tmp_path / "logs" / f"{j}_stage.out").read_text()
        assert "stage exit 0" in log, log[-3000:]
    record = orjson.loads((clean / "manifest.json").read_bytes())["decontamination"]
    assert record["removed"]["faq"] == {"contaminated:b": 1} and record["kept"]["faq"] == 19
    assert run_cli("verify", clean).returncode == 0
    summary = orjson.loads((scores / "scores.json").read_bytes())["prompts"]
    assert summary["faq"]["q"]["rows"]["n"] == 19 and summary["faq"]["q"]["delta"]["mean"] < -0.5
