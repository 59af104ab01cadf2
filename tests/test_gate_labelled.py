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

Items come from three origins: real SmolLM2-135M-Instruct outputs (llama.cpp, the formats' own prompts),
hand-written ones grounded in the source, and hand-written near misses on both sides of the line.

For each format the gate's published set (reason None) must have precision >= 0.95 and recall >= 0.9;
every rejected bad item must carry a reason from the known families. Run with `-s` to see the per-format
numbers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "gate_labelled.jsonl"
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
    with DATA.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
        assert item["origin"] in ("smollm2-135m", "hand", "near_miss")
        assert item["source"].strip()
    counts = Counter((i["format"], i["label"]) for i in ITEMS)
    real = Counter(i["format"] for i in ITEMS if i["origin"] == "smollm2-135m")
    for fmt in FORMATS:
        assert counts[(fmt, "good")] >= 25, (fmt, counts)
        assert counts[(fmt, "bad")] >= 25, (fmt, counts)
        assert real[fmt] >= 10, (fmt, real)


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[dict, str | None]]:
    from finephrase.prompts.templates import load_prompt
    from finephrase.quality.gate import QualityGate

    gate = QualityGate()
    prompts = {fmt: load_prompt(fmt) for fmt in FORMATS}
    return [
        (item, gate.check(item["text"], "stop", prompt=prompts[item["format"]], source=item["source"]))
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
