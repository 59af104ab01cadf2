"""Output parsing (reasoning, tags, lead-ins, fences) and the quality gate."""

import pytest

from finephrase.quality.gate import QualityGate
from finephrase.quality.parsing import parse_output

# -- parsing -----------------------------------------------------------------------------------------------------


def test_plain_text_unchanged():
    p = parse_output("Python is a programming language.\nIt is popular.")
    assert p.text == "Python is a programming language.\nIt is popular."
    assert p.reasoning is None and p.problem is None


def test_none_and_empty():
    assert parse_output(None).text == ""
    assert parse_output("").text == ""
    assert parse_output("").problem is None


def test_think_block_split_off():
    p = parse_output("<think>\nLet me plan the FAQ.\n</think>\n\nQuestion: What?\nAnswer: That.")
    assert p.text == "Question: What?\nAnswer: That."
    assert p.reasoning == "Let me plan the FAQ."
    assert p.problem is None


def test_several_think_blocks_and_case():
    p = parse_output("<THINK>one</THINK>Answer part<think>two</think> end")
    assert "one" not in p.text and "two" not in p.text
    assert p.text == "Answer part end"
    assert p.reasoning == "one\n\ntwo"


def test_dangling_close_think():
    p = parse_output("I should write a table first.\nOk.</think>\n\n| a | b |\n| --- | --- |\n| 1 | 2 |")
    assert p.text == "| a | b |\n| --- | --- |\n| 1 | 2 |"
    assert p.reasoning == "I should write a table first.\nOk."
    assert p.problem is None


def test_unclosed_think():
    p = parse_output("<think>I am still thinking about this and never stop")
    assert p.problem == "unclosed_think"
    assert p.text == ""
    assert "never stop" in p.reasoning


def test_extract_tag():
    raw = "<reasoning>The doc is about cats.</reasoning>\n<rewrite>\nCats are small mammals.\n</rewrite>"
    p = parse_output(raw, extract_tag="rewrite")
    assert p.text == "Cats are small mammals."
    assert p.problem is None
    assert "The doc is about cats." in p.reasoning
    assert "<rewrite>" not in p.text and "reasoning" not in p.text


def test_extract_tag_with_think():
    raw = "<think>hmm</think><reasoning>R</reasoning><rewrite>X</rewrite>"
    p = parse_output(raw, extract_tag="rewrite")
    assert p.text == "X"
    assert p.reasoning.startswith("hmm")
    assert "R" in p.reasoning


def test_extract_tag_unclosed_keeps_rest():
    p = parse_output("<reasoning>r</reasoning><rewrite>Partial rewrite that got cut", extract_tag="rewrite")
    assert p.text == "Partial rewrite that got cut"
    assert p.problem is None


def test_missing_output_tag():
    p = parse_output("<reasoning>only reasoning</reasoning> and some text", extract_tag="rewrite")
    assert p.problem == "missing_output_tag"
    assert p.text == ""


@pytest.mark.parametrize(
    "lead_in",
    [
        "Here is a paraphrased version:\n",
        "Sure! Here's the FAQ:\n",
        "Below is the table:\n",
        "Certainly, here are the questions and answers:\n\n",
        "Here is the rewritten text:  \n",
    ],
)
def test_lead_ins_removed(lead_in):
    body = "Question: What is Python?\nAnswer: A programming language."
    assert parse_output(lead_in + body).text == body


@pytest.mark.parametrize(
    "text",
    [
        "Python is a programming language.\nIt is popular.",
        "Here is where the river meets the sea.\nThe water is calm there.",
        "Note: the following applies to version 3.\nDetails follow.",
        "Sure footing matters when climbing.\nWear good boots.",
    ],
)
def test_normal_first_sentence_kept(text):
    assert parse_output(text).text == text


def test_bare_acknowledgement_removed():
    assert parse_output("Sure!\nThe answer is 42 and that is final.").text == "The answer is 42 and that is final."


def test_wrapping_fence_removed():
    assert (parse_output("```markdown\n| a | b |\n| --- | --- |\n| 1 | 2 |\n```").text
            == "| a | b |\n| --- | --- |\n| 1 | 2 |")
    assert parse_output("```\nplain body\nsecond line\n```\n").text == "plain body\nsecond line"


def test_inner_fence_kept():
    text = "Run this:\n```python\nprint(1)\n```\nThen stop."
    assert parse_output(text).text == text


def test_lead_in_before_table():
    p = parse_output("Here is the table:\n| a | b |\n| 1 | 2 |")
    assert p.text == "| a | b |\n| 1 | 2 |"


# -- gate --------------------------------------------------------------------------------------------------------

FAQ = """Question: What is Python?
Answer: Python is a high-level programming language created by Guido van Rossum.
Question: When was Python first released?
Answer: The first public release was in 1991.
Question: What is the Python Package Index?
Answer: It is a repository of software written for Python, used with pip.
Question: Does Python support multiple paradigms?
Answer: Yes, it supports procedural, object-oriented and functional styles."""

TABLE = """| Version | Year | Notable feature | Status |
| --- | --- | --- | --- |
| 2.0 | 2000 | list comprehensions | retired |
| 2.7 | 2010 | ordered dictionaries backport | retired |
| 3.0 | 2008 | print became a function | retired |
| 3.6 | 2016 | formatted string literals | retired |
| 3.8 | 2019 | assignment expressions | security fixes |
| 3.10 | 2021 | structural pattern matching | security fixes |
| 3.11 | 2022 | faster CPython and exception groups | maintained |
| 3.12 | 2023 | per-interpreter GIL | maintained |"""


@pytest.fixture
def gate():
    return QualityGate()


def test_gate_length(gate):
    assert gate.check(FAQ, "length") == "length"
    assert QualityGate(reject_length=False).check(FAQ, "length") is None


def test_gate_empty(gate):
    assert gate.check("", "stop") == "empty"
    assert gate.check("  \n\t ", "stop") == "empty"


def test_gate_too_short(gate):
    assert gate.check("ok", "stop") == "too_short"
    assert gate.check("yes it is", "stop") is None  # exactly min_words
    assert gate.check("yes it", "stop") == "too_short"


def test_gate_repeated_lines(gate):
    assert gate.check("Q: a?\nA: b\n" * 10, "stop") == "repetition"
    # too few words for the n-gram check: the duplicate-line check alone must catch it
    assert gate.check("Q: a?\nA: b\n" * 5, "stop") == "repetition"
    # a few duplicate lines among many distinct ones are fine
    text = "\n".join([f"Line {i} says something about topic {i * 7}." for i in range(10)]
                     + ["Line 0 says something about topic 0."])
    assert gate.check(text, "stop") is None


def test_gate_looping_sentence_on_one_line(gate):
    text = "The cat sat on the warm mat by the door. " * 12
    assert "\n" not in text.strip()
    assert gate.check(text, "stop") == "repetition"


def test_gate_loop_after_good_start(gate):
    text = FAQ + "\n" + "and then the answer is the same as before " * 30
    assert gate.check(text, "stop") == "repetition"


def test_gate_normal_faq(gate):
    assert gate.check(FAQ, "stop") is None
    assert gate.check(FAQ, None) is None


def test_gate_markdown_table(gate):
    assert TABLE.count("| --- ") == 4
    assert gate.check(TABLE, "stop") is None


def test_gate_order_length_before_empty(gate):
    assert gate.check("", "length") == "length"
