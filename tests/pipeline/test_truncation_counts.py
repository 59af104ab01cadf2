"""Truncation is counted and said: per chunk in the ledger, summed in the manifest's counts, one line in the end
summary, `finephrase status`, `finephrase report` and the card; a context that leaves the document less than a
quarter of it is refused before anything starts (unless --allow-short-documents); a mistyped --id-column is
refused like a mistyped --text-column, while an input without an id column keeps positional ids when the flag
was not given."""

import json
import re

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, ledger_entries, read_generations, refused, run_cli, run_cli_here, small_rows, write_parquet

from finephrase.errors import UsageError
from finephrase.serving.truncation import TRUNCATION_KEYS, add_truncation, truncation_text

# -- the counts and their line ------------------------------------------------------------------------------------


def test_truncation_text_and_older_counts():
    assert truncation_text({"fitted_docs": 20, "truncated_docs": 16, "truncated_chars": 1000,
                            "truncated_chars_kept": 526}) == "16 of 20 documents, 52% of their characters kept"
    assert truncation_text({"fitted_docs": 3, "truncated_docs": 0, "truncated_chars": 0,
                            "truncated_chars_kept": 0}) == "0 of 3 documents"
    # a cut never reads as 100% kept, however little was cut
    assert "99% of their" in truncation_text({"fitted_docs": 1, "truncated_docs": 1, "truncated_chars": 100000,
                                              "truncated_chars_kept": 99999})
    assert truncation_text({"documents": 5, "rows": {}}) is None  # a manifest written before the counts
    total: dict = {}
    add_truncation(total, {"docs": 2})  # an older ledger line: nothing added, no key made up
    assert total == {}
    add_truncation(total, dict.fromkeys(TRUNCATION_KEYS, 1))
    add_truncation(total, {"docs": 2})
    assert total == dict.fromkeys(TRUNCATION_KEYS, 1)


def test_older_ledgers_still_count_and_summarize(tmp_path):
    from finephrase.run.manifest import collect_counts
    from finephrase.run.runner import summary

    ledger = tmp_path / ".ledger" / "rank_00000.jsonl"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps({"chunk": 0, "first": 1, "pos": {"read": 2}, "docs": 2, "rows": {"faq": 2}}) + "\n")
    counts = collect_counts(tmp_path)
    assert not set(TRUNCATION_KEYS) & set(counts) and counts["documents"] == 2
    assert "truncated" not in summary(tmp_path, counts, 1.0, ["faq"])


# -- a real run: one long document cut, two short ones whole ------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, llama_endpoint):
    """3 documents without an `id` column (so positional ids), the last one long enough to be cut in a context of
    1,024 tokens; the summary's stderr is kept next to the folder."""
    root = tmp_path_factory.mktemp("trunc")
    rows = pq.read_table(SAMPLE).to_pylist()
    long = next(r for r in rows if 1300 < r["token_count"] < 2000)
    docs = [{k: v for k, v in r.items() if k != "id"} for r in small_rows(2, chars=250) + [long]]
    src = write_parquet(root / "in" / "docs.parquet", docs)
    out = root / "run"
    r = run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--backend", "endpoint", "--endpoint-url",
                llama_endpoint, "--context-length", "1024", "--max-tokens", "32", "--seed", "0", "--max-attempts", "1",
                timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r.stderr, len(long["text"])


def test_truncation_counted_in_ledger_manifest_and_summary(real_run):
    out, stderr, long_chars = real_run
    entries = ledger_entries(out)
    assert entries and all(set(TRUNCATION_KEYS) <= set(e) for e in entries if "chunk" in e)
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    assert counts["fitted_docs"] == 3 and counts["truncated_docs"] == 1
    assert counts["truncated_chars"] == long_chars and 0 < counts["truncated_chars_kept"] < long_chars
    generations = read_generations(out, "faq")
    assert sum(g["input_truncated"] for g in generations) == 1  # the rows say the same
    assert all(re.fullmatch(r"docs\.parquet:\d+", g["source_id"]) for g in generations)  # no id column: positional
    kept = 100 * counts["truncated_chars_kept"] // long_chars
    assert f"truncated: 1 of 3 documents, {kept}% of their characters kept" in stderr.splitlines()


def test_truncation_in_status_report_and_card(real_run):
    out, _, _ = real_run
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    line = truncation_text(counts)
    r = run_cli_here("status", out)
    assert r.returncode == 0, r.stderr
    assert f"truncated {line}" in r.stdout.splitlines()
    r = run_cli_here("status", out, "--json")
    assert {k: json.loads(r.stdout)["total"][k] for k in TRUNCATION_KEYS} == {k: counts[k] for k in TRUNCATION_KEYS}
    r = run_cli_here("card", out)
    assert r.returncode == 0, r.stderr
    assert f"- truncated to fit the context: {line}" in (out / "README.md").read_text().splitlines()
    pytest.importorskip("matplotlib")
    r = run_cli_here("report", out)
    assert r.returncode == 0, r.stderr
    assert f"- **truncated** to fit the context: {line}" in (out / "report" / "report.md").read_text()


# -- the floor for the document's room ----------------------------------------------------------------------------


def test_too_little_room_for_the_document_is_refused_unless_allowed(tmp_path):
    from finephrase.prompts.library import load_prompts
    from finephrase.run.runner import RunConfig
    from finephrase.run.settings import SWEEPABLE

    out = tmp_path / "out"
    refused(run_cli("rephrase", SAMPLE, "--prompt", "faq", "--output", out, "--max-tokens", "1900", timeout=60), out,
            "--max-tokens 1900", "a quarter", "--context-length", "--allow-short-documents")
    # with the flag the floor passes: what stops this run is the next check (an input without the text column)
    notext = write_parquet(tmp_path / "notext.parquet", [{"id": "a", "content": "words"}])
    refused(run_cli("rephrase", notext, "--prompt", "faq", "--output", out, "--max-tokens", "1900",
                    "--allow-short-documents", timeout=60), out, "no column 'text'")
    kw = dict(inputs=[str(SAMPLE)], output=str(out), prompts=load_prompts("faq"), max_tokens=700,
              context_length=1024)
    with pytest.raises(UsageError, match="a quarter"):
        RunConfig.for_backend("embedded", **kw)
    assert RunConfig.for_backend("embedded", allow_short_documents=True, **kw).allow_short_documents
    with pytest.raises(UsageError, match="no room"):  # no room at all: no flag allows that
        RunConfig.for_backend("embedded", **{**kw, "max_tokens": 1000}, allow_short_documents=True)
    assert SWEEPABLE["allow_short_documents"].flag == "--allow-short-documents"  # a sweep may set it too


# -- --id-column --------------------------------------------------------------------------------------------------


def test_a_mistyped_id_column_is_refused_before_anything_starts(tmp_path):
    out = tmp_path / "out"
    refused(run_cli("rephrase", SAMPLE, "--prompt", "faq", "--output", out, "--id-column", "idd", timeout=60), out,
            "python-docs.parquet has no column 'idd'", "id, text, url", "--id-column")
    src = tmp_path / "docs.jsonl"
    src.write_text('{"doc_id": "a", "text": "some words"}\n')
    refused(run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--id-column", "docid", timeout=60), out,
            "no column 'docid'", "doc_id, text")
    refused(run_cli("rephrase", src, "--prompt", "faq", "--output", out, "--id-column", "id", timeout=60), out,
            "no column 'id'")  # given explicitly, the default name too must exist


def test_id_column_given_or_not(tmp_path):
    from finephrase.pipeline.readers.resumable import resolve_inputs
    from finephrase.pipeline.shape import inspect_pipeline
    from finephrase.prompts.library import load_prompts
    from finephrase.run.config import build_pipeline
    from finephrase.run.manifest import fingerprint
    from finephrase.run.preflight import check_inputs
    from finephrase.run.runner import RunConfig

    src = write_parquet(tmp_path / "noid.parquet", [{"text": "some words", "url": "u"}])
    files = resolve_inputs([str(src)])
    cfg = RunConfig.for_backend("embedded", inputs=[str(src)], output=str(tmp_path / "o"), prompts=load_prompts("faq"))
    reader = inspect_pipeline(build_pipeline(cfg)).reader
    assert reader.id_column == "id" and not reader.id_column_given  # the default: positional ids are fine
    check_inputs(files, "text", [], None)
    check_inputs(files, "text", [], "url")  # given and present
    with pytest.raises(UsageError, match="no column 'uri'"):
        check_inputs(files, "text", [], "uri")
    # the fingerprint of a run without the flag is what it always was (older runs resume)
    assert fingerprint(inspect_pipeline(build_pipeline(cfg)), 1, files)["id_column"] == "id"
