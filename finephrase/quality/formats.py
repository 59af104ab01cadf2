"""Format checks: does a generation have the shape its template asked for? Each template declares it as data,
in the `[check]` table of its TOML file (`kind` and its parameters); `check_format(text, spec)` returns None or
the reject reason `format:<what failed>`.

Kinds (parameters, defaults):
- `qa_pairs` (min_pairs 2): questions, each followed by a real answer ("Question: ... / Answer: ...", "Q:/A:",
  numbered or bold questions ending in "?" with the answer below); no question and no answer twice;
- `markdown_table` (min_rows 2, qa_after false): a header row, a separator row (`|---|:--:|`, `|:-|-:|`: any
  cells of hyphens with optional colons), at least min_rows data rows with the header's column count, no column
  repeating one multi-word value down four or more rows; with qa_after, a question and its answer after it;
- `math_solution` (min_steps 2): a problem with numbers, a worked solution (at least min_steps lines, with a
  calculation among them), and a final answer with a value ("Final answer: ...", "The answer is ...");
- `steps` (min_steps 3, min_step_words 4, bullets false): numbered steps 1, 2, 3, ... ("1." / "1)" / "Step 1:")
  of at least min_step_words words on average, none of them a loop of step labels ("3. Step 4: Step 5:"), and
  not a table of contents (many short titles without a sentence); with bullets, bullet points ("- ", "* ",
  "• ", under section headings or not) count as steps too, as instructions that allow them ask;
- `bullets` (min_items 3): a list of at least min_items items ("- ", "* ", "• " or "1. ");
- `prose` (min_words 50, min_sentences 3): running text of at least that many words and sentences;
- `none`: no shape check (the non-answer checks still apply).

`grammar` (optional): a GBNF grammar of the shape, used with `--constrain-format` (finephrase/quality/constrain.py).
"""

from __future__ import annotations

import re
from typing import NamedTuple

KINDS = ("qa_pairs", "markdown_table", "math_solution", "steps", "bullets", "prose", "none")
PARAMS = {
    "qa_pairs": {"min_pairs": 2},
    "markdown_table": {"min_rows": 2, "qa_after": False},
    "math_solution": {"min_steps": 2},
    "steps": {"min_steps": 3, "min_step_words": 4, "bullets": False},
    "bullets": {"min_items": 3},
    "prose": {"min_words": 50, "min_sentences": 3},
    "none": {},
}

_MARKUP = re.compile(r"^[\s>#*_\-•]*")
_NUMBERING = re.compile(r"^(?:\d{1,3}[.)]|\(\d{1,3}\))\s*")
_Q_LABEL = re.compile(r"^(?:q(?:uestion)?\s*\d{0,3}\s*[:.)\-]|\d{1,3}[.)]\s*q(?:uestion)?\s*[:.)\-]?)\s*", re.I)
_A_LABEL = re.compile(r"^a(?:nswer)?\s*\d{0,3}\s*[:.)\-]\s*", re.I)
_WORD = re.compile(r"\w+")


def _clean(line: str) -> str:
    """A line without leading markdown markup (#, *, >, -, bullets) and the bold/italic markers around it."""
    line = _MARKUP.sub("", line.strip())
    return line.replace("**", "").replace("__", "").strip()


def _words(text: str) -> int:
    return len(_WORD.findall(text))


# -- qa_pairs -------------------------------------------------------------------------------------------------


def _question(line: str) -> tuple[bool, str]:
    """(is a question line, the text after a question label)."""
    c = _clean(line)
    if m := _Q_LABEL.match(c):
        return True, c[m.end():]
    bare = _NUMBERING.sub("", c)
    return (bare.endswith("?") and _words(bare) >= 3 and len(bare) < 300), ""


def qa_pairs(text: str, min_answer_words: int = 2) -> list[tuple[str, str]]:
    """The (question, answer) pairs of a text: a question line, then its answer on the same line after "Answer:"
    or on the lines up to the next question; an answer has at least min_answer_words words."""
    pairs, q, answer = [], None, []

    def close():
        if q is not None:
            a = " ".join(answer).strip()
            if _words(a) >= min_answer_words and a.lower() != q.lower():
                pairs.append((q, a))

    for line in text.splitlines():
        c = _clean(line)
        if not c:
            continue
        is_q, rest = _question(line)
        if is_q:
            close()
            q, answer = c, []
            if (m := re.search(r"\b(?:answer|a)\s*:\s*", rest, re.I)) and "?" in rest[:m.start()]:
                answer = [rest[m.end():]]  # "Q: ...? A: ..." on one line
            continue
        if q is not None:
            answer.append(_A_LABEL.sub("", c))
    close()
    return pairs


def _norm(s: str) -> str:
    s = _Q_LABEL.sub("", _clean(s))
    s = _Q_LABEL.sub("", s)  # "Question: Question: ..." (a label written twice)
    return " ".join(_WORD.findall(s.lower()))


def _repeated(pairs: list[tuple[str, str]]) -> str | None:
    """A FAQ that asks the same question twice or gives the same answer twice is looping, not covering."""
    questions = [_norm(q) for q, _ in pairs]
    answers = [_norm(a) for _, a in pairs]
    if len(set(questions)) < len(questions):
        return "format:repeated_question"
    if len(set(answers)) < len(answers):
        return "format:repeated_answer"
    return None


# -- markdown_table -------------------------------------------------------------------------------------------

_SEPARATOR = re.compile(r"^\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)+\|?$")


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


class Table(NamedTuple):
    header: list[str]  # the header row's cells
    rows: list[list[str]]  # the cells of each data row with the header's column count
    end: int  # index of the line after the table


def markdown_table(text: str) -> tuple[int, int, int] | None:
    """(data rows, columns, index of the line after the table) of the first markdown table, or None."""
    found = first_table(text)
    return None if found is None else (len(found.rows), len(found.header), found.end)


def first_table(text: str) -> Table | None:
    """The first markdown table of `text` (a header row, a separator row, data rows), or None."""
    lines = text.splitlines()
    for i in range(1, len(lines)):
        if not _SEPARATOR.match(lines[i].strip()) or "|" not in lines[i - 1]:
            continue
        header = _cells(lines[i - 1])
        cols = len(header)
        if cols < 2 or len(_cells(lines[i])) != cols:
            continue
        rows, j = [], i + 1
        while j < len(lines) and "|" in lines[j] and lines[j].strip():
            cells = _cells(lines[j])
            if len(cells) == cols and any(cells):
                rows.append(cells)
            j += 1
        return Table(header, rows, j)
    return None


def _repeated_column(rows: list[list[str]]) -> bool:
    """One multi-word value down a column in four or more rows, most of them (a small model's stuck table)."""
    for col in range(1, len(rows[0]) if rows else 0):
        values = [r[col].lower() for r in rows if r[col].strip()]
        top = max(set(values), key=values.count, default="")
        if len(top.split()) >= 2 and values.count(top) >= 4 and values.count(top) >= 0.75 * len(rows):
            return True
    return False


# -- math_solution ----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d")
_CALC = re.compile(r"\d[\d.,]*\s*(?:[-+*/×÷x^]|\\times|\\div)\s*\(?\$?\d|\d\s*=\s*\$?\d|=\s*\$?\d")
_FINAL = re.compile(r"(?:final answer|the answer is|answer\s*:|therefore,?[^\n]{0,80}\d|"
                    r"so,?[^\n]{0,60}\bis\b[^\n]{0,40}\d)",
                    re.I)


def _math_problem(text: str, min_steps: int) -> str | None:
    """A problem with numbers, then a worked solution: at least min_steps lines between the problem and the final
    answer, one of them (at least) a calculation, and a final answer with a value."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not _NUMBER.search(text):
        return "format:no_numbers"
    final = next((i for i in range(len(lines) - 1, -1, -1) if _FINAL.search(lines[i])), None)
    if final is None or not (_NUMBER.search(lines[final]) or re.search(r"final answer\s*:\s*\w", lines[final], re.I)):
        return "format:no_final_answer"
    calc = [i for i, ln in enumerate(lines[:final + 1]) if _CALC.search(ln)]
    if not calc:
        return "format:no_calculation"
    start = next((i for i, ln in enumerate(lines) if re.match(r"^\W*(?:solution|answer|step)\b", ln, re.I)), 0)
    worked = [ln for ln in lines[start:final] if not re.match(r"^\W*solution\W*$", ln, re.I)]
    if len(worked) < min_steps:
        return f"format:solution_steps<{min_steps}"
    return None


# -- steps ----------------------------------------------------------------------------------------------------

_STEP = re.compile(r"^(?:step\s*(\d{1,3})\s*[:.)\-]?|(\d{1,3})\s*[.)]|\((\d{1,3})\))\s*\S", re.I)


def numbered_steps(text: str) -> int:
    """How many numbered steps 1, 2, 3, ... in order (a list that restarts counts from its longest run)."""
    return len(step_bodies(text))


def step_bodies(text: str) -> list[str]:
    """The texts of the longest in-order run of numbered steps (a step's text: its line after the number, and
    the lines up to the next step)."""
    best, run = [], []
    for line in text.splitlines():
        c = _clean(line)
        m = _STEP.match(c)
        if not m:
            if run and c:
                run[-1] += " " + c
            continue
        n = int(next(g for g in m.groups() if g))
        body = c[m.end() - 1:]
        if n == len(run) + 1:
            run.append(body)
        elif n == 1:
            run = [body]
        if len(run) > len(best):
            best = run
    return list(best)


_STEP_LABEL = re.compile(r"\bstep\s*(\d+)\s*[:.)]", re.I)


def _looping(n: int, body: str) -> bool:
    """A step whose text is step labels ("3. Step 4: Step 5: ..."); "1. Step 1: Download ..." is a step."""
    labels = _STEP_LABEL.findall(body[:80])
    return len(labels) >= 2 or (len(labels) == 1 and int(labels[0]) != n and _STEP_LABEL.match(body.strip()))


_BULLET = re.compile(r"^\s*(?:[-*•+])\s+(\S.*)$")


def bullet_bodies(text: str) -> list[str]:
    """The texts of the bullet points of a text (an item: its line, and the lines after it up to the next item,
    heading or blank line)."""
    items: list[str] = []
    open_item = False
    for line in text.splitlines():
        if m := _BULLET.match(line):
            items.append(m.group(1).replace("**", "").strip())
            open_item = True
        elif open_item and line.strip() and not line.lstrip().startswith(("#", "```")):
            items[-1] += " " + line.strip()
        else:
            open_item = False
    return items


def _title(step: str) -> bool:
    """A few words in title case, no sentence ("Debian Installation", "Introduction to the Debugger"); a short
    instruction ("Open the terminal") is not one."""
    long_words = [w for w in _WORD.findall(step) if len(w) >= 4 and not w.isdigit()]
    capitalized = sum(1 for w in long_words if w[0].isupper())
    return (_words(step) <= 8 and not re.search(r"[.!?:]\s*$|[.!?]\s", step.strip())
            and bool(long_words) and capitalized >= 0.6 * len(long_words))


def _table_of_contents(steps: list[str]) -> bool:
    """Many steps that are titles: a table of contents, not instructions."""
    return len(steps) >= 6 and sum(1 for s in steps if _title(s)) >= 0.8 * len(steps)


def _steps_problem(text: str, min_steps: int, min_step_words: float, bullets: bool = False) -> str | None:
    steps = step_bodies(text)
    if bullets and len(steps) < min_steps:
        steps = steps + bullet_bodies(text)
    if len(steps) < min_steps:
        return f"format:steps<{min_steps}"
    if any(_looping(n, s) for n, s in enumerate(steps, start=1)):
        return "format:steps_loop"
    if _table_of_contents(steps):
        return "format:table_of_contents"
    if sum(_words(s) for s in steps) / len(steps) < min_step_words:
        return f"format:step_words<{min_step_words:g}"
    return None


# -- the check ------------------------------------------------------------------------------------------------


def check_format(text: str, spec: dict | None) -> str | None:
    """None if `text` has the shape `spec` (a template's [check] table) declares, else `format:<what failed>`."""
    if not spec:
        return None
    kind = spec.get("kind", "none")
    p = {**PARAMS[kind], **{k: v for k, v in spec.items() if k in PARAMS[kind]}}
    if kind == "qa_pairs":
        pairs = qa_pairs(text)
        if len(pairs) < p["min_pairs"]:
            return f"format:qa_pairs<{p['min_pairs']}"
        return _repeated(pairs)
    if kind == "markdown_table":
        t = first_table(text)
        if t is None:
            return "format:no_table"
        if len(t.rows) < p["min_rows"]:
            return f"format:table_rows<{p['min_rows']}"
        if _repeated_column(t.rows):
            return "format:table_repeated_cells"
        if p["qa_after"] and not qa_pairs("\n".join(text.splitlines()[t.end:]), min_answer_words=1):
            return "format:no_qa_after_table"
        return None
    if kind == "math_solution":
        return _math_problem(text, p["min_steps"])
    if kind == "steps":
        return _steps_problem(text, p["min_steps"], p["min_step_words"], p["bullets"])
    if kind == "bullets":
        items = sum(1 for ln in text.splitlines() if re.match(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+\S", ln))
        return None if items >= p["min_items"] else f"format:items<{p['min_items']}"
    if kind == "prose":
        if _words(text) < p["min_words"]:
            return f"format:words<{p['min_words']}"
        if len(re.findall(r"[.!?](?:\s|$)", text)) < p["min_sentences"]:
            return f"format:sentences<{p['min_sentences']}"
        return None
    return None


def validate_spec(spec, source: str) -> dict:
    """A template's [check] table, checked when the template loads (a typo fails before any request)."""
    from finephrase.errors import UsageError

    if not isinstance(spec, dict):
        raise UsageError(f"prompt template {source}: [check] must be a table")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise UsageError(f"prompt template {source}: [check] kind must be one of {', '.join(KINDS)}, not {kind!r}")
    from finephrase.quality.nonanswer import SETTINGS

    allowed = {"kind", "grammar", *PARAMS[kind], *SETTINGS}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UsageError(f"prompt template {source}: [check] has unknown keys for kind {kind}: {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(allowed - {'kind'}))})")
    if "grammar" in spec and not (isinstance(spec["grammar"], str) and "root" in spec["grammar"]):
        raise UsageError(f"prompt template {source}: [check] grammar must be a GBNF grammar (a string with a root "
                         f"rule)")
    return dict(spec)
