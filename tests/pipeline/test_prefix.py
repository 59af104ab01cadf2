"""One prefill per document: a document's first prompt runs alone, its siblings after it (so the engine serves
their shared prefix from its cache), requests in flight stay at --max-concurrency, and the rows record what the
engine's cache served. The ordering is our own code's behaviour (tested against the stand-in server); the cache
is the real embedded engine's."""

import re
from collections import defaultdict

import orjson
from conftest import read_generations, run_cli, run_cli_here, small_rows, write_parquet
from fakeserver import FakeServer


def test_first_prompt_alone_then_its_siblings(tmp_path):
    fake = FakeServer(delay=0.15).start()
    try:
        inp = write_parquet(tmp_path / "in.parquet", small_rows(8))
        out = tmp_path / "out"
        r = run_cli("rephrase", inp, "--prompt", "faq,table,tutorial", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", fake.url, "--max-concurrency", "4", "--chunk-size", "3")
        assert r.returncode == 0, r.stderr
        events = [e for e in fake.events if "Read the document below" in e[1]]  # not the preflight request
    finally:
        fake.stop()
    assert run_cli_here("verify", out).returncode == 0
    by_doc = defaultdict(dict)  # document text -> {prompt: (start, end)}
    for kind, content, t in events:
        doc = content.split("\n\n")[1]
        prompt = "faq" if "as a FAQ" in content else "table" if "markdown table" in content else "tutorial"
        by_doc[doc].setdefault(prompt, {})[kind] = t
    assert len(by_doc) == 8
    for doc, times in by_doc.items():
        assert set(times) == {"faq", "table", "tutorial"}
        for sibling in ("table", "tutorial"):  # the siblings ask only once the first prompt has its answer
            assert times[sibling]["start"] >= times["faq"]["end"], (doc[:40], times)
    # ... and the engine stays full meanwhile: other documents' requests fill the slots
    level, peak = 0, 0
    for kind, _, _ in sorted(events, key=lambda e: (e[2], e[0] == "start")):
        level += 1 if kind == "start" else -1
        peak = max(peak, level)
    assert peak == 4


def test_cached_prompt_tokens_on_the_real_engine(tmp_path):
    # real documents long enough that the shared prefix dominates each prompt
    inp = write_parquet(tmp_path / "in.parquet", small_rows(3, chars=2500))
    out = tmp_path / "out"
    prompts = ["faq", "summarize"]
    r = run_cli("rephrase", inp, "--prompt", ",".join(prompts), "--output", out, "--max-tokens", "16",
                "--seed", "0", "--max-attempts", "1")  # a retry would find its whole prompt cached
    assert r.returncode == 0, r.stderr
    rows = [r for p in prompts for r in read_generations(out, p)]
    assert len(rows) == 6 and all(x["cached_tokens"] is not None for x in rows)
    share = {p: [x["cached_tokens"] / x["input_tokens"] for x in rows if x["prompt"] == p] for p in prompts}
    # the second prompt of every document found its document in the cache; the first could not. The loop sends a
    # document's prompts to the engine sequence that holds its prefix (id_slot), so no sibling misses it
    assert all(s > 0.5 for s in share["summarize"]), share
    assert sum(share["summarize"]) / 3 > sum(share["faq"]) / 3 + 0.3, share
    log = (out / "logs" / "server.log").read_text(errors="replace")
    assert log.count("selected slot by id") == 6  # every request of the loop (the server's warm-up is by LRU)
    assert "selected slot by LCP" not in log
    # and the run says so: summary line, manifest counts, status
    m = re.search(r"prefill: ([\d,]+) of ([\d,]+) prompt tokens served from the engine's prefix cache", r.stderr)
    assert m, r.stderr
    cached, total = (int(g.replace(",", "")) for g in m.groups())
    assert cached == sum(x["cached_tokens"] for x in rows) and total == sum(x["input_tokens"] for x in rows)
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    assert counts["cached_tokens"] == cached and counts["prompt_tokens"] == total
    assert f"prefill  {m.group(1)} of {m.group(2)}" in run_cli_here("status", out).stdout
    assert run_cli_here("verify", out).returncode == 0


def test_engine_args_are_checked_before_anything_starts(tmp_path, small_docs):
    out = tmp_path / "out"
    r = run_cli("rephrase", small_docs, "--prompt", "faq", "--output", out, "--engine-arg", "no_such_thing=1")
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.strip().splitlines()[-1] == "error: --engine-arg no_such_thing: llama.cpp has no parameter " \
                                                "'no_such_thing'"
    r = run_cli("rephrase", small_docs, "--prompt", "faq", "--output", out, "--engine-arg", "n_batch=big")
    assert r.returncode == 2 and "n_batch=big: expected a value of type int" in r.stderr and not out.exists()
    r = run_cli("rephrase", small_docs, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                "--endpoint-url", "http://127.0.0.1:9", "--engine-arg", "n_batch=1024")
    assert r.returncode == 2 and "does not use it" in r.stderr and not out.exists()
