"""End to end against the real SmolLM2-135M-Instruct model (llama.cpp, CPU): no mocked model."""

import re
import socket
import subprocess

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import read_rows, run_cli, small_rows, write_parquet
from consumer import assert_no_empty_parquet, load_every_config

FAST = ["--max-tokens", "96", "--context-length", "1024", "--seed", "0"]


def test_embedded_two_prompts_exactly_once(tmp_path):
    # five short documents and the longest one of the sample (32k tokens: it must be truncated)
    rows = pq.read_table("data/sample/python-docs.parquet").to_pylist()
    longest = max(rows, key=lambda r: r["token_count"])
    docs = small_rows(5) + [longest]
    small_docs = write_parquet(tmp_path / "in" / "docs.parquet", docs)
    out = tmp_path / "out"
    # the embedded defaults: faq constrained to its grammar (the 135M model hardly writes a FAQ the gate publishes
    # without it), summarize (no grammar) sent as it is; what the gate rejects asked for again, up to 3 times
    r = run_cli("rephrase", small_docs, "--prompt", "faq,summarize", "--output", out, "--chunk-size", "2",
                "--max-tokens", "160", "--context-length", "1024", "--seed", "0")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "faq" in r.stderr and "rows" in r.stderr  # the end summary

    ids = [row["id"] for row in docs]
    for prompt in ("faq", "summarize"):
        rows, rejects = read_rows(out / prompt), read_rows(out / "rejects" / prompt)
        got = [r_["source_id"] for r_ in rows] + [r_["source_id"] for r_ in rejects]
        assert sorted(got) == sorted(ids), prompt  # exactly one row or reject per document
        for row in rows:
            assert row["prompt"] == prompt and row["text"].strip() and row["model"] == "SmolLM2-135M-Instruct"
            assert row["finish_reason"] == "stop" and row["output_tokens"] > 0 and row["input_tokens"] > 0
            assert row["id"] == f"{row['source_id']}/{prompt}"
            assert row["url"].startswith("https://docs.python.org/")  # source columns passed through
            assert 1 <= row["attempt"] <= 3
        for rej in rejects:
            assert rej["reject_reason"] and rej["attempt_reasons"][-1] == rej["reject_reason"]
            assert len(rej["attempt_reasons"]) == rej["attempt"] in (1, 2, 3)
        long_one = [x for x in rows + rejects if x["source_id"] == longest["id"]]
        # cut with the model's own tokenizer (in-process GGUF vocabulary): it fits 1024 - 160 tokens
        assert long_one[0]["input_truncated"] is True
        if long_one[0]["input_tokens"] is not None:
            assert 650 < long_one[0]["input_tokens"] <= 1024 - 160
    all_rows = read_rows(out / "faq") + read_rows(out / "summarize")
    assert all_rows, "the real model produced no publishable row at all"
    hashes = {row["prompt"]: row["prompt_hash"] for row in all_rows}
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["status"] == "finished"
    assert manifest["config"]["backend"] == "embedded" and manifest["config"]["model"] == "SmolLM2-135M-Instruct"
    for p, h in hashes.items():
        assert manifest["config"]["prompts"][p] == h
    assert manifest["counts"]["documents"] == 6
    assert sum(manifest["counts"]["rows"].values()) == len(all_rows)
    assert "datatrove" in manifest["software"]

    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    # the embedded server is gone with the run
    port = re.search(r"model server ready at http://127.0.0.1:(\d+)", r.stderr).group(1)
    assert not subprocess.run(["pgrep", "-f", f"llamacpp_process .*--port {port} "], capture_output=True).stdout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()

    datasets = pytest.importorskip("datasets")
    shown = "faq" if read_rows(out / "faq") else "summarize"
    ds = datasets.load_dataset("parquet", data_files=str(out / shown / "*.parquet"), split="train")
    assert ds.num_rows == len(read_rows(out / shown))
    assert {"id", "source_id", "prompt", "prompt_hash", "text", "model", "finish_reason", "input_tokens",
            "output_tokens", "input_truncated", "attempt", "url", "dump"} <= set(ds.column_names)
    # what a consumer sees: no empty file anywhere (a chunk whose rows were all rejected writes none), and
    # every config of the run's card loads with the installed `datasets`
    assert_no_empty_parquet(out)
    assert run_cli("card", out).returncode == 0
    counts = manifest["counts"]
    loaded = load_every_config(out, tmp_path / "hf")
    assert loaded["all"] == len(all_rows) and loaded.get("rejects", 0) == sum(counts["rejects"].values())


def test_long_document_truncated_with_model_tokenizer(llama_endpoint, tmp_path):
    rows = pq.read_table("data/sample/python-docs.parquet").to_pylist()
    longest = max(rows, key=lambda r: r["token_count"])
    src = write_parquet(tmp_path / "long.parquet", [longest])
    out = tmp_path / "out"
    r = run_cli("rephrase", src, "--prompt", "summarize", "--output", out, "--backend", "endpoint",
                "--endpoint-url", llama_endpoint, "--max-tokens", "64", "--context-length", "1024")
    assert r.returncode == 0, r.stderr
    got = read_rows(out / "summarize") + read_rows(out / "rejects" / "summarize")
    assert len(got) == 1 and got[0]["input_truncated"] is True
    # the prompt that reached the model fits the context: budget = 1024 - 64 - template - margin
    assert got[0].get("reject_reason") != "context_overflow"
    assert got[0]["input_tokens"] is not None and 600 < got[0]["input_tokens"] <= 1024 - 64
    assert run_cli("verify", out).returncode == 0
