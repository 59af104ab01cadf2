"""Pipeline definitions: plain lists of datatrove steps run by `finephrase.run.run` (or a plain datatrove executor).

The hand-built pipeline with a stock datatrove filter runs on the real embedded model (SmolLM2-135M through
llama.cpp). The others use the stand-in server (tests/fakeserver.py, not a model): what they test is our own
code (the list's checks, accounting of filters after Rephrase, the fingerprint), not generation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SAMPLE, run_cli, small_rows, write_parquet
from datatrove.pipeline.filters import LambdaFilter
from fakeserver import FakeServer

from finephrase.errors import UsageError
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import NamedFilter
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.writers.chunk_writer import ChunkWriter
from finephrase.prompts.library import load_prompts
from finephrase.run.runner import run
from finephrase.serving import Endpoint, LlamaCppServer
from finephrase.serving.client import Sampling


def _ids(folder) -> list[str]:
    return sorted(pq.read_table(folder, columns=["source_id"]).column("source_id").to_pylist())


def _has_class(doc) -> bool:
    return "class" in doc.text


def test_hand_built_pipeline_with_a_datatrove_filter(tmp_path):
    """reader -> stock LambdaFilter (its own step) -> Rephrase -> gate -> writer, on the real model: the manifest
    is written, the documents the filter dropped are listed as filtered by it, `verify` passes; a rerun with a
    changed step is refused before any server starts."""
    out = tmp_path / "out"

    def pipeline(source_filter):
        return [
            ResumableReader(str(SAMPLE), limit=6),
            source_filter,
            Rephrase(load_prompts("faq"), LlamaCppServer(context_length=1024, slots=2), Sampling(max_tokens=64),
                     max_concurrency=2),
            QualityFilter(),
            ChunkWriter(str(out), chunk_size=3),
        ]

    manifest = run(pipeline(LambdaFilter(_has_class)), exit_on_error=False)
    assert manifest["status"] == "finished"
    docs = list(ResumableReader(str(SAMPLE), limit=6).run())
    refused = sorted(d.id for d in docs if not _has_class(d))
    assert refused and len(refused) < len(docs)  # the sample has documents of both kinds
    filtered = pq.read_table(out / "filtered").to_pylist()
    assert sorted(f["source_id"] for f in filtered) == refused
    assert {f["filter_reason"] for f in filtered} == {LambdaFilter(_has_class).name}
    assert manifest["config"]["selection"]["filters"] == [LambdaFilter(_has_class).name]
    assert manifest["counts"]["filtered"] == {LambdaFilter(_has_class).name: len(refused)}
    published = _ids(out / "faq") if (out / "faq").is_dir() else []
    rejected = _ids(out / "rejects" / "faq") if (out / "rejects" / "faq").is_dir() else []
    assert sorted(published + rejected) == sorted(d.id for d in docs if _has_class(d))
    assert run_cli("verify", out).returncode == 0

    before = sorted(p.name for p in (out / "logs").iterdir())
    with pytest.raises(UsageError, match="other settings.*selection"):
        run(pipeline(NamedFilter(_has_class, "has_class")), exit_on_error=False)
    assert sorted(p.name for p in (out / "logs").iterdir()) == before  # no new server log: nothing started


def _endpoint_pipeline(url: str, src, out, *steps_after) -> list:
    return [
        ResumableReader(str(src)),
        Rephrase(load_prompts("faq"), Endpoint(url, "fake-model"), Sampling(max_tokens=64), context_length=1024,
                 max_concurrency=4, progress_tty=False),
        *steps_after,
        ChunkWriter(str(out), chunk_size=3),
    ]


def test_a_datatrove_filter_after_rephrase_turns_its_refusals_into_rejects(tmp_path):
    """A stock filter on the generations: what it refuses becomes a reject with its name as the reason (and goes
    to its exclusion writer too); nothing is dropped, `verify` passes."""
    from datatrove.pipeline.writers import JsonlWriter

    src = write_parquet(tmp_path / "in.parquet", [{**r, "id": f"d{i}"} for i, r in enumerate(small_rows(8))])
    out = tmp_path / "out"
    refuse = LambdaFilter(lambda doc: not doc.id.startswith(("d1/", "d5/")),
                          exclusion_writer=JsonlWriter(str(tmp_path / "excluded"), compression=None))
    fake = FakeServer().start()
    try:
        manifest = run(_endpoint_pipeline(fake.url, src, out, QualityFilter(), refuse), exit_on_error=False)
    finally:
        fake.stop()
    assert manifest["status"] == "finished"
    rejects = pq.read_table(out / "rejects" / "faq").to_pylist()
    assert sorted(r["source_id"] for r in rejects) == ["d1", "d5"]
    assert {r["reject_reason"] for r in rejects} == {refuse.name} and all(r["text"] for r in rejects)
    assert _ids(out / "faq") == sorted(f"d{i}" for i in range(8) if i not in (1, 5))
    assert manifest["config"]["generation_filters"] == [refuse.name]
    excluded = [orjson.loads(line) for f in (tmp_path / "excluded").glob("*.jsonl") for line in f.read_bytes().split(
        b"\n") if line]
    assert sorted(e["id"] for e in excluded) == ["d1/faq", "d5/faq"]
    assert all(not k.startswith("_fp_") for e in excluded for k in e.get("metadata", {}))
    assert run_cli("verify", out).returncode == 0


def test_a_pipeline_that_cannot_run_is_refused_with_one_line(tmp_path):
    src = write_parquet(tmp_path / "in.parquet", small_rows(2))
    out = tmp_path / "out"
    url = "http://127.0.0.1:9"  # nothing listens: every refusal comes before a request
    no_writer = _endpoint_pipeline(url, src, out)[:-1]
    with pytest.raises(UsageError, match="exactly one writer"):
        run(no_writer, exit_on_error=False)
    gate_first = _endpoint_pipeline(url, src, out)
    gate_first.insert(1, QualityFilter())
    with pytest.raises(UsageError, match="put it after Rephrase"):
        run(gate_first, exit_on_error=False)
    elsewhere = _endpoint_pipeline(url, src, out)
    elsewhere[0] = ResumableReader(str(src), resume_dir=str(tmp_path / "other"))
    with pytest.raises(UsageError, match="give both the same folder"):
        run(elsewhere, exit_on_error=False)
    assert not out.exists()

    script = tmp_path / "bad.py"  # a script that asks for it: one line and exit code 2, no traceback
    script.write_text(textwrap.dedent(f"""
        from finephrase.run import run
        from finephrase.pipeline.readers.resumable import ResumableReader
        if __name__ == "__main__":
            run([ResumableReader({str(src)!r})], exit_on_error=True)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip().splitlines()[-1]]
    assert r.stderr.startswith("error: a rephrasing pipeline has exactly one rephrasing step")


PIPELINE_FILE = """
from finephrase.serving.client import Sampling
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import Select, TokenBudget, language_is, where
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.writers.chunk_writer import ChunkWriter
from finephrase.prompts.library import load_prompts
from finephrase.run.runner import run
from finephrase.serving import Endpoint

pipeline = [
    ResumableReader({src!r}, limit=10),
    Select(where("int_score >= 2"), language_is("en")),
    TokenBudget(100_000),
    Rephrase(load_prompts("faq,table"), Endpoint({url!r}), Sampling(max_tokens=96, seed=3), context_length=1024,
             max_concurrency=4),
    QualityFilter(),
    ChunkWriter({out!r}, chunk_size=4),
]

if __name__ == "__main__":
    run(pipeline, exit_on_error=True)
"""


def test_the_cli_and_the_equivalent_pipeline_file_are_the_same_run(tmp_path):
    """Same settings, two ways: `finephrase rephrase` flags and a pipeline file give the same fingerprint, so the
    file resumes (here: finds finished) the folder the command made, and the other way round."""
    rows = [{**r, "int_score": i % 4, "language": "en"} for i, r in enumerate(small_rows(10))]
    src = write_parquet(tmp_path / "in.parquet", rows)
    fake = FakeServer().start()
    try:
        by_cli, by_file = tmp_path / "cli", tmp_path / "file"
        r = run_cli("rephrase", src, "--prompt", "faq,table", "--output", by_cli, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--limit", "10", "--where", "int_score >= 2", "--language", "en",
                    "--token-budget", "100000", "--max-tokens", "96", "--seed", "3", "--context-length", "1024",
                    "--max-concurrency", "4", "--chunk-size", "4")
        assert r.returncode == 0, r.stderr
        script = tmp_path / "pipeline.py"
        script.write_text(PIPELINE_FILE.format(src=str(src), url=fake.url, out=str(by_file)))
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0, r.stderr
        cli_config = orjson.loads((by_cli / "manifest.json").read_bytes())["config"]
        file_config = orjson.loads((by_file / "manifest.json").read_bytes())["config"]
        assert cli_config == file_config
        assert cli_config["selection"]["where"] == ["int_score >= 2"] and cli_config["selection"]["token_budget"]
        script.write_text(PIPELINE_FILE.format(src=str(src), url=fake.url, out=str(by_cli)))  # the CLI's folder
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0 and "has already finished" in r.stderr, r.stderr
    finally:
        fake.stop()


def test_the_production_pipeline_file_matches_its_cli_command():
    """pipelines/production.py and the `finephrase rephrase` flags docs/pipelines.md gives for it: one
    fingerprint (the input listing aside, which needs the Hub)."""
    import runpy

    from finephrase.pipeline.shape import inspect_pipeline
    from finephrase.run.manifest import fingerprint
    from finephrase.run.runner import RunConfig

    pipeline = runpy.run_path(str(REPO / "pipelines" / "production.py"), run_name="production")["pipeline"]
    cfg = RunConfig.for_backend("vllm", model="HuggingFaceTB/SmolLM2-1.7B-Instruct",
                                inputs=["hf://datasets/HuggingFaceFW/fineweb-edu/sample/350BT"],
                                output="output/finephrase", prompts=load_prompts("faq,math,table,tutorial"),
                                context_length=8192, max_tokens=2048, chunk_size=2000, max_concurrency=2048)
    assert fingerprint(inspect_pipeline(pipeline), 1, []) == cfg.fingerprint([])


def test_the_paper_recipe_runs_the_checkouts_prompts_with_the_launchers_settings(tmp_path):
    """pipelines/finephrase_paper.py: the four paper-format files of the checkout FINEPHRASE_PAPER_PROMPTS names
    (written here for the test), SmolLM2-1.7B-Instruct with the published launcher's vLLM flags; without a
    checkout, one line saying what to set."""
    for name in ("faq", "math", "table", "tutorial"):
        (tmp_path / "prompts" / "format").mkdir(parents=True, exist_ok=True)
        (tmp_path / "prompts" / "format" / f"{name}.md").write_text(f"Rewrite as a {name}.\n\nDocument:\n[TEXT]")
    code = ("import runpy, json; p = runpy.run_path('pipelines/finephrase_paper.py', run_name='x')['pipeline']; "
            "r = p[1]; print(json.dumps([[t.name for t in r.prompts], [t.check['kind'] for t in r.prompts], "
            "r.server.model, r.server.engine_flags(), r.sampling.max_tokens, r.sampling.temperature]))")
    env = {**os.environ, "FINEPHRASE_PAPER_PROMPTS": str(tmp_path / "prompts")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    names, kinds, model, flags, max_tokens, temperature = orjson.loads(r.stdout)
    assert names == ["format-faq", "format-math", "format-table", "format-tutorial"]
    assert kinds == ["qa_pairs", "math_solution", "markdown_table", "steps"]
    assert model == "HuggingFaceTB/SmolLM2-1.7B-Instruct" and (max_tokens, temperature) == (2048, None)
    for flag in ("--max-model-len=8192", "--gpu-memory-utilization=0.9", "--max-num-seqs=2048",
                 "--max-num-batched-tokens=16384"):
        assert flag in flags or flag.replace("=", " ") in " ".join(flags), (flag, flags)
    env["FINEPHRASE_PAPER_PROMPTS"] = str(tmp_path / "nowhere")
    r = subprocess.run([sys.executable, "pipelines/finephrase_paper.py"], cwd=REPO, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "FINEPHRASE_PAPER_PROMPTS" in r.stderr


def test_run_leaves_the_list_as_the_user_wrote_it_and_a_plain_datatrove_executor_runs_it(tmp_path):
    """run() connects its own copy of the steps: the user's reader and Rephrase keep resume_dir and chunk_size
    unset, their server and their stats. Given those in the constructors, the same kind of list runs under
    datatrove's own LocalPipelineExecutor and commits every document once."""
    from datatrove.executor import LocalPipelineExecutor

    src = write_parquet(tmp_path / "in.parquet", [{**r, "id": f"d{i}"} for i, r in enumerate(small_rows(7))])
    fake = FakeServer().start()
    try:
        steps = _endpoint_pipeline(fake.url, src, tmp_path / "out", QualityFilter())
        reader, rephrase = steps[0], steps[1]
        server, stats = rephrase.server, (reader.stats, rephrase.stats)
        assert run(steps, exit_on_error=False)["status"] == "finished"
        assert (reader.resume_dir, rephrase.settings.resume_dir, rephrase.settings.chunk_size) == (None, None, None)
        assert rephrase.server is server and (reader.stats, rephrase.stats) == stats
        assert rephrase.stats.time_stats.total == 0  # the run's copy did the work

        plain = tmp_path / "plain"
        steps = [ResumableReader(str(src), resume_dir=str(plain)),
                 Rephrase(load_prompts("faq"), Endpoint(fake.url, "fake-model"), Sampling(max_tokens=64),
                          context_length=1024, max_concurrency=4, progress_tty=False, chunk_size=3,
                          resume_dir=str(plain)),
                 QualityFilter(), ChunkWriter(str(plain), chunk_size=3)]
        LocalPipelineExecutor(steps, tasks=1, logging_dir=str(tmp_path / "plain-logs")).run()
    finally:
        fake.stop()
    ledger = [orjson.loads(line) for line in (plain / ".ledger" / "rank_00000.jsonl").read_bytes().splitlines()]
    assert sum(e["docs"] for e in ledger if "chunk" in e) == 7 and any(e.get("finished") for e in ledger)
    assert _ids(plain / "faq") == sorted(f"d{i}" for i in range(7))


def test_rephrase_settings_check_themselves_once_with_one_line_errors():
    """RephraseSettings refuses values a run could not work with when it is built (the CLI and a pipeline file
    get the same line); an unknown keyword or a positional value in its place is one line too, not a TypeError;
    what the server decides is filled in once and stays when the run builds its copy."""
    from finephrase.pipeline import RephraseSettings

    server = Endpoint("http://127.0.0.1:9", "m")
    for kw, words in [(dict(max_held_docs=5, chunk_size=3), "--max-held-docs 5: must be at least twice"),
                      (dict(max_concurrency=0), "--max-concurrency 0"), (dict(request_timeout=0), "--request-timeout"),
                      (dict(max_retries=-1), "--max-retries -1"), (dict(chunk_size=0), "--chunk-size 0")]:
        with pytest.raises(UsageError, match=words):
            Rephrase(load_prompts("faq"), server, Sampling(), **kw)
    with pytest.raises(UsageError, match="no setting max_concurency"):
        Rephrase(load_prompts("faq"), server, Sampling(), max_concurency=4)
    with pytest.raises(UsageError, match="RephraseSettings, not int"):
        Rephrase(load_prompts("faq"), server, Sampling(), 1024)
    step = Rephrase(load_prompts("faq"), server, Sampling(), RephraseSettings(max_concurrency=8), max_held_docs=40)
    assert (step.settings.max_concurrency, step.settings.max_held_docs) == (8, 40)
    assert (step.settings.context_length, step.settings.constrain_format, step.settings.engine_style) == \
        (8192, False, "auto")
    with pytest.raises(UsageError, match="at least twice"):  # checked again with the writer's chunk size
        step.for_run(chunk_size=30)
    moved = step.for_run(Endpoint("http://127.0.0.1:10", "m"), chunk_size=20)
    assert moved.settings == replace(step.settings, chunk_size=20) and moved.server.base_url.endswith(":10")
    assert RephraseSettings(chunk_size=20).held_limit(2) == 32 * 64 // 2  # 32 per request slot, over the prompts
