import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

TESTS = Path(__file__).resolve().parent  # the helper modules (this file, fakeserver.py, ...) and data/
REPO = TESTS.parent
SAMPLE = REPO / "data" / "sample" / "python-docs.parquet"


def run_cli(*args, timeout=600, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finephrase.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})}, **kw)


def run_cli_here(*args, timeout=None, env=None) -> subprocess.CompletedProcess:
    """`finephrase ARGS` in this process (the fast layer: no interpreter start, no re-import), with what it prints
    and its exit code as `run_cli` returns them, run from the repository root with `env` added to the environment
    (`timeout` is not enforced). For commands that start no model server, and for a rephrasing run on a stand-in
    server (the data path in-process: reader, request loop, gate, writer, manifest); a test of what a user sees of a
    whole process (only one line on stderr, no traceback, signals, kill -9, two processes at once) keeps `run_cli`.
    The signal handlers, the logging, the environment and the working folder are put back after."""
    import contextlib
    import io
    import logging
    import signal

    from finephrase.cli.main import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    environ = dict(os.environ)  # commands set defaults (FINEPHRASE_LOG_LEVEL, TQDM_DISABLE) for their processes
    cwd = os.getcwd()
    root = logging.getLogger()
    log_state = (list(root.handlers), root.level)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        root.handlers[:], root.level = log_state
    return subprocess.CompletedProcess(["finephrase", *map(str, args)], code, out.getvalue(), err.getvalue())


def small_rows(n: int, chars: int = 350) -> list[dict]:
    """n real documents of the bundled sample, cut to about `chars` characters (fast on the 135M CPU model)."""
    rows = pq.read_table(SAMPLE).slice(0, n).to_pylist()
    for r in rows:
        text = r["text"][:chars]
        r["text"] = text[: text.rfind("\n")] if "\n" in text[50:] else text
    return rows


def write_parquet(path: Path, rows: list[dict], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def read_rows(folder: Path) -> list[dict]:
    """Every row of the parquet files of `folder` ([] when it does not exist)."""
    return pq.read_table(folder).to_pylist() if Path(folder).is_dir() else []


def source_ids(out: Path, prompt: str = "faq") -> list[str]:
    """The sorted source ids of every generation of `prompt` in the run folder `out` (rows and rejects)."""
    return sorted(r["source_id"] for r in read_generations(out, prompt))


def ledger_entries(out: Path, rank: int = 0) -> list[dict]:
    """The lines of task `rank`'s ledger ([] before its first commit)."""
    import orjson

    path = Path(out) / ".ledger" / f"rank_{rank:05d}.jsonl"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def ledger_line_count(out: Path, rank: int = 0) -> int:
    """Lines in task `rank`'s ledger, counted without parsing (a line being written is not counted)."""
    path = Path(out) / ".ledger" / f"rank_{rank:05d}.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def assert_one_line_error(r: subprocess.CompletedProcess, *phrases: str, only_line: bool = True):
    """Exit 2 and an `error: ...` line holding every phrase, no traceback; `only_line`: nothing else on stderr."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    if only_line:
        assert len(lines) == 1, r.stderr
    assert lines[-1].startswith("error:"), r.stderr
    for phrase in phrases:
        assert phrase in lines[-1], (phrase, lines[-1])


def refused(r, out, *words):
    """One `error:` line (exit 2), no traceback, nothing started or created."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "starting the" not in r.stderr and "Traceback" not in r.stderr
    assert not out.exists(), f"{out} was created"


def production_flags() -> list[str]:
    """The production recipe's vLLM command line (pipelines/production.py itself), after the launcher."""
    import runpy

    from finephrase.pipeline.inference.rephrase import Rephrase

    pipeline = runpy.run_path(str(REPO / "pipelines" / "production.py"), run_name="production")["pipeline"]
    return next(s for s in pipeline if isinstance(s, Rephrase)).server.engine_flags()


def read_generations(out: Path, prompt: str) -> list[dict]:
    """Every generation of `prompt` in the run folder `out`: its published rows, then its rejects."""
    return [r for d in (out / prompt, out / "rejects" / prompt) if d.exists() for r in pq.read_table(d).to_pylist()]


@pytest.fixture
def small_docs(tmp_path) -> Path:
    return write_parquet(tmp_path / "in" / "docs.parquet", small_rows(6))


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs 2 workers), each worker keeps to its own share of the CPUs, and so do
    the processes it starts (affinity is inherited): the embedded engine sizes its threads to it
    (finephrase/process/cpus.py), so the engines of two workers never spin against each other on one core."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= count > 1:
        index = int(worker.removeprefix("gw"))
        os.sched_setaffinity(0, cpus[index * len(cpus) // count:(index + 1) * len(cpus) // count])


@pytest.fixture(scope="session")
def llama_endpoint():
    """One real llama.cpp server on the packaged SmolLM2-135M-Instruct for the whole session."""
    pytest.importorskip("xllamacpp")
    from finephrase.serving import LlamaCppServer

    server = LlamaCppServer(context_length=1024, log_path=Path(os.environ.get("TMPDIR", "/tmp"))
                            / f"fp-test-llama-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.log")
    server.start()
    yield server.base_url
    server.stop()
