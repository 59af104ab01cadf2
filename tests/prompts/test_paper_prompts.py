"""Prompt files in the FinePhrase paper's format (finephrase/prompts/paper_files.py): markdown with `[TEXT]`,
loaded as they are, named by their path, checked by their well-known name or a sidecar.

The prompt files here are written for the tests (the paper's own texts stay in the user's checkout); the request
body is read back from tests/fakeserver.py (a stand-in server: what is tested is the request finephrase sends),
and one run goes through the real SmolLM2-135M on llama.cpp."""

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import assert_one_line_error, run_cli, small_rows, write_parquet
from fakeserver import FakeServer

from finephrase.errors import UsageError
from finephrase.prompts.library import load_prompt, load_prompts
from finephrase.prompts.paper_files import load_paper_file

FAQ = "Turn the document below into questions and answers about it.\n\nDocument:\n[TEXT]\n"


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A prompts folder laid out like the paper's repository: format/, nemotron/, a README without placeholder."""
    root = tmp_path / "checkout" / "prompts"
    (root / "format").mkdir(parents=True)
    (root / "nemotron").mkdir()
    (root / "format" / "faq.md").write_text("\n" + FAQ + "\n\n")  # the paper's loader strips it
    (root / "format" / "tutorial.md").write_text("Write a tutorial from this text. [TEXT]")
    (root / "format" / "table.md").write_text("Make a table from [TEXT] and then one question about it.")
    (root / "nemotron" / "knowledge_list.md").write_text("List what the text teaches.\nText: [ORIGINAL DOCUMENT]")
    (root / "nemotron" / "custom.txt").write_text("Rewrite [TEXT] for children.")
    (root / "README.md").write_text("# The prompts of the paper\n")
    return root


def test_nested_names_families_and_well_known_checks(checkout):
    faq, tutorial, listing, custom = load_prompts("format/faq,format/tutorial,nemotron/knowledge_list,"
                                                  "nemotron/custom", checkout)
    assert (faq.name, faq.family, faq.version) == ("format-faq", "format", 1)
    assert faq.template == FAQ.strip() and faq.placeholders == ("[TEXT]",)
    assert faq.check == {"kind": "qa_pairs", "min_pairs": 2}
    assert tutorial.check["kind"] == "steps" and tutorial.check["bullets"] is True
    assert listing.placeholders == ("[ORIGINAL DOCUMENT]",) and listing.check["kind"] == "bullets"
    assert custom.name == "nemotron-custom" and custom.check == {} and "not a well-known name" in custom.check_origin
    # by its own path: named by its folder and stem, the same prompt
    direct = load_prompt(str(checkout / "format" / "faq.md"))
    assert (direct.name, direct.hash) == (faq.name, faq.hash)
    # the manifest's record holds the text, the placeholders and the file
    record = faq.to_dict()
    assert record["template"] == FAQ.strip() and record["format"] == "paper" and record["path"].endswith("faq.md")
    assert "format" not in load_prompt("faq").to_dict()  # the library's records are unchanged


def test_the_message_is_the_files_text_with_the_document_substituted(checkout):
    faq = load_prompt("format/faq", checkout)
    doc = "Tuples are immutable. A literal [TEXT] in a document stays as it is."
    assert faq.render(doc) == [{"role": "user", "content": FAQ.strip().replace("[TEXT]", doc)}]
    assert faq.shared_prefix == ("", FAQ.strip().split("[TEXT]")[0])


def test_a_sidecar_overrides_the_well_known_check(checkout):
    (checkout / "format" / "faq.check.toml").write_text('kind = "qa_pairs"\nmin_pairs = 4\n')
    faq = load_prompt("format/faq", checkout)
    assert faq.check == {"kind": "qa_pairs", "min_pairs": 4} and "sidecar" in faq.check_origin
    (checkout / "format" / "faq.check.toml").write_text('[check]\nkind = "none"\n')
    assert load_prompt("format/faq", checkout).check == {"kind": "none"}
    (checkout / "format" / "faq.check.toml").write_text('kind = "faq_pairs"\n')
    with pytest.raises(UsageError, match="kind must be one of"):
        load_prompt("format/faq", checkout)


def test_a_pipeline_definition_sets_the_check(checkout):
    tutorial = load_prompt("format/tutorial", checkout).with_check(kind="steps", min_steps=5)
    assert tutorial.check == {"kind": "steps", "min_steps": 5} and tutorial.check_origin == "the pipeline definition"
    assert tutorial.hash == load_prompt("format/tutorial", checkout).hash  # what the model is asked is the same
    with pytest.raises(UsageError, match="unknown keys"):
        tutorial.with_check(kind="steps", min_pairs=2)


@pytest.mark.parametrize("name, content, words", [
    ("nothing.md", "Rewrite the document as a FAQ.", ["has no [TEXT] placeholder"]),
    ("empty.md", "  \n\n", ["is empty"]),
    ("faq.md", FAQ, ["would be named 'faq'", "a template of the library"]),  # top level: the library's name
    ("latin1.md", None, ["cannot be read as UTF-8 text"]),
])
def test_a_file_that_cannot_be_the_request_is_refused_in_one_line(tmp_path, name, content, words):
    folder = tmp_path / "prompts"
    folder.mkdir()
    path = folder / name
    path.write_bytes("Résumé [TEXT]".encode("latin-1") if content is None else content.encode())
    r = run_cli("prompts", "show", name, "--prompts-dir", folder)
    assert_one_line_error(r, *words)
    with pytest.raises(UsageError):
        load_paper_file(path, folder, frozenset({"faq"}))


def test_unknown_nested_name_and_listing(checkout):
    r = run_cli("prompts", "show", "format/nope", "--prompts-dir", checkout)
    assert_one_line_error(r, "no format/nope.md or .txt")
    listing = run_cli("prompts", "--prompts-dir", checkout)
    assert listing.returncode == 0, listing.stderr
    assert "format/faq" in listing.stdout and "format-faq" in listing.stdout
    assert "README" in listing.stdout and "not loadable: has no [TEXT] placeholder" in listing.stdout
    show = run_cli("prompts", "show", "format/tutorial", "--prompts-dir", checkout)
    assert "check: bullets = True, kind = 'steps', min_steps = 3" in show.stdout
    assert "the well-known name 'tutorial'" in show.stdout


def test_the_request_sent_is_the_papers(checkout, tmp_path):
    rows = small_rows(3, chars=300)
    src = write_parquet(tmp_path / "docs.parquet", rows)
    out = tmp_path / "out"
    with FakeServer() as server:
        r = run_cli("rephrase", src, "--prompt", "format/faq", "--prompts-dir", checkout, "--output", out,
                    "--backend", "endpoint", "--endpoint-url", server.url, "--model", "fake-model",
                    "--max-attempts", "1")  # one request per document: the stand-in's FAQ is not the paper's
        assert r.returncode == 0, r.stderr
        chats = [b for b in server.bodies if b.get("max_tokens", 0) > 1]
    sent = sorted(b["messages"][0]["content"] for b in chats)
    assert all(len(b["messages"]) == 1 and b["messages"][0]["role"] == "user" for b in chats)
    assert sent == sorted(FAQ.strip().replace("[TEXT]", row["text"]) for row in rows)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    (record,) = manifest["prompts"]
    assert record["name"] == "format-faq" and record["template"] == FAQ.strip()
    assert manifest["config"]["prompts"] == {"format-faq": record["hash"]}
    assert (out / "format-faq").is_dir() or (out / "rejects" / "format-faq").is_dir()
    gate = run_cli("gate", out)  # the re-check finds the paper prompt through the manifest
    assert gate.returncode == 0, gate.stderr


def test_an_embedded_run_with_a_paper_prompt_and_its_default_check(checkout, tmp_path):
    """The real 135M model on a paper-format faq: every (document, prompt) ends as a row or a reject with a
    reason, the published rows pass the faq check the file's name gives, and verify agrees."""
    src = write_parquet(tmp_path / "docs.parquet", small_rows(3, chars=400))
    out = tmp_path / "run"
    r = run_cli("rephrase", src, "--prompt", "format/faq", "--prompts-dir", checkout, "--output", out,
                "--max-tokens", "160", "--seed", "0")
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(out / "format-faq").to_pylist() if (out / "format-faq").is_dir() else []
    rejects = pq.read_table(out / "rejects" / "format-faq").to_pylist() \
        if (out / "rejects" / "format-faq").is_dir() else []
    assert len(rows) + len(rejects) == 3 and all(x["reject_reason"] for x in rejects)
    from finephrase.quality.gate import QualityGate

    faq = load_prompt("format/faq", checkout)
    assert all(QualityGate().check(x["text"], x["finish_reason"], faq) is None for x in rows)
    assert run_cli("verify", out).returncode == 0
