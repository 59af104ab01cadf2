"""Token-accurate truncation of documents to the context budget."""

import asyncio

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE

from finephrase.serving.truncation import fit_to_budget


class WordCounter:
    """Fake tokenizer: one token per whitespace-separated word; records its calls."""

    def __init__(self):
        self.calls: list[str] = []

    async def __call__(self, text: str) -> int:
        self.calls.append(text)
        return len(text.split())


def fit(text, budget, count):
    return asyncio.run(fit_to_budget(text, budget, count))


def _lines(n: int, words_per_line: int = 10) -> list[str]:
    return [" ".join(f"w{i}_{j}" for j in range(words_per_line)) for i in range(n)]


def test_short_text_unchanged_without_counting():
    counter = WordCounter()
    text = "A short document.\nWith two lines."
    r = fit(text, 100, counter)
    assert r.text == text
    assert r.truncated is False
    assert r.tokens is None
    assert counter.calls == []


def test_short_text_bytes_boundary_not_counted():
    counter = WordCounter()
    text = "é" * 50  # 100 UTF-8 bytes
    r = fit(text, 100, counter)
    assert r.text == text and not r.truncated and counter.calls == []


def test_multibyte_text_is_measured_in_bytes_not_characters():
    """A byte-level tokenizer can make one token per byte: 60 four-byte characters may be 240 tokens."""
    calls = []

    async def per_byte(s):
        calls.append(s)
        return len(s.encode("utf-8"))

    text = "🚀" * 60  # 60 characters, 240 bytes
    r = fit(text, 100, per_byte)
    assert calls
    assert r.truncated
    assert len(r.text.encode("utf-8")) <= 100
    assert r.text == "🚀" * len(r.text)


def test_long_bytes_but_few_tokens_is_kept_whole():
    counter = WordCounter()
    text = "\n".join(_lines(5))  # 50 words, far more than 100 bytes
    assert len(text.encode()) > 100
    r = fit(text, 100, counter)
    assert r.text == text
    assert r.truncated is False
    assert r.tokens == 50
    assert counter.calls  # it had to measure


def test_multiline_cut_is_longest_line_prefix():
    counter = WordCounter()
    lines = _lines(200)  # 10 words per line
    text = "\n".join(lines)
    budget = 205
    r = fit(text, budget, counter)
    assert r.truncated is True
    assert len(r.text.split()) <= budget
    assert r.tokens == len(r.text.split())
    assert text.startswith(r.text)
    # ends at a line boundary
    assert text[len(r.text)] == "\n"
    assert r.text.split("\n")[-1] in lines
    # and is the longest line prefix that fits: one more line would be over budget
    kept = r.text.count("\n") + 1
    assert kept == 20
    assert r.text == "\n".join(lines[:kept])
    assert len("\n".join(lines[: kept + 1]).split()) > budget
    # binary search, not a call per line
    assert len(counter.calls) < 30


def test_multiline_cut_with_uneven_lines():
    counter = WordCounter()
    lines = [" ".join(f"x{i}y{j}" for j in range(1 + (i * 7) % 13)) for i in range(300)]
    text = "\n".join(lines)
    budget = 333
    r = fit(text, budget, counter)
    assert r.truncated
    assert len(r.text.split()) <= budget
    assert text.startswith(r.text)
    kept = r.text.count("\n") + 1
    assert r.text == "\n".join(lines[:kept])
    assert len("\n".join(lines[: kept + 1]).split()) > budget


def test_giant_single_line_cut_at_word_boundary():
    counter = WordCounter()
    words = [f"word{i}" for i in range(2000)]
    text = " ".join(words)
    budget = 100
    r = fit(text, budget, counter)
    assert r.truncated is True
    assert "\n" not in r.text
    assert text.startswith(r.text)
    n = len(r.text.split())
    assert n <= budget
    assert r.tokens == n
    # cut between words, not inside one
    assert text[len(r.text)] == " "
    assert r.text.split()[-1] == words[n - 1]
    # and as long as fits
    assert n == budget


def test_few_lines_then_long_line_uses_word_cut():
    """A short first line then a giant line: a line cut would waste the budget, so it cuts inside the long line."""
    counter = WordCounter()
    text = "Title line\n" + " ".join(f"t{i}" for i in range(3000))
    budget = 200
    r = fit(text, budget, counter)
    n = len(r.text.split())
    assert n <= budget
    assert n >= 0.8 * budget
    assert text.startswith(r.text)
    assert text[len(r.text)] == " "


def test_one_giant_word_cut_by_characters():
    calls = []

    async def by_chars(s):
        calls.append(s)
        return len(s) // 3

    text = "x" * 50_000
    r = fit(text, 300, by_chars)
    assert r.truncated
    assert text.startswith(r.text)
    assert 0 < len(r.text) // 3 <= 300


def test_no_counter_fallback_cuts_to_bytes():
    text = ("Ünïcödé line with emoji 🚀 and more words.\n" * 200)
    budget = 501
    r = fit(text, budget, None)
    assert r.truncated is True
    assert r.tokens is None
    assert len(r.text.encode("utf-8")) <= budget
    assert text.startswith(r.text)
    assert len(r.text.encode("utf-8")) > budget * 0.8
    r.text.encode("utf-8").decode("utf-8")  # valid text, no split characters


def test_no_counter_fallback_never_splits_a_character():
    text = "🚀" * 1000  # 4 bytes each
    r = fit(text, 10, None)
    assert r.text == "🚀🚀"
    assert r.truncated


def test_counter_returning_none_falls_back_to_bytes():
    async def unavailable(s):
        return None

    text = "word " * 1000
    r = fit(text, 100, unavailable)
    assert r.truncated and r.tokens is None
    assert len(r.text.encode()) <= 100
    assert text.startswith(r.text)


@pytest.mark.parametrize("budget", [0, -1, -500])
def test_non_positive_budget_raises(budget):
    with pytest.raises(ValueError):
        fit("some text", budget, WordCounter())
    with pytest.raises(ValueError):
        fit("some text", budget, None)


# -- the real tokenizer ------------------------------------------------------------------------------------------


def test_real_smollm2_tokenizer_on_longest_sample_document():
    from finephrase.serving import packaged_gguf_path
    from finephrase.serving.tokenizer import GGUFTokenizer

    try:
        gguf = packaged_gguf_path()
    except Exception as e:  # the model package is not installed
        pytest.skip(str(e))
    ntok = GGUFTokenizer(gguf).count_sync  # llama.cpp's counts (tests/serving/test_tokenizer.py checks them)

    calls = []

    async def count(s: str) -> int:
        calls.append(len(s))
        return ntok(s)

    table = pq.read_table(SAMPLE, columns=["text", "token_count"])
    i = pc.index(table["token_count"], pc.max(table["token_count"])).as_py()
    text = table["text"][i].as_py()
    assert ntok(text) == table["token_count"][i].as_py() > 5000  # the sample's count, made with llama.cpp

    budget = 500
    r = asyncio.run(fit_to_budget(text, budget, count))
    assert r.truncated is True
    n = ntok(r.text)
    assert n <= budget
    assert n > 400  # measured with the tokenizer, not a crude characters-per-token guess
    assert r.tokens == n
    assert text.startswith(r.text)
    assert len(calls) < 40
