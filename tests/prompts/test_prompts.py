"""Prompt templates: the library files, rendering, hashing and the refusals of bad templates."""

import dataclasses
import re
from pathlib import Path

import pytest
from conftest import REPO

from finephrase.errors import UsageError
from finephrase.prompts.library import available_prompts, load_prompt, load_prompts
from finephrase.prompts.templates import PLACEHOLDER, default_prompts_dir, load_template_file

FAMILIES = {"finephrase", "finephrase-extra", "nemotron-cc", "rewire", "beyondweb"}
PROMPT_FILES = sorted((REPO / "prompts").glob("*.toml"))


def _write(tmp_path: Path, stem: str, body: str) -> Path:
    p = tmp_path / f"{stem}.toml"
    p.write_text(body, encoding="utf-8")
    return p


def _toml(name: str, template: str, family: str = "finephrase", system: str | None = None, extra: str = "") -> str:
    body = f'name = "{name}"\nfamily = "{family}"\nversion = 1\ntemplate = """{template}"""\n'
    if system is not None:
        body += f'system = """{system}"""\n'
    return body + extra


# -- the library -------------------------------------------------------------------------------------------------


def test_library_is_found():
    assert PROMPT_FILES, "no prompt files in prompts/"
    lib = available_prompts()
    assert sorted(lib) == sorted(p.stem for p in PROMPT_FILES)
    assert default_prompts_dir().resolve() == (REPO / "prompts").resolve()


@pytest.mark.parametrize("path", PROMPT_FILES, ids=lambda p: p.stem)
def test_every_library_file_loads(path):
    tpl = load_template_file(path)
    assert tpl.name == path.stem
    assert tpl.template.count(PLACEHOLDER) >= 1
    assert tpl.family in FAMILIES
    assert isinstance(tpl.version, int) and tpl.version >= 1
    assert re.fullmatch(r"[0-9a-f]{16}", tpl.hash)
    assert load_prompt(path.stem).hash == tpl.hash  # by name, same file
    # the system message never holds the document
    assert PLACEHOLDER not in (tpl.system or "")


def test_production_prompts_exist():
    lib = available_prompts()
    for name in ("faq", "math", "table", "tutorial"):
        assert name in lib
        assert load_prompt(name).family == "finephrase"


def test_library_hashes_are_distinct():
    hashes = [load_template_file(p).hash for p in PROMPT_FILES]
    assert len(set(hashes)) == len(hashes)


# -- rendering ---------------------------------------------------------------------------------------------------


def test_render_inserts_document_verbatim():
    tpl = load_prompt("faq")
    assert tpl.template.count(PLACEHOLDER) == 1
    before, after = tpl.template.split(PLACEHOLDER)
    doc = "  Line one with trailing spaces   \n\nLine \\n two: ünïcödé 🚀 $1 \\1 %s {0}\n\t"
    messages = tpl.render(doc)
    assert messages == [{"role": "user", "content": before + doc + after}]


@pytest.mark.parametrize("doc_placeholder", ["{{document}}", "{document}", "{{text}}"])
def test_placeholder_inside_document_is_not_substituted_again(doc_placeholder):
    tpl = load_prompt("faq")
    before, after = tpl.template.split(PLACEHOLDER)
    doc = f"Start of doc. Here is a literal {doc_placeholder} in the text.\nEnd of doc."
    user = tpl.render(doc)[-1]["content"]
    # exactly the template with the document put in once, in the placeholder's place
    assert user == before + doc + after
    # the literal placeholder of the document occurs exactly as often as in (template without placeholder) + doc
    expected = (before + after).count(doc_placeholder) + doc.count(doc_placeholder)
    assert user.count(doc_placeholder) == expected
    assert user.count(doc_placeholder) >= 1
    assert user.count("Start of doc.") == 1


def test_document_that_is_only_a_placeholder():
    tpl = load_prompt("faq")
    before, after = tpl.template.split(PLACEHOLDER)
    user = tpl.render(PLACEHOLDER)[-1]["content"]
    assert user == before + PLACEHOLDER + after
    assert user.count(PLACEHOLDER) == 1


def test_all_placeholders_of_a_template_are_filled(tmp_path):
    p = _write(tmp_path, "twice", _toml("twice", "A {{document}} B {{document}} C"))
    tpl = load_template_file(p)
    assert tpl.render("X {{document}} Y")[-1]["content"] == "A X {{document}} Y B X {{document}} Y C"


def test_system_message_only_when_defined(tmp_path):
    faq = load_prompt("faq")
    assert faq.system is None
    msgs = faq.render("doc")
    assert [m["role"] for m in msgs] == ["user"]

    rewire = load_prompt("rewire")
    assert rewire.system
    msgs = rewire.render("ZQXDOC")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == rewire.system
    assert "ZQXDOC" in msgs[1]["content"] and "ZQXDOC" not in msgs[0]["content"]

    # an empty system string counts as no system message
    p = _write(tmp_path, "nosys", _toml("nosys", "Do it: {{document}}", system=""))
    tpl = load_template_file(p)
    assert tpl.system is None
    assert [m["role"] for m in tpl.render("d")] == ["user"]


# -- hash --------------------------------------------------------------------------------------------------------


def test_hash_is_stable_and_content_based(tmp_path):
    a = load_prompt("faq")
    b = load_prompt("faq")
    assert a.hash == b.hash
    assert re.fullmatch(r"[0-9a-f]{16}", a.hash)

    assert dataclasses.replace(a, template=a.template + " ").hash != a.hash
    assert dataclasses.replace(a, system="Be brief.").hash != a.hash
    assert dataclasses.replace(a, extract_tag="rewrite").hash != a.hash
    # metadata that does not change what the model is asked leaves the hash alone
    assert dataclasses.replace(a, description="something else", version=7, path="x").hash == a.hash


def test_request_tables_per_engine(tmp_path):
    plain = load_template_file(_write(tmp_path, "p", _toml("p", "Rewrite: {{document}}")))
    p = load_template_file(_write(tmp_path, "p", _toml("p", "Rewrite: {{document}}", extra="""
[request.llamacpp]
dry_multiplier = 0.8
dry_sequence_breakers = ["\\n", ":"]
[request.vllm]
repetition_penalty = 1.05
""")))
    assert p.request_fields("llamacpp") == {"dry_multiplier": 0.8, "dry_sequence_breakers": ("\n", ":")}
    assert p.request_fields("vllm") == {"repetition_penalty": 1.05}
    assert p.request_fields(None) == {} and plain.request_fields("llamacpp") == {}
    assert p.hash != plain.hash  # they change what is generated
    assert p.to_dict()["request"]["vllm"] == {"repetition_penalty": 1.05} and plain.to_dict()["request"] is None
    for bad, msg in [("[request.sglang]\nx = 1", "unknown engine"),
                     ("[request.llamacpp]\nseed = 1", "may not set seed"),
                     ("[request]\nx = 1", "one table per engine"), ("[request.vllm.x]\ny = 1", "a value, not a table")]:
        with pytest.raises(UsageError, match=msg):
            load_template_file(_write(tmp_path, "p", _toml("p", "Rewrite: {{document}}", extra="\n" + bad)))


def test_hash_changes_with_template_file_text(tmp_path):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    h1 = load_template_file(_write(d1, "p", _toml("p", "Rewrite: {{document}}"))).hash
    h1_again = load_template_file(_write(d1, "p", _toml("p", "Rewrite: {{document}}"))).hash
    h2 = load_template_file(_write(d2, "p", _toml("p", "Rewrite:  {{document}}"))).hash
    assert h1 == h1_again
    assert h1 != h2


# -- refusals ----------------------------------------------------------------------------------------------------


def test_template_without_placeholder_refused(tmp_path):
    p = _write(tmp_path, "nodoc", _toml("nodoc", "Rewrite the {document} please"))
    with pytest.raises(UsageError) as e:
        load_template_file(p)
    assert PLACEHOLDER in str(e.value)
    assert "placeholder" in str(e.value)


def test_placeholder_in_system_refused(tmp_path):
    p = _write(tmp_path, "sys", _toml("sys", "Do: {{document}}", system="Read {{document}}"))
    with pytest.raises(UsageError, match="system"):
        load_template_file(p)


def test_missing_and_unknown_keys_refused(tmp_path):
    p = _write(tmp_path, "nofam", 'name = "nofam"\nversion = 1\ntemplate = "{{document}}"\n')
    with pytest.raises(UsageError, match="family"):
        load_template_file(p)
    p = _write(tmp_path, "extra", _toml("extra", "{{document}}", extra='temperature = 0.5\n'))
    with pytest.raises(UsageError, match="temperature"):
        load_template_file(p)
    p = _write(tmp_path, "badver", 'name = "badver"\nfamily = "x"\nversion = "one"\ntemplate = "{{document}}"\n')
    with pytest.raises(UsageError, match="version"):
        load_template_file(p)


def test_unknown_prompt_name_lists_available(tmp_path):
    with pytest.raises(UsageError) as e:
        load_prompt("no_such_prompt")
    msg = str(e.value)
    assert "no_such_prompt" in msg
    for name in ("faq", "math", "table", "tutorial"):
        assert name in msg

    _write(tmp_path, "alpha", _toml("alpha", "{{document}}"))
    _write(tmp_path, "beta", _toml("beta", "{{document}}"))
    with pytest.raises(UsageError) as e:
        load_prompt("gamma", prompts_dir=tmp_path)
    assert "alpha" in str(e.value) and "beta" in str(e.value)
    assert load_prompt("alpha", prompts_dir=tmp_path).name == "alpha"


def test_load_prompts_refuses_duplicates_and_empty():
    with pytest.raises(UsageError, match="twice"):
        load_prompts("faq,faq")
    with pytest.raises(UsageError, match="twice"):
        load_prompts(["faq", " faq "])
    with pytest.raises(UsageError):
        load_prompts(" , ")
    got = load_prompts("faq, math")
    assert [t.name for t in got] == ["faq", "math"]


def test_name_must_equal_file_stem(tmp_path):
    p = _write(tmp_path, "myprompt", _toml("otherprompt", "Rewrite: {{document}}"))
    with pytest.raises(UsageError) as e:
        load_template_file(p)
    assert "otherprompt" in str(e.value) and "myprompt" in str(e.value)


def test_invalid_toml_refused(tmp_path):
    p = _write(tmp_path, "broken", 'name = "broken\nfamily = = x\ntemplate = """{{document}}\n')
    with pytest.raises(UsageError, match="TOML"):
        load_template_file(p)
    q = tmp_path / "binary.toml"
    q.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(UsageError):
        load_template_file(q)


def test_missing_file_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_prompt(str(tmp_path / "nope.toml"))


def test_load_by_path(tmp_path):
    p = _write(tmp_path, "custom", _toml("custom", "Custom: {{document}}", system="Sys"))
    tpl = load_prompt(str(p))
    assert tpl.name == "custom"
    assert tpl.render("D") == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Custom: D"}]


def test_non_string_system_refused_with_usage_error(tmp_path):
    p = _write(tmp_path, "sysint",
               'name = "sysint"\nfamily = "x"\nversion = 1\ntemplate = "{{document}}"\nsystem = 5\n')
    with pytest.raises(UsageError):
        load_template_file(p)


def test_non_string_extract_tag_refused_with_usage_error(tmp_path):
    p = _write(tmp_path, "tagint",
               'name = "tagint"\nfamily = "x"\nversion = 1\ntemplate = "{{document}}"\nextract_tag = 5\n')
    with pytest.raises(UsageError):
        load_template_file(p)


def test_library_layers_env_then_prompts_dir_each_add_or_override(tmp_path, monkeypatch):
    env_dir, cli_dir = tmp_path / "env", tmp_path / "cli"
    env_dir.mkdir()
    cli_dir.mkdir()
    _write(env_dir, "faq", _toml("faq", "ENV FAQ: {{document}}"))
    _write(env_dir, "quiz", _toml("quiz", "ENV quiz: {{document}}"))
    _write(cli_dir, "quiz", _toml("quiz", "CLI quiz: {{document}}"))
    monkeypatch.setenv("FINEPHRASE_PROMPTS_DIR", str(env_dir))
    library = available_prompts(cli_dir)
    assert library["math"].parent.resolve() == (REPO / "prompts").resolve()  # built-in ones stay
    assert library["faq"] == env_dir / "faq.toml" and library["quiz"] == cli_dir / "quiz.toml"
    assert load_prompt("quiz", cli_dir).template.startswith("CLI quiz")
    assert load_prompt("faq").template.startswith("ENV FAQ")
    monkeypatch.setenv("FINEPHRASE_PROMPTS_DIR", str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="does not exist"):
        available_prompts()
