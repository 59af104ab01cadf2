"""The benchmark scripts (benchmarks/) still run: each in --quick mode, once (marked slow: four minutes in all,
run by `make test-slow` and .ci/run; their --help and the stand-in servers are checked in the default suite).

These assert only that a script completes, prints its table and writes valid JSON with the expected keys, never
a speed: speeds depend on the machine and on what else runs on it (docs/benchmarks.md has the real numbers).
"""

import json
import subprocess
import sys

import pytest
from conftest import REPO

BENCH = REPO / "benchmarks"


def run_bench(name: str, tmp_path, *extra, timeout=120) -> tuple[str, dict]:
    out = tmp_path / f"{name}.json"
    r = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--quick", "--repeats", "1", "--json", str(out),
                        "--workdir", str(tmp_path / "work"), *extra],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, f"{name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "machine: " in r.stdout
    assert "\n---" in r.stdout or "  ---" in r.stdout, f"no table in the output of {name}:\n{r.stdout}"
    data = json.loads(out.read_text())
    for key in ("benchmark", "command", "quick", "repeats", "measured_at", "machine"):
        assert key in data, key
    assert data["benchmark"] == name and data["quick"] is True and data["repeats"] == 1
    for key in ("cpu_model", "cores", "ram_gib", "python", "versions"):
        assert key in data["machine"], key
    for dist in ("finephrase", "datatrove", "httpx", "xllamacpp"):
        assert dist in data["machine"]["versions"], dist
    return r.stdout, data


@pytest.mark.slow
def test_zero_server(tmp_path):
    out, data = run_bench("zero_server", tmp_path, "--bench")
    assert "ceiling:" in out
    assert data["ceiling_requests_per_s"] > 0
    assert data["results"] and data["results"][0]["errors"] == 0


def test_zero_server_answers_like_an_openai_server():
    import httpx
    from _common import ZeroServer  # benchmarks/ is on pytest's pythonpath (pyproject.toml)

    with ZeroServer() as server:
        r = httpx.post(f"{server.url}/v1/chat/completions",
                       json={"model": "zero", "messages": [{"role": "user", "content": "x" * 20000}]})
        assert r.status_code == 200
        body = r.json()
        assert body["choices"][0]["finish_reason"] == "stop" and body["choices"][0]["message"]["content"]
        assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
        assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "zero"
        assert httpx.post(f"{server.url}/tokenize", json={}).status_code == 404


@pytest.mark.slow
def test_overhead(tmp_path):
    out, data = run_bench("overhead", tmp_path)
    assert "finephrase / datatrove" in out or "datatrove not run" in out
    fp = data["formats"]["parquet"]["finephrase"]
    assert fp["docs_per_s"] > 0 and min(fp["documents_out"]) == data["documents"]
    if data["datatrove"] == "run":
        dt = data["formats"]["parquet"]["datatrove"]
        assert dt["docs_per_s"] > 0 and min(dt["documents_out"]) == data["documents"]
        assert "ratio_finephrase_over_datatrove" in data["targets"]["verdicts"]["parquet"]
    for k in ("aiohttp_ceiling", "httpx_ceiling", "raw_ceiling"):
        assert data[k]["docs_per_s"] > 0
    assert "meets_2000_docs_per_s" in data["targets"]["verdicts"]["parquet"]


@pytest.mark.slow
def test_saturation(tmp_path):
    out, data = run_bench("saturation", tmp_path, "--skip-vllm")  # vLLM takes minutes to start
    assert "pipeline ÷ direct" in out
    llama = data["engines"]["llama.cpp"]
    assert "failed" not in llama, llama.get("failed")
    if "skipped" not in llama:
        assert llama["direct_tokens_per_s"] > 0 and llama["pipeline_tokens_per_s"] > 0 and llama["ratio"] > 0
        assert llama["runs"][0]["pipeline"]["documents_out"] == data["documents"]
    assert "vllm" in data["engines"]


@pytest.mark.slow
def test_resume(tmp_path):
    out, data = run_bench("resume", tmp_path)
    assert "resume ÷ fresh" in out
    assert data["ratio"] > 0 and "meets_target" in data
    run = data["runs"][0]
    assert run["committed_at_kill"] >= 0.8 * data["documents"] and run["remaining_docs"] > 0
    assert data["all_verified"], "the resumed run is not exactly once"


@pytest.mark.slow
def test_memory(tmp_path):
    out, data = run_bench("memory", tmp_path)
    assert "peak RSS" in out
    assert len(data["sizes"]) == 2 and data["ratio"] > 0
    assert all(v > 0 for v in data["peak_rss_mib"].values())


@pytest.mark.slow
def test_compliance(tmp_path):
    # the real 135M model, two arms of 3 documents: plain (no grammar, one attempt) and the embedded defaults
    out, data = run_bench("compliance", tmp_path, "--arms", "plain,default", timeout=600)
    assert "published, default" in out and "wall / plain" in out
    for arm in ("plain", "default"):
        faq = data["arms"][arm]["prompts"]["faq"]
        assert faq["pairs"] == data["documents"] == 3 and 0 <= faq["published"] <= 3
        assert data["arms"][arm]["generated_tokens"] > 0
    assert data["arms"]["plain"]["retry_tokens"] == 0  # one attempt: nothing discarded


@pytest.mark.slow
def test_engines(tmp_path):
    # the real 135M model: 2 documents x 8 tokens per engine and concurrency, then 3 short pipeline runs; the old
    # engine (llama-cpp-python) is measured only where it is installed (the bench extra), else skipped by name
    out, data = run_bench("engines", tmp_path, timeout=600)
    assert "new/old wall" in out and "cold ceiling" in out
    per = data["engines"]["per_concurrency"]
    assert set(per) == {"1", "4"} and all(v["new_seconds"] > 0 for v in per.values())
    assert all(r["errors"] == 0 for v in per.values() for r in v["runs"]["new"])
    p = data["prefix"]
    assert p["four_over_one_wall"] > 0 and 0 < p["cached_share"] < 1 and 0 < p["cached_share_ceiling"] < 1


@pytest.mark.slow
def test_occupancy(tmp_path):
    # the long-tail stand-in server (benchmarks/tail_server.py), uniform and 2% stragglers, latencies / 10
    out, data = run_bench("occupancy", tmp_path)
    assert "mean in flight" in out and "peak RSS" in out
    for name in ("uniform", "tail"):
        s = data["summary"][name]
        assert s["mean_in_flight"] > 0 and s["ideal_s"] > 0 and s["wall_s"] > 0 and s["peak_rss_mb"] > 0
        assert data["runs"][name][0]["documents_out"] == data["documents"]
    assert data["summary"]["tail"]["tails"] > 0 and data["summary"]["uniform"]["tails"] == 0
    assert set(data["targets"]["verdicts"]) == {"in_flight", "wall", "peak_rss"} and not data["failed"]


@pytest.mark.slow
def test_compact(tmp_path):
    out, data = run_bench("compact", tmp_path)  # 50 MB and 500 MB of chunk files
    assert "MB/s per core" in out and "peak RSS ratio" in out
    assert len(data["sizes"]) == 2 and data["rss_ratio"] > 0 and data["mb_per_core"] > 0
    assert all(s["rows"] == s["runs"][0]["rows"] for s in data["sizes"])


@pytest.mark.slow
def test_scale(tmp_path):
    # 1/100,000 of the paper (3,390 documents x faq, math, table, tutorial) as 16 rephrase tasks started together
    # against the stand-in server (zero_server.py --vary), then verify, dedup, compact, card, gate, publish
    # --dry-run and mix, each stage's processes measured (about a minute on 2 cores)
    out, data = run_bench("scale", tmp_path, timeout=300)
    assert "paper h" in out and "finephrase's own time" in out
    (scale,) = data["scales"]
    assert scale["denominator"] == 100_000 and scale["documents"] == 3390 and scale["rows"] == 13_560
    stages = {r["stage"]: r for r in scale["stages"]}
    assert {"rephrase", "verify", "dedup", "compact", "card", "gate", "publish", "mix"} <= set(stages)
    assert stages["rephrase"]["processes"] == 16 and len(stages["rephrase"]["exit_codes"]) == 16
    assert stages["rephrase"]["start_spread_s"] < 5  # started together
    # tasks that lost a start-up race are started again (reported as a stage of their own); nothing else fails
    assert not [f for f in data["failed"] if "rephrase" not in f], data["failed"]
    assert stages["dedup"]["rows"] == stages["gate"]["rows"] > 0
    for r in scale["stages"]:
        assert r["wall_s"] > 0 and r["peak_rss_mib"] > 0 and r["processes"] == len(r["exit_codes"])
        assert r["kind"] in ("array", "one")


def test_zero_server_vary_answers_per_document():
    """--vary: each document gets its own answer, in its prompt's shape, that the quality gate publishes."""
    import httpx
    from _common import ZeroServer, sample_texts

    from finephrase.prompts.library import load_prompts
    from finephrase.quality.gate import QualityGate

    docs = [r["text"] for r in sample_texts(3000)[:10]]
    with ZeroServer(vary=True) as server, httpx.Client() as client:
        for prompt in load_prompts("faq,math,table,tutorial"):
            answers = []
            for doc in docs + docs[:1]:
                r = client.post(f"{server.url}/v1/chat/completions",
                                json={"model": "zero", "messages": prompt.render(doc), "seed": len(answers)})
                assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "stop"
                answers.append(r.json()["choices"][0]["message"]["content"])
            assert len(set(answers)) == len(docs) and answers[-1] == answers[0]  # a duplicate: the same answer
            rejected = [QualityGate().check(a, "stop", prompt, d) for a, d in zip(answers, docs)]
            assert sum(x is not None for x in rejected) <= 1, (prompt.name, rejected)
        assert client.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "zero"


@pytest.mark.slow
def test_scoring(tmp_path):
    out, data = run_bench("scoring", tmp_path)
    assert data["target_docs_per_s"] == 20_000 and data["lengths"] and data["memory"]


@pytest.mark.slow
def test_decontamination(tmp_path):
    # a 50,000 n-gram index, 20,000 generated rows of ~270 words (0.5% carry a benchmark item's 12-word span),
    # find with 1 and 2 threads, the file step at N and 10 N rows in child processes (~20 s on 2 cores)
    out, data = run_bench("decontamination", tmp_path)
    assert "÷ 50k" in out and "time ratio" in out and "peak RSS ratio" in out and "split_words" in out
    assert data["index"]["ngrams"] > 40_000 and data["rows"] == 20_000 and data["planted"] == 100
    assert 0.5 < data["valid_window_share"] <= 1
    for key in ("find_threads_1", "find_threads_n", "step", "step_10x"):
        assert data[key]["rows_per_s"] > 0 and data[key]["over_target"] > 0, key
    assert data["step"]["runs"][0]["removed"] == data["planted"]
    assert data["step_10x"]["runs"][0]["removed"] == 10 * data["planted"]
    assert data["step"]["peak_rss_mib"] > data["step"]["rss_after_index_mib"] > 0
    assert data["scale"]["time_ratio"] > 0 and data["scale"]["peak_rss_ratio"] > 0
    assert {p["part"] for p in data["profile"]} >= {"split_words", "n-gram hashes", "lookup, matches (the rest)"}


@pytest.mark.parametrize("name", ["zero_server", "overhead", "saturation", "resume", "memory", "compliance", "engines",
                                  "occupancy", "compact", "scale", "slot_reuse", "scoring", "decontamination"])
def test_help(name):
    r = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), "--help"], capture_output=True, text=True,
                       timeout=60, cwd=REPO)
    assert r.returncode == 0 and "--quick" in r.stdout
