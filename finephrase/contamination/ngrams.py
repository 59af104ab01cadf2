"""Word n-grams of many texts at once, in Arrow and numpy (no Python loop over words): the normalization both the
benchmark index and the checked rows go through, and the 64-bit hash of each n-gram.

Normalization: every ASCII character that is not a letter or a digit is a space, then lower case (Unicode), then
split on whitespace: "Paris," is "paris", "don't" is "don t", "well-known" is "well known" (the same on both sides
of a comparison). Punctuation outside ASCII (curly quotes, dashes) stays part of its word.
A word the benchmarks never use has no id: an n-gram with such a word cannot match, so it is never hashed.
An n-gram's hash is a polynomial of its words' ids modulo 2**64: two different n-grams share one with a
probability of about 2**-64 per pair (docs/decontamination.md: about 0.03 false matches over the paper's whole run
against a 1M n-gram index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ASCII punctuation and control characters become spaces (a byte table over the string data: no per-word work)
_BLANK = bytes(32 if c < 128 and not chr(c).isalnum() else c for c in range(256))
_BASE = 0x100000001B3  # the FNV prime: odd, so invertible modulo 2**64
_INVERSE = pow(_BASE, -1, 2**64)
HASH_VERSION = 2  # in the index's info: an index hashed another way is refused, not silently never matched


@dataclass(frozen=True)
class Words:
    """The normalized words of a batch of texts, flat: `words[i]` belongs to text `row[i]`, in order."""

    words: pa.Array
    row: np.ndarray  # int64, non-decreasing

    def text(self, start: int, n: int) -> str:
        """Words start .. start + n - 1 joined by spaces (the n-gram as it was matched)."""
        return " ".join(self.words.slice(start, n).to_pylist())

    def ids(self, vocab: pa.Array) -> np.ndarray:
        """Each word's id in `vocab` plus one, as uint64; 0 for a word not in it."""
        ids = pc.fill_null(pc.index_in(self.words, value_set=vocab), -1).to_numpy(zero_copy_only=False)
        return (ids.astype(np.int64) + 1).astype(np.uint64)


def _blank_punctuation(arr: pa.StringArray) -> pa.StringArray:
    """The same strings with every ASCII byte that is not a letter or digit replaced by a space (UTF-8 keeps its
    multi-byte characters intact: their bytes are all >= 128)."""
    if arr.offset or len(arr) < len(arr.buffers()[1]) // 4 - 1:  # a slice: only its own bytes, offsets from 0
        arr = pa.concat_arrays([arr])
    validity, offsets, data = arr.buffers()
    blanked = pa.py_buffer(data.to_pybytes().translate(_BLANK)) if data is not None else None
    return pa.StringArray.from_buffers(len(arr), offsets, blanked, validity, arr.null_count, arr.offset)


def split_words(texts: pa.Array | pa.ChunkedArray | list[str]) -> Words:
    """Normalize and split texts (nulls are empty texts)."""
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.fill_null(arr.cast(pa.string()), "")
    lists = pc.ascii_split_whitespace(pc.utf8_lower(_blank_punctuation(arr)))
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return Words(pc.list_flatten(lists), np.repeat(np.arange(len(arr), dtype=np.int64), lengths))


_POWERS: dict[int, np.ndarray] = {}  # base -> its powers, as many as the longest batch so far needed


def _powers(base: int, count: int) -> np.ndarray:
    """base**0 .. base**(count - 1) modulo 2**64 (kept for the next batch: a batch of 20,000 rows of 270 words
    needs 5.4M, 43 MB)."""
    have = _POWERS.get(base)
    if have is None or len(have) < count:
        out = np.full(max(count, 1 << 16), base, np.uint64)
        out[0] = 1
        have = _POWERS[base] = np.cumprod(out, dtype=np.uint64)
    return have[:count]


def ngram_hashes(ids: np.ndarray, row: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, starts) of the n-grams whose words all have ids and lie in one text; `starts` index the words.

    The hash of the n-gram at i is sum(ids[i + k] * B**k) modulo 2**64, from prefix sums: P[j] = sum of
    ids[t] * B**t for t < j, so the window's sum P[i + n] - P[i] is B**i times its hash, and B is odd, so
    multiplying by B**-i gives it (five passes over the words, whatever n)."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    unknown = np.concatenate([[0], np.cumsum(ids == 0)])
    valid = (unknown[n:] - unknown[:m] == 0) & (row[n - 1:] == row[:m])
    starts = np.flatnonzero(valid)
    prefix = np.zeros(len(ids) + 1, np.uint64)
    np.cumsum(ids * _powers(_BASE, len(ids)), dtype=np.uint64, out=prefix[1:])
    return (prefix[starts + n] - prefix[starts]) * _powers(_INVERSE, m)[starts], starts


def distinct_words(ids: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """How many distinct words each n-gram (at `starts`) has: a window one word fills has few."""
    windows = np.sort(ids[starts[:, None] + np.arange(n)[None, :]], axis=1)
    return 1 + np.count_nonzero(windows[:, 1:] != windows[:, :-1], axis=1)
