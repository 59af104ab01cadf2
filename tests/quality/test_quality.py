"""The format-aware quality gate on known texts: each template's [check], the non-answer checks, and
`finephrase gate DIR` (a read-only re-check of a run's published rows). The labelled set with precision and
recall per format is tests/quality/test_gate_labelled.py."""

import orjson
import pyarrow as pa
import pytest
from conftest import write_parquet
from conftest import run_cli_here as run_cli  # the fast layer: these commands start no model
from synthetic_runs import write_manifest

from finephrase.errors import UsageError
from finephrase.prompts.templates import parse_template
from finephrase.prompts.library import available_prompts, load_prompt
from finephrase.quality.formats import check_format, numbered_steps, qa_pairs
from finephrase.quality.gate import QualityGate
from finephrase.store.ledger import Ledger

SOURCE = ("The socket module provides access to the BSD socket interface. It is available on all modern Unix "
          "systems, Windows and MacOS. Socket addresses are represented as tuples (host, port) for the AF_INET "
          "address family, and a socket is created with socket.socket().")
GOOD_FAQ = ("Question: What does the socket module provide?\nAnswer: Access to the BSD socket interface.\n\n"
            "Question: How is an AF_INET socket address represented?\nAnswer: As a (host, port) tuple.")


def test_every_template_declares_the_shape_of_a_good_answer():
    for name in available_prompts():
        spec = load_prompt(name).check
        assert spec.get("kind") not in (None, "none"), name
    faq = load_prompt("faq").check
    assert faq["kind"] == "qa_pairs" and faq["min_pairs"] == 2 and faq["grammar"].startswith("root ::=")
    assert load_prompt("table").check["qa_after"] is True


@pytest.mark.parametrize("spec, error", [({"kind": "poem"}, "kind must be one of"),
                                         ({"kind": "qa_pairs", "min_rows": 2}, "unknown keys"),
                                         ("qa_pairs", "must be a table")])
def test_a_bad_check_table_is_refused_when_the_template_loads(spec, error):
    data = {"name": "x", "family": "f", "version": 1, "template": "{{document}}", "check": spec}
    with pytest.raises(UsageError, match=error):
        parse_template(data, "x.toml")


@pytest.mark.parametrize("prompt, text, reason", [
    ("faq", "The document is ready.", "non_answer:meta"),
    ("faq", "I'm ready to help. What's your question?", "non_answer:meta"),
    ("faq", "I'm sorry, but I can't help with rewriting this document as a FAQ.", "non_answer:refusal"),
    ("faq", GOOD_FAQ.split("\n\n")[0], "format:qa_pairs<2"),
    ("faq", "What does the socket module provide?", "format:qa_pairs<2"),
    ("faq", GOOD_FAQ, None),
    ("faq", "**1. What does the socket module provide?**\nAccess to the BSD socket interface.\n\n**2. Where does it "
            "run?**\nOn all modern Unix systems, Windows and MacOS.", None),
    ("faq", "Q: What does the socket module provide? A: Access to the BSD socket interface.\nQ: How is an "
            "AF_INET address written? A: As a (host, port) tuple.", None),
    ("table", "| Item | Detail |\n| Interface | BSD sockets |\n| Address | (host, port) |", "format:no_table"),
    ("table", "| Item | Detail |\n|---|---|\n| Interface | BSD sockets |\n\nQuestion: What interface?\nAnswer: "
              "BSD sockets.", "format:table_rows<2"),
    ("table", "| Item | Detail |\n|:---|---:|\n| Interface | BSD sockets |\n| Address | (host, port) tuple |",
     "format:no_qa_after_table"),
    ("table", "Sockets\n\n| Item | Detail |\n|:---|---:|\n| Interface | BSD sockets |\n| Address | (host, port) "
              "tuple |\n\nQuestion: How is an address written?\nAnswer: As a (host, port) tuple.", None),
    ("math", "A server opens sockets for clients and each socket uses a port on the host.", "format:no_numbers"),
    ("math", "A server opens 3 sockets for each of 4 clients. How many sockets are open in all?\n"
             "3 * 4 = 12 sockets for the clients.\n12 + 2 = 14 with the two listening sockets.",
     "format:no_final_answer"),
    ("math", "A server opens 3 sockets for each of 4 clients and 2 listening sockets. How many are open?\n"
             "3 * 4 = 12 sockets for the clients.\n12 + 2 = 14 sockets.\nFinal answer: 14", None),
    ("tutorial", "Using sockets\n1. Import the socket module.\n2. Create a socket with socket.socket().",
     "format:steps<3"),
    ("tutorial", "Using sockets\nYou will open a socket.\n1. Import the socket module.\n2. Create a socket with "
                 "socket.socket().\n3. Connect it to a (host, port) tuple on the host.", None),
    ("tutorial", "Using sockets\nYou will open a socket.\n1. Step 1: Import the socket module first.\n2. Step 2: "
                 "Create a socket with socket.socket().\n3. Step 3: Connect it to a (host, port) tuple.", None),
    ("tutorial", "Using sockets\n1. Import the socket module in your program.\n2. Step 3: Step 4: Step 5: Step 6:\n"
                 "3. Connect the socket to a (host, port) tuple.", "format:steps_loop"),
    ("tutorial", "The document is ready.\nUsing sockets: you will open a socket on the host.\n1. Import the socket "
                 "module in your program.\n2. Create a socket with socket.socket().\n3. Connect it to a (host, port) "
                 "tuple on the host and the port.", "non_answer:meta"),
    ("faq", "Read the document below. Rewrite the document as a FAQ: a list of questions, each followed by its "
            "answer. Question: What is it?\nAnswer: The socket module.\nQuestion: Where?\nAnswer: On Unix.",
     "non_answer:echo"),
    ("summarize", SOURCE, "copy"),
    ("faq", "Question: How long should pasta boil?\nAnswer: Boil dried spaghetti for about nine minutes in salted "
            "water.\nQuestion: Which sauce suits penne?\nAnswer: Arrabbiata, with tomatoes, garlic and chili "
            "flakes.", "off_topic"),
    ("summarize", "套接字模块提供了对伯克利套接字接口的访问。它在所有现代的类Unix系统、Windows和MacOS上都可用。"
                  "地址是由主机和端口组成的元组。",
     "language"),
    ("summarize", "Le module socket donne accès à l'interface des sockets BSD. Il est disponible sur tous les "
                  "systèmes Unix modernes, Windows et MacOS. Les adresses sont des tuples hôte et port.", "language"),
])
def test_gate_reasons(prompt, text, reason):
    assert QualityGate().check(text, "stop", prompt=load_prompt(prompt), source=SOURCE) == reason


def test_shape_helpers():
    assert len(qa_pairs(GOOD_FAQ)) == 2
    assert numbered_steps("1. a\n2. b\n3. c\nthen\n1. x") == 3
    assert check_format("anything", {}) is None
    assert QualityGate(formats=False).check("The document is ready.", "stop", prompt=load_prompt("faq")) is None


def _run_with_rows(root, texts: list[str]):
    """A run folder with published faq rows (as an older gate let them through), for `finephrase gate`."""
    ids = [f"doc-{i}" for i in range(len(texts))]
    src = write_parquet(root / "in" / "docs.parquet", [{"id": i, "text": SOURCE} for i in ids])
    run = root / "run"
    rows = [{"id": f"{i}/faq", "source_id": i, "text": t, "finish_reason": "stop"} for i, t in zip(ids, texts)]
    ledger = Ledger(run, 0)
    n = len(rows)  # one chunk: the whole input file, read from its first row
    ledger.commit(0, {"faq": pa.Table.from_pylist(rows)},
                  {"first": 0, "pos": {"file_index": 0, "offset": n, "read": n}, "docs": n, "rows": {"faq": n}})
    ledger.mark_finished()
    write_manifest(run, src, ("faq",))
    return run


def test_gate_command_rechecks_published_rows_without_rewriting(tmp_path):
    run = _run_with_rows(tmp_path, [GOOD_FAQ, "The document is ready.", "The document is ready.",
                                    GOOD_FAQ.split("\n\n")[0]])
    before = (run / "faq" / "00000_000000.parquet").read_bytes()
    r = run_cli("gate", run, "--json")
    assert r.returncode == 0, r.stderr
    rep = orjson.loads(r.stdout)
    assert rep["source_checks"] is True
    assert rep["prompts"]["faq"]["rows"] == 4 and rep["prompts"]["faq"]["would_reject"] == 3
    assert rep["prompts"]["faq"]["reasons"] == {"non_answer:meta": 2, "format:qa_pairs<2": 1}
    assert (run / "faq" / "00000_000000.parquet").read_bytes() == before
    r = run_cli("gate", run, "--no-source")
    assert r.returncode == 0 and "would stay      1 (25%)" in r.stdout and "skipped: --no-source" in r.stdout
    r = run_cli("gate", tmp_path / "nothing")
    assert r.returncode == 2 and "not a finephrase run" in r.stderr


def test_constrain_format_is_a_sweep_switch_and_a_request_field():
    from finephrase.quality.constrain import request_fields
    from finephrase.sweep import Point, _check_settings

    assert _check_settings({"constrain_format": True}, "grid")["constrain_format"] is True
    with pytest.raises(UsageError, match="true or false"):
        _check_settings({"constrain_format": 1}, "grid")
    p = Point(source="s", inputs=["in.parquet"], model=None, model_label="default", prompt="faq", prompt_label="faq",
              settings={"constrain_format": True, "limit": 5}, output="out/x")
    args = p.rephrase_args()
    assert "--constrain-format" in args and "--constrain-format=True" not in args and "--limit=5" in args
    g = load_prompt("faq").check["grammar"]
    assert request_fields(g, "llamacpp") == {"grammar": g}
    assert request_fields(g, "vllm") == {"structured_outputs": {"grammar": g}}
    assert request_fields(None, "vllm") == {} and request_fields(g, None) == {}


def test_a_table_of_contents_is_not_a_tutorial_but_short_instructions_are():
    from finephrase.quality.formats import check_format

    spec = {"kind": "steps", "min_steps": 3}
    steps = ["Open the terminal window", "Run pip install requests now", "Import the requests module",
             "Call requests get with the url", "Print the status code", "Close the session at the end"]
    titles = ["Introduction to Debian", "Debian Installation", "Network Configuration", "Package Management Basics",
              "System Administration", "Security Updates", "Troubleshooting Guide"]
    numbered = lambda items: "Title\n\n" + "\n".join(f"{i}. {t}" for i, t in enumerate(items, 1))  # noqa: E731
    assert check_format(numbered(steps), spec) is None
    assert check_format(numbered(titles), spec) == "format:table_of_contents"
    bulleted = "## Setup\n" + "\n".join(f"- {t}" for t in steps[:3])
    assert check_format(bulleted, spec) == "format:steps<3"  # bullets count only where the check allows them
    assert check_format(bulleted, {**spec, "bullets": True}) is None
