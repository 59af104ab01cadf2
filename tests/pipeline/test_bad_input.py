"""Bad input: run-level problems stop with one line; document-level problems become rejects; nothing vanishes."""

import gzip

import pyarrow.parquet as pq
import pytest
from conftest import assert_one_line_error, run_cli, run_cli_here, small_rows
from fakeserver import FakeServer


@pytest.fixture
def fake():
    s = FakeServer().start()
    yield s
    s.stop()


def test_document_level_problems_become_rejects(fake, tmp_path):
    # The stand-in server is enough here: what is tested is the reader's and the run's accounting.
    src = tmp_path / "bad.jsonl"
    lines = [
        b'{"id": "good-1", "text": "Python lists keep insertion order and can be changed in place."}',
        b'{"id": "broken", "text": "no closing brace"',
        b'{"id": "no-text", "body": "the text is in another column"}',
        b'{"id": "null-text", "text": null}',
        b'{"id": "number-text", "text": 12345}',
        b'{"id": "blank-text", "text": "   \\n\\t "}',
        b'{"id": "bad-utf8", "text": "caf\xc3\x28 au lait"}',
        b'',
        b'["not", "an", "object"]',
        b'{"id": "good-2", "text": "Dictionaries map keys to values; keys must be hashable. {{document}} {document}"}',
    ]
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    r = run_cli_here("rephrase", src, "--prompt", "faq,table", "--output", out, "--backend", "endpoint",
                     "--endpoint-url", fake.url, "--chunk-size", "3")
    assert r.returncode == 0, r.stderr
    for prompt in ("faq", "table"):
        rejects = pq.read_table(out / "rejects" / prompt).to_pylist()
        got = {x["source_id"]: x["reject_reason"] for x in rejects}
        assert got.get("bad.jsonl:2") == "malformed_json"  # no id could be read: positional id
        assert got.get("no-text") == "missing_text" and got.get("null-text") == "text_null"
        assert got.get("number-text") == "text_not_string" and got.get("blank-text") == "text_empty"
        assert got.get("bad.jsonl:7") == "invalid_utf8"
        assert got.get("bad.jsonl:8") == "not_an_object"
        assert len(rejects) == 7
        rows = pq.read_table(out / prompt).to_pylist()
        assert sorted(x["source_id"] for x in rows) == ["good-1", "good-2"]
    assert run_cli_here("verify", out).returncode == 0
    assert "malformed_json" in r.stderr  # the end summary counts rejects by reason


def test_placeholder_in_document_is_not_substituted(fake, tmp_path):
    from finephrase.prompts.library import load_prompt

    doc = "A template uses {{document}} as its placeholder."
    msgs = load_prompt("faq").render(doc)
    assert msgs[-1]["content"].count(doc) == 1


@pytest.mark.parametrize("case", ["missing_input", "unknown_prompt", "unreachable", "no_placeholder",
                                  "bad_where", "not_a_run"])
def test_run_level_problems_are_one_line(case, tmp_path, small_docs):
    out = tmp_path / "out"
    endpoint = ["--backend", "endpoint", "--endpoint-url", "http://127.0.0.1:9"]
    if case == "missing_input":
        r = run_cli("rephrase", tmp_path / "nope.parquet", "--prompt", "faq", "--output", out, *endpoint)
        assert_one_line_error(r, "does not exist", only_line=False)
    elif case == "unknown_prompt":
        r = run_cli("rephrase", small_docs, "--prompt", "faq,poem", "--output", out, *endpoint)
        assert_one_line_error(r, "unknown prompt 'poem'", "finephrase prompts", only_line=False)
    elif case == "unreachable":
        r = run_cli("rephrase", small_docs, "--prompt", "faq", "--output", out, *endpoint)
        assert_one_line_error(r, "unreachable", "--endpoint-url", only_line=False)
    elif case == "no_placeholder":
        t = tmp_path / "mine.toml"
        t.write_text('name = "mine"\nfamily = "custom"\nversion = 1\ntemplate = "Rewrite this."\n')
        r = run_cli("rephrase", small_docs, "--prompt", t, "--output", out, *endpoint)
        assert_one_line_error(r, "{{document}}", only_line=False)
    elif case == "bad_where":
        r = run_cli("rephrase", small_docs, "--prompt", "faq", "--output", out, "--where", "int_score >>> 4",
                    *endpoint)
        assert_one_line_error(r, "int_score >>> 4", only_line=False)
    elif case == "not_a_run":
        (out / "x").mkdir(parents=True)
        r = run_cli("verify", out)
        assert_one_line_error(r, "not a finephrase run", only_line=False)
    assert not (out / "manifest.json").exists()


def test_gz_input_and_selection_counted_not_rejected(fake, tmp_path):
    rows = small_rows(12, chars=200)
    src = tmp_path / "docs.jsonl.gz"
    import orjson

    with gzip.open(src, "wb") as f:
        for r_ in rows:
            f.write(orjson.dumps(r_) + b"\n")
    out = tmp_path / "out"
    r = run_cli_here("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint",
                     "--endpoint-url", fake.url, "--where", "int_score >= 3", "--chunk-size", "5")
    assert r.returncode == 0, r.stderr
    keep = {x["id"] for x in rows if x["int_score"] >= 3}
    filtered = pq.read_table(out / "filtered").to_pylist()
    assert {x["source_id"] for x in filtered} == {x["id"] for x in rows} - keep
    assert all(x["filter_reason"] == "where:int_score>=3" for x in filtered)
    got = {x["source_id"] for x in pq.read_table(out / "faq").to_pylist()}
    assert got == keep
    assert not (out / "rejects").exists()
    assert run_cli_here("verify", out).returncode == 0
