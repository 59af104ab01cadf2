"""Precision/recall of the quality gate on a hand-labelled set of generations.

`tests/data/gate_labelled.jsonl` holds generations for the four production formats (faq, math, table,
tutorial), each with the source document it was made from and a label, "good" or "bad", given by hand
by reading the text against the format definitions (not by running any code):

- faq: at least two question/answer pairs about the document's content; each answer is a real answer.
- table: a markdown table (header, separator row, at least two data rows) with facts from the document,
  followed by one question and its answer about the table.
- math: a word problem with numbers, a worked step-by-step solution with calculations, and a final answer.
- tutorial: a title/intro, then at least three concrete numbered steps.

Anything else is "bad": meta-responses, refusals, text about "the document" instead of its content,
instruction echoes, verbatim copies of the source, off-topic or non-English output, broken formats.

Items come from four origins: real SmolLM2-135M-Instruct outputs (llama.cpp, the formats' own prompts),
hand-written ones grounded in the source, hand-written near misses on both sides of the line, and (in
`tests/data/gate_labelled_paper.jsonl`, origin "paper_style") hand-written answers to the FinePhrase paper's
prompts, in the styles their looser wording allows (any FAQ markup, any table alignment row, bullet-point
tutorials under headings, LaTeX and multi-part math), labelled by the paper prompts' contract and judged with
the check a paper-format prompt file of that name gets (prompts/paper/checks.toml).

For each format the gate's published set (reason None) must have precision >= 0.95 and recall >= 0.9;
every rejected bad item must carry a reason from the known families. Run with `-s` to see the per-format
numbers.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import TESTS

DATA = TESTS / "data" / "gate_labelled.jsonl"
PAPER_DATA = TESTS / "data" / "gate_labelled_paper.jsonl"
# paper-format prompt files written for this test (the paper's own texts stay in its repository): the gate judges
# an item with the check the file's well-known name gives, and the instructions for its echo check
PAPER_ASKS = {"faq": "Rewrite the document as questions and answers.",
              "math": "Write a math word problem based on the document and solve it step by step.",
              "table": "Put the document's facts in a markdown table, then ask and answer one question about it.",
              "tutorial": "Write a tutorial from the document, with numbered steps or bullet points."}
FORMATS = ("faq", "math", "table", "tutorial")
MIN_PRECISION = 0.95
MIN_RECALL = 0.9
REASON_PREFIXES = (
    "format:",
    "non_answer:",
    "copy",
    "off_topic",
    "language",
    "repetition",
    "too_short",
    "empty",
    "length",
)


def _load() -> list[dict]:
    items = []
    for path in (DATA, PAPER_DATA):
        with path.open(encoding="utf-8") as fh:
            items += [json.loads(line) for line in fh if line.strip()]
    return items


ITEMS = _load()


def _describe(item: dict, reason: str | None) -> str:
    text = item["text"][:120].replace("\n", "\\n")
    return (f"  [{item['format']}/{item['label']}/{item['origin']}] note={item['note']!r} reason={reason!r} "
            f"text={text!r}")


def test_dataset_shape():
    allowed = {"format", "label", "origin", "source", "text", "note"}
    for item in ITEMS:
        assert set(item) == allowed, item
        assert item["format"] in FORMATS
        assert item["label"] in ("good", "bad")
        assert item["origin"] in ("smollm2-135m", "hand", "near_miss", "paper_style")
        assert item["source"].strip()
    counts = Counter((i["format"], i["label"]) for i in ITEMS)
    real = Counter(i["format"] for i in ITEMS if i["origin"] == "smollm2-135m")
    paper = Counter((i["format"], i["label"]) for i in ITEMS if i["origin"] == "paper_style")
    for fmt in FORMATS:
        assert counts[(fmt, "good")] >= 25, (fmt, counts)
        assert counts[(fmt, "bad")] >= 25, (fmt, counts)
        assert real[fmt] >= 10, (fmt, real)
        assert paper[(fmt, "good")] >= 20 and paper[(fmt, "bad")] >= 10, (fmt, paper)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> list[tuple[dict, str | None]]:
    from finephrase.prompts.library import load_prompt
    from finephrase.prompts.paper_files import load_paper_file
    from finephrase.quality.gate import QualityGate

    gate = QualityGate()
    ours = {fmt: load_prompt(fmt) for fmt in FORMATS}
    root = tmp_path_factory.mktemp("paper-prompts")
    (root / "format").mkdir()
    for fmt, ask in PAPER_ASKS.items():
        (root / "format" / f"{fmt}.md").write_text(f"{ask}\n\nDocument:\n[TEXT]\n")
    papers = {fmt: load_paper_file(root / "format" / f"{fmt}.md", root) for fmt in FORMATS}
    assert all(papers[fmt].check["kind"] == ours[fmt].check["kind"] for fmt in FORMATS)  # by the well-known name
    return [
        (item, gate.check(item["text"], "stop", source=item["source"],
                          prompt=(papers if item["origin"] == "paper_style" else ours)[item["format"]]))
        for item in ITEMS
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_precision_recall(fmt, verdicts):
    rows = [(item, reason) for item, reason in verdicts if item["format"] == fmt]
    good = [r for r in rows if r[0]["label"] == "good"]
    bad = [r for r in rows if r[0]["label"] == "bad"]
    published = [r for r in rows if r[1] is None]
    good_published = [r for r in good if r[1] is None]
    bad_published = [r for r in bad if r[1] is None]
    good_rejected = [r for r in good if r[1] is not None]
    precision = len(good_published) / len(published) if published else 0.0
    recall = len(good_published) / len(good) if good else 0.0
    print(
        f"\n{fmt:9s} good={len(good)} bad={len(bad)} published={len(published)} "
        f"(good {len(good_published)}, bad {len(bad_published)}) "
        f"precision={precision:.3f} recall={recall:.3f}"
    )
    problems = []
    if precision < MIN_PRECISION:
        problems.append(f"precision {precision:.3f} < {MIN_PRECISION}; bad items published:")
        problems += [_describe(item, reason) for item, reason in bad_published]
    if recall < MIN_RECALL:
        problems.append(f"recall {recall:.3f} < {MIN_RECALL}; good items rejected:")
        problems += [_describe(item, reason) for item, reason in good_rejected]
    assert not problems, f"{fmt}:\n" + "\n".join(problems)


def test_reject_reasons_are_known(verdicts):
    unknown = [
        _describe(item, reason)
        for item, reason in verdicts
        if item["label"] == "bad" and reason is not None and not reason.startswith(REASON_PREFIXES)
    ]
    assert not unknown, "bad items rejected with an unknown reason:\n" + "\n".join(unknown)


def test_numbers_per_origin(verdicts):
    """Precision and recall per format and origin (printed with -s; docs/quality.md has them); the paper-style
    items alone meet the same bar as the whole set."""
    lines, problems = [], []
    for fmt in FORMATS:
        for origin in ("smollm2-135m", "hand", "near_miss", "paper_style"):
            rows = [(i, r) for i, r in verdicts if i["format"] == fmt and i["origin"] == origin]
            good = sum(1 for i, _ in rows if i["label"] == "good")
            published = [i for i, r in rows if r is None]
            good_published = sum(1 for i in published if i["label"] == "good")
            precision = good_published / len(published) if published else None
            recall = good_published / good if good else None
            lines.append(f"{fmt:9s} {origin:13s} items={len(rows):3d} good={good:3d} published={len(published):3d} "
                         f"precision={'-' if precision is None else f'{precision:.3f}'} "
                         f"recall={'-' if recall is None else f'{recall:.3f}'}")
            if origin == "paper_style" and (precision < MIN_PRECISION or recall < MIN_RECALL):
                problems.append(lines[-1])
    print("\n" + "\n".join(lines))
    assert not problems, problems

