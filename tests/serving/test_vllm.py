"""The real vLLM engine, on the CPU (opt-in: `make test-vllm`, which sets up .venv-vllm and the model folder).

`finephrase rephrase --backend vllm` starts `python -m vllm.entrypoints.openai.api_server` (vllm-cpu) on
SmolLM2-135M-Instruct converted from the packaged GGUF (scripts/gguf_to_hf.py): exactly once, the served model's
own tokenizer for truncation (vLLM's /tokenize), and a vLLM server killed mid-run is restarted by the run.
Skipped unless vllm is importable and the converted model folder exists (FINEPHRASE_VLLM_MODEL, default
.cache/smollm2-135m-hf).
"""

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SAMPLE, ledger_line_count, read_generations, run_cli, small_rows, write_parquet

pytestmark = pytest.mark.vllm

MODEL_DIR = Path(os.environ.get("FINEPHRASE_VLLM_MODEL", REPO / ".cache" / "smollm2-135m-hf")).resolve()
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# what vLLM on the CPU needs: no Hub access (the model is a local folder), a small KV cache (GiB)
ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not installed (run `make test-vllm`, which sets up .venv-vllm)", allow_module_level=True)
if not (MODEL_DIR / "config.json").exists():
    pytest.skip(f"no converted model at {MODEL_DIR} (run scripts/setup_vllm_cpu.sh)", allow_module_level=True)


def vllm_args(src, out, prompts, *extra):
    # --enforce-eager: no torch.compile, a start in a fraction of the time.
    # --max-num-batched-tokens: room for every prompt of these tests in one step. vllm-cpu 0.32 crashes its engine
    # (RuntimeError: CPU Generator does not use offset) when a request with a seed (--seed sends one per request)
    # is prefilled in pieces, which happens as soon as the prompts in flight exceed the step's token budget
    # (2048 by default here).
    return ["rephrase", src, "--prompt", prompts, "--output", out, "--backend", "vllm", "--model", MODEL_DIR,
            "--context-length", "2048", "--max-tokens", "64", "--vllm-arg=--enforce-eager",
            "--vllm-arg=--max-num-batched-tokens=16384", "--seed", "0", *extra]


def group_members(pgid: int) -> list[str]:
    """Live processes (zombies aside) in the session the server was started in (its pid): it and its engine."""
    ps = subprocess.run(["ps", "-o", "stat=,pid=,args=", "--sid", str(pgid)], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.strip() and not line.lstrip().startswith("Z")]


def group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.mark.timeout(1200)
def test_rephrase_on_the_real_vllm_engine(tmp_path):
    rows = small_rows(4, chars=300)
    long_doc = max(pq.read_table(SAMPLE).to_pylist(), key=lambda r: r["token_count"])  # ~33k tokens: truncated
    rows.append(long_doc)
    src = write_parquet(tmp_path / "docs.parquet", rows)
    out = tmp_path / "out"
    r = run_cli(*vllm_args(src, out, "faq,summarize"), timeout=1100, env=ENV)
    assert r.returncode == 0, r.stderr
    log = (out / "logs" / "server.log").read_text(errors="replace")
    assert "vllm" in log.lower(), log[-2000:]  # the real engine served it, not a stand-in

    for prompt in ("faq", "summarize"):
        got = read_generations(out, prompt)  # rows and rejects (64 tokens cut most generations short: `length`)
        ids = sorted(g["source_id"] for g in got)
        assert ids == sorted(r_["id"] for r_ in rows), prompt  # exactly once
        assert {g["model"] for g in got} == {str(MODEL_DIR)}
        assert all(g["text"].strip() and 0 < g["output_tokens"] <= 64 for g in got), prompt  # real generations
        # truncation used the served model's own tokenizer (vLLM /tokenize): only the long document was cut
        truncated = {g["source_id"] for g in got if g["input_truncated"]}
        assert truncated == {long_doc["id"]}, prompt

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["status"] == "finished", manifest["status"]
    assert manifest["software"].get("vllm-cpu") or manifest["software"].get("vllm")  # the engine's version is recorded
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    # the server is gone after the run (its engine-core child too)
    port = r.stderr.split("model server ready at http://127.0.0.1:")[1].split()[0].rstrip(".,)")
    assert not subprocess.run(["pgrep", "-f", f"{SERVER_MODULE} .*--port {port} "], capture_output=True).stdout


@pytest.mark.timeout(1800)
def test_vllm_server_killed_mid_run_is_restarted(tmp_path):
    rows = small_rows(8, chars=250)
    src = write_parquet(tmp_path / "docs.parquet", rows)
    out = tmp_path / "out"
    args = vllm_args(src, out, "faq", "--chunk-size", "2", "--max-concurrency", "2")
    proc = subprocess.Popen([sys.executable, "-m", "finephrase.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    server: list[str] = []
    try:
        deadline = time.monotonic() + 900
        while ledger_line_count(out) < 1:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no chunk committed in 900 s"
            time.sleep(0.05)
        server = subprocess.run(["pgrep", "-f", f"-P{proc.pid}", SERVER_MODULE], capture_output=True,
                                text=True).stdout.split()
        assert len(server) == 1, server
        entries = [orjson.loads(l) for l in (out / ".ledger" / "rank_00000.jsonl").read_bytes().splitlines()]
        assert not any(e.get("finished") for e in entries), "killed too late: the run had already finished"
        os.kill(int(server[0]), signal.SIGKILL)
        _, err = proc.communicate(timeout=1200)
        # the killed server's engine processes (EngineCore, Worker: its process group) did not outlive it
        left = [] if group_gone(int(server[0])) else group_members(int(server[0]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server and group_members(int(server[0])):  # never leave our engine processes behind
            os.killpg(int(server[0]), signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "model server died: restart 1/3" in err
    assert not left, left
    v = run_cli("verify", out)
    assert v.returncode == 0, v.stdout
    ids = sorted(x["source_id"] for x in read_generations(out, "faq"))
    assert ids == sorted(r["id"] for r in rows)
    log = (out / "logs" / "server.log").read_text(errors="replace")
    assert log.count("Starting vLLM server on") == 2, log[-3000:]  # the first start and the restart


def test_constrained_generation_and_prefix_cache_on_vllm(tmp_path):
    """--constrain-format on vLLM: faq's grammar goes as `structured_outputs` and every generation that stopped
    has its shape; the second prompt of a document is served from vLLM's prefix cache (the vllm backend starts
    the server with --enable-prompt-tokens-details, so it is counted)."""
    from expected_shapes import SHAPES

    rows = small_rows(3, chars=1200)
    src = write_parquet(tmp_path / "docs.parquet", rows)
    out = tmp_path / "out"
    args = vllm_args(src, out, "faq,summarize", "--constrain-format")
    args[args.index("--max-tokens") + 1] = "300"
    r = run_cli(*args, timeout=1500, env=ENV)
    assert r.returncode == 0, r.stderr
    faq = read_generations(out, "faq")
    stopped = [g for g in faq if g["finish_reason"] == "stop"]
    assert stopped, faq
    for g in stopped:
        assert re.fullmatch(SHAPES["faq"], g["text"].strip() + "\n\n"), g["text"]
    summaries = read_generations(out, "summarize")
    assert len(summaries) == 3 and all((g["cached_tokens"] or 0) > 0.5 * g["input_tokens"] for g in summaries)
    assert run_cli("verify", out).returncode == 0


@pytest.mark.timeout(600)
def test_production_recipe_flags_against_the_real_parser():
    """pipelines/production.py's vLLM command line, parsed by the installed vLLM's own `serve` parser (vllm-cpu
    0.32.0 here: the same release the [gpu] extra pins, so the same parser), the way `finephrase.run.runner` checks it
    before a task starts (vllm_flags.py). A flag vLLM lacks is refused with one line naming it; `suffix` without
    arctic-inference is refused naming the package; in a child process, as the run does it."""
    import vllm
    from conftest import production_flags

    from finephrase.errors import UsageError
    from finephrase.serving import vllm_flags

    flags = production_flags()
    parser = vllm_flags.vllm_parser()
    assert parser is not None, f"make_arg_parser not found in vLLM {vllm.__version__}"
    assert vllm_flags.check_flags(flags, parser, vllm.__version__) is None  # every flag of the recipe exists
    line = vllm_flags.check_flags([*flags, "--no-such-flag=1"], vllm_flags.vllm_parser(), vllm.__version__)
    assert line.startswith(f"the installed vLLM {vllm.__version__} has no flag --no-such-flag:"), line

    without_spec = [a for a in flags if not a.startswith("--speculative-config")]
    vllm_flags.check_command(without_spec)  # the child process accepts the rest of the recipe
    with pytest.raises(UsageError) as e:
        vllm_flags.check_command([*without_spec, "--no-such-flag=1"])
    assert "\n" not in str(e.value) and "--no-such-flag" in str(e.value)
    if importlib.util.find_spec("arctic_inference") is None and vllm_flags._suffix_needs_arctic():
        with pytest.raises(UsageError, match="arctic-inference"):
            vllm_flags.check_command(flags)
