"""Backends: the vLLM command line, the vllm backend's process management (with a stand-in `vllm` launcher that
serves the real SmolLM2-135M through llama.cpp, since vLLM itself needs a GPU), several tasks in parallel, and
inputs behind an fsspec protocol (as hf:// is)."""

import os
import re
import stat
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, run_cli_here, small_rows, write_parquet
from fakeserver import FakeServer


def test_vllm_command_has_the_flags():
    from finephrase.serving import VllmServer

    s = VllmServer("HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, max_num_seqs=2048,
                   max_num_batched_tokens=32768, gpu_memory_utilization=0.95,
                   speculative_config={"method": "suffix", "num_speculative_tokens": 32}, port=8123)
    cmd = s.command()
    joined = " ".join(cmd)
    assert "HuggingFaceTB/SmolLM2-1.7B-Instruct" in cmd
    for flag, value in [("--port", "8123"), ("--max-model-len", "8192"), ("--max-num-seqs", "2048"),
                        ("--max-num-batched-tokens", "32768"), ("--gpu-memory-utilization", "0.95"),
                        ("--host", "127.0.0.1")]:
        assert cmd[cmd.index(flag) + 1] == value, flag
    assert '"num_speculative_tokens":32' in joined
    assert "--trust-remote-code" not in cmd  # never unless asked
    assert "--enable-prompt-tokens-details" in cmd  # rows record what vLLM's prefix cache served
    assert "--trust-remote-code" in VllmServer("m", trust_remote_code=True, port=1).command()


def test_vllm_backend_runs_like_an_endpoint(tmp_path, small_docs):
    pytest.importorskip("xllamacpp")
    from finephrase.serving import packaged_gguf_path

    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "vllm"
    # stand-in for `vllm serve MODEL --port P ...`: serves the packaged GGUF with llama.cpp on port P
    launcher.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys
        args = sys.argv[1:]
        assert args[0] == "serve", args
        port = args[args.index("--port") + 1]
        name = args[args.index("--served-model-name") + 1]
        ctx = args[args.index("--max-model-len") + 1]
        os.execv(sys.executable, [sys.executable, "-m", "finephrase.serving.llamacpp_process", "--model",
                 "{packaged_gguf_path()}", "--alias", name, "--context-length", ctx, "--port", port, "--slots", "2"])
        """))
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    r = run_cli("rephrase", small_docs, "--prompt", "summarize", "--output", out, "--backend", "vllm",
                "--model", "HuggingFaceTB/SmolLM2-135M-Instruct", "--context-length", "1024", "--max-tokens", "64",
                "--limit", "2", env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    got = [*(pq.read_table(out / "summarize").to_pylist() if (out / "summarize").exists() else []),
           *(pq.read_table(out / "rejects" / "summarize").to_pylist() if (out / "rejects").exists() else [])]
    assert len(got) == 2 and {g["model"] for g in got} == {"HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert (out / "logs" / "server.log").exists()
    port = re.search(r"model server ready at http://127.0.0.1:(\d+)", r.stderr).group(1)
    assert not subprocess.run(["pgrep", "-f", f"llamacpp_process .*--port {port} "], capture_output=True).stdout
    assert run_cli_here("verify", out).returncode == 0


def test_several_tasks_in_parallel(tmp_path):
    # stand-in server: what is tested is the sharding and the per-task ledgers
    fake = FakeServer().start()
    try:
        rows = small_rows(9, chars=120)
        for i in range(3):
            write_parquet(tmp_path / "in" / f"part-{i}.parquet", rows[i * 3:(i + 1) * 3])
        out = tmp_path / "out"
        r = run_cli("rephrase", tmp_path / "in", "--prompt", "faq,math", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--tasks", "3", "--workers", "2", "--chunk-size", "2")
        assert r.returncode == 0, r.stderr
        files = sorted(p.name for p in (out / "faq").iterdir())
        assert {f[:5] for f in files} == {"00000", "00001", "00002"}  # each task wrote its own chunks
        assert sorted(x["source_id"] for x in pq.read_table(out / "math").to_pylist()) == sorted(x["id"] for x in rows)
        v = run_cli_here("verify", out)
        assert v.returncode == 0, v.stdout
        assert "9 input documents" in v.stdout
    finally:
        fake.stop()


def test_inputs_through_an_fsspec_protocol():
    # hf:// paths go through fsspec like this in-memory filesystem does
    import fsspec

    from finephrase.pipeline.readers.resumable import ResumableReader

    fs = fsspec.filesystem("memory")
    rows = small_rows(4, chars=100)
    with fs.open("/bucket/data/a.parquet", "wb") as f:
        pq.write_table(pa.Table.from_pylist(rows), f)
    reader = ResumableReader("memory://bucket/data")
    assert [f.url for f in reader.files] == ["memory:///bucket/data/a.parquet"]
    docs = list(reader.iter_documents())
    assert [d.id for d in docs] == [r["id"] for r in rows]
    rest = list(reader.iter_documents(start=docs[1].metadata["_fp_pos"]))
    assert [d.id for d in rest] == [r["id"] for r in rows[2:]]
