"""Counting tokens with the served model's own tokenizer.

Remote servers are asked (`ChatClient.count_tokens`: vLLM `/tokenize`, llama-cpp-python `/extras/tokenize/count`).
The embedded llama.cpp server handles one request at a time, so a tokenize call there waits behind whole
generations; for it the same GGUF's vocabulary is tokenized in-process instead, without llama.cpp (it is not a
default dependency): the tokenizer's metadata (tokens, merges, pre-tokenizer name) is read from the GGUF header
(`read_gguf_metadata`; the tensors are never read) and rebuilt as a Hugging Face `tokenizers.Tokenizer` that
splits text as llama.cpp does (~0.1 s to load). tests/serving/test_tokenizer.py checks the counts against llama.cpp's
own server.

Only what llama.cpp and this module both know is accepted: byte-level BPE (`tokenizer.ggml.model` "gpt2") with
a pre-tokenizer listed in `_PRE_TOKENIZERS`, without user-defined tokens; anything else raises a one-line
ValueError. Known difference: a character that llama.cpp's Unicode tables lack (unassigned, or newer than
them) may be grouped with its neighbours differently, so a text holding one can count a token more or fewer.
"""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path
from typing import BinaryIO

_INLINE_CHARS = 20_000  # longer texts are tokenized in a worker thread, off the request loop

# -- the GGUF header -------------------------------------------------------------------------------------------
# Little-endian: b"GGUF", u32 version (2 or 3), u64 tensor count, u64 key/value count, then per key/value a
# string key (u64 byte length + UTF-8), a u32 value type and the value; an array is a u32 element type, a u64
# length and the elements. The tensor infos and the tensors follow; they are not read.

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _unpack(f: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)


def _string(f: BinaryIO) -> str:
    (n,) = _unpack(f, "<Q")
    data = f.read(n)
    if len(data) != n:
        raise ValueError("truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int):
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        elem, n = _unpack(f, "<IQ")
        if elem == _STRING:
            return [_string(f) for _ in range(n)]
        if elem in _SCALARS:
            return list(_unpack(f, f"<{n}{_SCALARS[elem]}"))
        return [_value(f, elem) for _ in range(n)]  # an array of arrays
    if kind in _SCALARS:
        return _unpack(f, "<" + _SCALARS[kind])[0]
    raise ValueError(f"unknown GGUF value type {kind}")


def read_gguf_metadata(path: str | Path) -> dict:
    """The key/value metadata of a GGUF file (version 2 or 3) as a dict."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        (version,) = _unpack(f, "<I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version} (2 and 3 are read)")
        _n_tensors, n_kv = _unpack(f, "<QQ")
        meta = {}
        for _ in range(n_kv):
            key = _string(f)
            (kind,) = _unpack(f, "<I")
            meta[key] = _value(f, kind)
        return meta


# -- the tokenizer ---------------------------------------------------------------------------------------------


def _pre_smollm():
    from tokenizers import pre_tokenizers as pt

    # llama.cpp (llama-vocab.cpp): "\p{N}" (each digit alone), then GPT-2's regex; as HF's SmolLM2 tokenizer.json
    return pt.Sequence([pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=False, use_regex=True)])


_PRE_TOKENIZERS = {"smollm": _pre_smollm}  # `tokenizer.ggml.pre` -> llama.cpp's split, as a pre-tokenizer
_USER_DEFINED = 4  # `tokenizer.ggml.token_type`: llama.cpp splits these out of the text even as plain text


def _byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: the character that stands for each byte (printable ones as themselves)."""
    keep = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    out, n = [], 0
    for b in range(256):
        out.append(chr(b) if b in keep else chr(256 + n))
        n += b not in keep
    return out


def _chars_holding(missing: list[int]) -> re.Pattern | None:
    """The characters whose UTF-8 encoding holds one of these bytes, as a regex (None for no bytes)."""
    ranges = []
    for b in missing:
        if b < 0x80:
            ranges.append((b, b))
        elif b < 0xC0:  # a continuation byte: any non-ASCII character may hold it
            ranges.append((0x80, 0x10FFFF))
        elif 0xC2 <= b <= 0xDF:
            ranges.append(((b & 0x1F) << 6, ((b & 0x1F) << 6) + 0x3F))
        elif 0xE0 <= b <= 0xEF:
            ranges.append((max((b & 0x0F) << 12, 0x800), ((b & 0x0F) << 12) + 0xFFF))
        elif 0xF0 <= b <= 0xF4:
            ranges.append((max((b & 0x07) << 18, 0x10000), min(((b & 0x07) << 18) + 0x3FFFF, 0x10FFFF)))
        # 0xC0, 0xC1 and 0xF5-0xFF never occur in UTF-8
    if not ranges:
        return None
    return re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges) + "]")


def build_tokenizer(meta: dict):
    """(tokenizer, n, absent) for GGUF metadata: a `tokenizers.Tokenizer` that splits and merges as llama.cpp.

    The vocabulary may lack a few bytes' symbols (SmolLM2's lacks 21). llama.cpp keeps such a symbol in its word,
    where it blocks merges, and then drops it; the Tokenizer gets placeholder ids >= n for them, to be left out of
    counts, and `absent` matches the characters that can produce one (None if none can)."""
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE

    model = meta.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(f"unsupported GGUF tokenizer model {model!r} (only byte-level BPE, 'gpt2', is read)")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise ValueError(f"unsupported GGUF pre-tokenizer {pre!r} (known: {', '.join(sorted(_PRE_TOKENIZERS))})")
    if _USER_DEFINED in meta.get("tokenizer.ggml.token_type", ()):
        raise ValueError("unsupported GGUF vocabulary: it has user-defined tokens")
    tokens = meta["tokenizer.ggml.tokens"]
    n = len(tokens)
    vocab = {t: i for i, t in enumerate(tokens)}  # a repeated token keeps its last id, as in llama.cpp
    symbols = _byte_symbols()
    missing = [b for b, s in enumerate(symbols) if s not in vocab]
    vocab.update({symbols[b]: n + k for k, b in enumerate(missing)})  # the placeholders
    merges = []
    for m in meta.get("tokenizer.ggml.merges", ()):
        cut = m.find(" ", 1)  # as llama.cpp: the first space after the first character
        if cut < 0:
            raise ValueError(f"invalid GGUF merge {m!r}")
        merges.append((m[:cut], m[cut + 1:]))
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=False))
    tok.pre_tokenizer = _PRE_TOKENIZERS[pre]()
    tok.decoder = decoders.ByteLevel()
    tok.no_truncation()
    tok.no_padding()
    return tok, n, _chars_holding(missing)


class GGUFTokenizer:
    """Counts the tokens of texts as llama.cpp does with this GGUF: no BOS/EOS added, special tokens not parsed
    ("<|im_end|>" in a text is plain text). One instance may be used from several threads at once; `count_batch`
    spreads a batch over the cores (tokenizers' own threads, without the GIL), `count_sync` holds the GIL."""

    def __init__(self, gguf: str | Path):
        self.gguf = str(gguf)
        self._tok = None

    def _load(self):
        """The `tokenizers.Tokenizer` (read from the GGUF on first use)."""
        if self._tok is None:
            tok, self._n, self._absent = build_tokenizer(read_gguf_metadata(self.gguf))
            self._tok = tok  # last: another thread that sees it sees the rest
        return self._tok

    def _length(self, text: str, ids: list[int]) -> int:
        if self._absent is not None and self._absent.search(text):
            n = self._n
            return sum(1 for i in ids if i < n)
        return len(ids)

    def count_sync(self, text: str) -> int:
        return self._length(text, self._load().encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: list[str]) -> list[int]:
        encodings = self._load().encode_batch(texts, add_special_tokens=False)
        return [self._length(t, e.ids) for t, e in zip(texts, encodings)]

    async def count(self, text: str) -> int:
        if len(text) <= _INLINE_CHARS:
            return self.count_sync(text)
        return await asyncio.to_thread(self.count_sync, text)
