"""Turn a raw generation into the published text.

- `<think>...</think>` reasoning (and a dangling `</think>` with no opening tag) is split off;
- when a template declares `extract_tag` (REWIRE-style), only the text inside `<tag>...</tag>` is kept; other
  tags the model wrapped its reasoning in are dropped with it;
- known lead-ins ("Here is a paraphrased version:", "Sure! Here's ...:") and a wrapping ``` fence are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_LEAD_IN = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok)[,!.]?\s*)?"
    r"(?:here\s+is|here's|here\s+are|below\s+is|below\s+are|the\s+following\s+is)\b[^\n]{0,120}:\s*\n",
    re.I,
)
_BARE_ACK = re.compile(r"^\s*(?:sure|certainly|of course)[,!.]\s*\n", re.I)
_FENCE = re.compile(r"^\s*```[a-z]*\n(.*)\n```\s*$", re.S)


@dataclass
class Parsed:
    text: str
    reasoning: str | None = None
    problem: str | None = None  # a reject reason found while parsing (e.g. "missing_output_tag")


def parse_output(raw: str, extract_tag: str | None = None) -> Parsed:
    text = raw or ""
    reasoning_parts = [m.strip() for m in _THINK.findall(text)]
    text = _THINK.sub("", text)
    if "</think>" in text.lower():  # reasoning whose opening tag was in the chat template
        idx = text.lower().rfind("</think>")
        reasoning_parts.append(text[:idx].strip())
        text = text[idx + len("</think>"):]
    elif re.search(r"<think>", text, re.I):  # reasoning never closed: there is no answer
        return Parsed("", text.strip(), "unclosed_think")
    reasoning = "\n\n".join(p for p in reasoning_parts if p) or None

    if extract_tag:
        tag = re.escape(extract_tag)
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S | re.I)
        if not found:
            opened = re.search(rf"<{tag}>(.*)$", text, re.S | re.I)
            if not opened:
                return Parsed("", reasoning, "missing_output_tag")
            found = [opened.group(1)]  # closing tag missing (often the length limit): keep what is there
        outside = re.sub(rf"<{tag}>.*?(</{tag}>|$)", "", text, flags=re.S | re.I).strip()
        if outside:
            reasoning = "\n\n".join(p for p in (reasoning, outside) if p)
        text = found[-1]

    text = text.strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1).strip()
    for pattern in (_LEAD_IN, _BARE_ACK):
        m = pattern.match(text + "\n")
        if m and m.end() <= len(text) + 1:
            text = (text + "\n")[m.end():].strip()
    return Parsed(text, reasoning)
