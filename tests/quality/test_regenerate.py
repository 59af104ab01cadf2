"""Validate and regenerate (finephrase/quality/regenerate.py): a generation the gate rejects for a fixable reason is
asked for again. The run-level tests use the stand-in server (tests/fakeserver.py): what is under test is our own
loop's accounting of attempts (which request is sent again, with what, and what is committed), not generation;
tests/run/test_e2e.py runs the real model with regeneration on (its default)."""

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import run_cli_here
from fakeserver import FakeServer

from finephrase.errors import UsageError
from finephrase.quality.gate import QualityGate
from finephrase.quality.regenerate import UNSET_TEMPERATURE, Regenerate, attempt_seed
from finephrase.serving.client import Sampling


def test_which_reasons_are_asked_again():
    r = Regenerate()
    assert r.retryable("length") and r.retryable("format:qa_pairs<2") and r.retryable("non_answer:evasive")
    assert not r.retryable("context_overflow") and not r.retryable("http_500") and not r.retryable("formatted")
    assert not Regenerate(reasons=("length",)).retryable("format:no_table")


def test_temperature_ladder_and_seeds():
    r = Regenerate(temperature_step=0.3, max_temperature=1.0)
    base = Sampling(temperature=0.2, seed=5, max_tokens=64)
    assert r.sampling(base, 1) is base
    assert [r.sampling(base, k).temperature for k in (2, 3, 4, 5)] == [0.5, 0.8, 1.0, 1.0]
    assert r.sampling(Sampling(), 2).temperature == pytest.approx(UNSET_TEMPERATURE + 0.3)
    assert attempt_seed(7, 1) == 7 and attempt_seed(None, 3) is None
    assert len({attempt_seed(7, k) for k in (1, 2, 3)}) == 3 and attempt_seed(7, 2) == attempt_seed(7, 2)
    with pytest.raises(UsageError):
        Regenerate(max_attempts=0)


def test_the_run_judges_with_the_pipelines_gate(tmp_path):
    """Regenerate without gates of its own gets the pipeline's QualityFilter gates in the run's copy (the user's
    step is not changed); a Regenerate that names its gates keeps them."""
    from finephrase.pipeline import ChunkWriter, QualityFilter, Rephrase, ResumableReader, load_prompts
    from finephrase.pipeline.shape import connected, inspect_pipeline
    from finephrase.serving import Endpoint

    strict = QualityGate(min_words=40)

    def pipeline(regenerate):
        return [ResumableReader(str(tmp_path)), Rephrase(load_prompts("faq"), Endpoint("http://x", "m"),
                                                         Sampling(), regenerate=regenerate),
                QualityFilter(strict), ChunkWriter(str(tmp_path / "out"))]

    steps = pipeline(None)
    run_copy = connected(inspect_pipeline(steps)).rephrase
    assert run_copy.settings.regenerate.gates == (strict,) and steps[1].settings.regenerate.gates is None
    assert run_copy.settings.regenerate.max_attempts == 2  # an endpoint's default
    own = (QualityGate(),)
    assert connected(inspect_pipeline(pipeline(Regenerate(gates=own)))).rephrase.settings.regenerate.gates == own


def _docs(tmp_path, texts):
    p = tmp_path / "docs.jsonl"
    p.write_bytes(b"".join(orjson.dumps({"id": f"d{i}", "text": t}) + b"\n" for i, t in enumerate(texts)))
    return p


def _run(tmp_path, fake, *extra):
    src = _docs(tmp_path, ["JUNKONCE a page about rivers and lakes in the north", "JUNK a page about loops",
                           "a page about mountains and valleys in spring"])
    out = tmp_path / "out"
    r = run_cli_here("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--endpoint-url",
                fake.url, "--seed", "1", "--temperature", "0.3", "--max-tokens", "64", *extra)
    assert r.returncode == 0, r.stderr
    return out, r


def test_a_rejected_generation_is_asked_again_and_recorded(tmp_path):
    with FakeServer() as fake:
        out, r = _run(tmp_path, fake, "--max-attempts", "3")
    rows = {x["source_id"]: x for x in pq.read_table(out / "faq").to_pylist()}
    assert {k: v["attempt"] for k, v in rows.items()} == {"d0": 2, "d2": 1}
    (reject,) = pq.read_table(out / "rejects" / "faq").to_pylist()
    assert reject["source_id"] == "d1" and reject["reject_reason"] == "length" and reject["attempt"] == 3
    assert reject["attempt_reasons"] == ["length", "length", "length"]
    chats = [b for b in fake.bodies if "messages" in b]
    bodies = [b for b in chats if "JUNKONCE" in b["messages"][-1]["content"]]
    assert [b["temperature"] for b in bodies] == [0.3, 0.5] and bodies[0]["seed"] != bodies[1]["seed"]
    assert len([b for b in chats if "JUNK a page" in b["messages"][-1]["content"]]) == 3
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    assert counts["retries"] == {"faq": 3} and counts["published_attempts"] == {"faq": 3}
    assert counts["retry_tokens"] == 3 * 24  # three discarded loops of 24 words (the stand-in counts words)
    assert counts["generated_tokens"] == counts["output_tokens"] + 24 + counts["retry_tokens"]
    assert "regenerated: 3 attempts discarded" in r.stdout + r.stderr
    assert "1.50 attempts/row" in r.stdout + r.stderr and run_cli_here("verify", out).returncode == 0
    status = orjson.loads(run_cli_here("status", out, "--json").stdout)["total"]
    assert status["retries"] == {"faq": 3} and status["retry_tokens"] == 72
    text = run_cli_here("status", out).stdout
    assert "published faq 67% (1.50 attempts/row)" in text and "regenerated 3 attempts discarded" in text
    card = run_cli_here("card", out)
    assert card.returncode == 0, card.stderr
    text = (out / "README.md").read_text()
    assert "- regeneration: up to 3 generations per (document, prompt)" in text
    assert "attempts per published row: `faq` 1.50; 3 attempts discarded (72 tokens generated)" in text
    report = run_cli_here("report", out, "--out", out.parent / "report")
    assert report.returncode == 0, report.stderr
    assert ("**regeneration**: up to 3 generations per (document, prompt); `faq` 67% published, 1.50 attempts/row; "
            "3 attempts discarded (72 tokens generated)") in (out.parent / "report" / "report.md").read_text()


def test_one_attempt_turns_it_off(tmp_path):
    with FakeServer() as fake:
        out, _ = _run(tmp_path, fake, "--max-attempts", "1")
    assert sorted(x["source_id"] for x in pq.read_table(out / "rejects" / "faq").to_pylist()) == ["d0", "d1"]
    assert len([b for b in fake.bodies if "messages" in b]) == 4  # one per document, and the preflight's
    assert orjson.loads((out / "manifest.json").read_bytes())["counts"]["retries"] == {}
