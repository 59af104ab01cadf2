"""Refusals before anything is spent: each bad input, column, flag or budget stops the run with one line and exit
code 2, before the output folder exists and before a model server starts (no "starting ... server" line, no
llama.cpp process); a finished run, rerun, starts no server. The stand-in server is used where what is tested is
our own checks against an endpoint (model names)."""

import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SAMPLE, refused, run_cli, small_rows, write_parquet
from fakeserver import FakeServer


@pytest.mark.parametrize("flags, words", [
    (["--where", "nosuchcol >= 4"], ["no column 'nosuchcol'", "python-docs.parquet"]),
    (["--where", "int_score >= four"], ["'four' is not a number", "int64"]),
    (["--limit", "-5"], ["--limit -5"]),
    (["--limit", "0"], ["--limit 0"]),
    (["--temperature", "-1"], ["--temperature"]),
    (["--top-p", "2"], ["--top-p"]),
    (["--min-chars", "500", "--max-chars", "100"], ["--min-chars 500 is above --max-chars 100"]),
    (["--token-budget", "-1"], ["--token-budget"]),
    (["--sample-rate", "0"], ["--sample-rate"]),
    (["--max-tokens", "5000"], ["no room for the document", "--context-length"]),
    (["--max-tokens", "1900"], ["under a quarter of it", "--allow-short-documents"]),
    (["--id-column", "doc_id"], ["no column 'doc_id'", "--id-column"]),
    (["--prompts", "math"], ["see `finephrase rephrase --help`"]),  # no abbreviation of --prompts-dir
])
def test_bad_flags_are_refused_before_anything_starts(tmp_path, flags, words):
    out = tmp_path / "out"
    args = ["rephrase", SAMPLE, "--output", out, *flags]
    if "--prompts" not in flags:
        args += ["--prompt", "faq"]
    refused(run_cli(*args, timeout=60), out, *words)


def test_bad_inputs_name_the_file(tmp_path):
    out = tmp_path / "out"
    notext = write_parquet(tmp_path / "notext.parquet", [{"id": "a", "content": "words here"}])
    refused(run_cli("rephrase", notext, "--prompt", "faq", "--output", out, timeout=60), out,
            "notext.parquet has no column 'text'", "id, content", "--text-column")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), empty)
    refused(run_cli("rephrase", empty, "--prompt", "faq", "--output", out, timeout=60), out, "no documents")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    refused(run_cli("rephrase", corrupt, "--prompt", "faq", "--output", out, timeout=60), out,
            str(corrupt), "cannot be read as parquet")
    refused(run_cli("rephrase", "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/000_00000.parquet", "--prompt",
                    "faq", "--output", out, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"},
                    timeout=120), out, "cannot reach the Hugging Face Hub", "HF_ENDPOINT")
    refused(run_cli("prompts", "--prompts-dir", tmp_path / "nope", timeout=60), out, "does not exist")


def test_a_jsonl_whose_first_records_are_bad_is_not_refused(tmp_path):
    """Document-level problems stay rejects: a broken first record does not stop the run's preflight."""
    from finephrase.pipeline.readers.resumable import resolve_inputs
    from finephrase.run.preflight import check_inputs
    from finephrase.run.runner import RunConfig

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "x", "broken"\n{"id": "y", "body": "no text here"}\n{"id": "z", "text": "fine", "n": 3}\n')
    cfg = RunConfig.for_backend("embedded", inputs=[str(src)], output=str(tmp_path / "o"), prompts=[],
                                where=["n >= 2"])
    check_inputs(resolve_inputs([str(src)]), cfg.text_column, cfg.where)  # no error


def test_an_endpoint_that_serves_another_model_is_refused(tmp_path):
    fake = FakeServer(models=["SmolLM2-135M-Instruct"]).start()
    try:
        out = tmp_path / "out"
        r = run_cli("rephrase", write_parquet(tmp_path / "d.parquet", small_rows(2)), "--prompt", "faq", "--output",
                    out, "--backend", "endpoint", "--endpoint-url", fake.url, "--model", "foo", timeout=60)
        refused(r, out, "serves SmolLM2-135M-Instruct, not 'foo'", "--model SmolLM2-135M-Instruct")
        assert not fake.bodies  # not one request was sent
    finally:
        fake.stop()


def test_a_finished_run_rerun_starts_no_server_and_a_dropped_prompt_is_named(tmp_path):
    src = write_parquet(tmp_path / "d.parquet", small_rows(1, chars=200))
    out = tmp_path / "out"
    args = ["rephrase", src, "--prompt", "faq,table", "--output", out, "--max-tokens", "16", "--seed", "0"]
    first = run_cli(*args, timeout=300)
    assert first.returncode == 0 and "starting the embedded model server" in first.stderr, first.stderr
    t0 = time.monotonic()
    again = run_cli(*args, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stderr and "no model server started" in again.stderr
    assert "starting the" not in again.stderr and "Not doing anything" not in again.stderr
    assert time.monotonic() - t0 < 30
    r = run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--max-tokens", "16", "--seed", "0", timeout=60)
    assert r.returncode == 2 and "prompts (table dropped)" in r.stderr and "starting the" not in r.stderr


def test_status_into_a_closed_pipe_ends_quietly(tmp_path):
    fake = FakeServer().start()
    try:
        out = tmp_path / "out"
        assert run_cli("rephrase", write_parquet(tmp_path / "d.parquet", small_rows(2)), "--prompt", "faq",
                       "--output", out, "--backend", "endpoint", "--endpoint-url", fake.url).returncode == 0
    finally:
        fake.stop()
    r = subprocess.run(f"{sys.executable} -m finephrase.cli status {out} --watch 1 | head -3", shell=True,
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "run " in r.stdout and "BrokenPipe" not in r.stderr and "Traceback" not in r.stderr


def test_a_failing_tasks_error_is_not_printed_twice(capsys):
    """datatrove logs a failing task's exception as ERROR (kept in the task log); the console shows only the CLI's
    own one-line `error:`, and still shows other warnings."""
    from loguru import logger

    from finephrase.process.console import setup_console_logging

    setup_console_logging()
    try:
        logger.patch(lambda r: r.update(name="datatrove.executor.local")).error("Traceback: the task failed")
        logger.patch(lambda r: r.update(name="finephrase.run.runner")).warning("a warning of ours")
        logger.patch(lambda r: r.update(name="datatrove.pipeline.readers")).warning("a warning of datatrove's")
        err = capsys.readouterr().err
    finally:  # the sink above writes to this test's captured stderr: back to the default one
        logger.remove()
        logger.add(sys.stderr)
    assert "the task failed" not in err and "a warning of ours" in err and "a warning of datatrove's" in err


def test_sampling_checks_itself_where_it_is_made():
    """A pipeline file's Sampling(...) is refused as the CLI's flags are: one line, before anything starts."""
    from finephrase.errors import UsageError
    from finephrase.serving.client import Sampling

    for kwargs, flag in (({"temperature": -1}, "--temperature"), ({"top_p": 1.5}, "--top-p"),
                         ({"top_k": -2}, "--top-k"), ({"max_tokens": 0}, "--max-tokens")):
        with pytest.raises(UsageError, match=flag):
            Sampling(**kwargs)
    assert Sampling(temperature=0, top_p=1, top_k=0, max_tokens=1).to_dict()["max_tokens"] == 1
