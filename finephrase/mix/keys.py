"""Seeded 64-bit keys computed on the fly, so no per-row array over all inputs is ever kept.

A key is splitmix64's finalizer applied to `base + row * golden`, where `base` hashes the seed and a few tags
(what the key is for, the input, the file, the pass): distinct rows of a file get distinct keys, and the same seed
gives the same keys on any machine and in any task.

- the *selection key* of a row orders an input's rows as a seeded shuffle would: an input's budget is filled by
  its rows in key order (compute.py finds where that order crosses the budget from a histogram of the keys);
- the *order key* of a selected row (copy) is its place in the mix: the output is the selected rows sorted by it,
  and its top bits name the on-disk bucket the row is shuffled in (write.py).
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
BIN_BITS = 16  # selection-key histogram: 65,536 bins per input
N_BINS = 1 << BIN_BITS


def base(seed: int, *tags) -> int:
    """A 64-bit stream id from the seed and tags (strings and ints)."""
    h = hashlib.blake2b(repr((int(seed), *tags)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def keys(stream: int, rows: np.ndarray) -> np.ndarray:
    """uint64 keys of `rows` (row indices within a file) in the stream `stream`."""
    x = rows.astype(np.uint64) * _GOLDEN + np.uint64(stream)
    x ^= x >> np.uint64(30)
    x *= _C1
    x ^= x >> np.uint64(27)
    x *= _C2
    x ^= x >> np.uint64(31)
    return x


def bins(k: np.ndarray) -> np.ndarray:
    return (k >> np.uint64(64 - BIN_BITS)).astype(np.int64)


def select_stream(seed: int, input_tag: str, pass_: int, unit_tag: str) -> int:
    return base(seed, "select", input_tag, pass_, unit_tag)


def order_stream(seed: int, unit_tag: str, pass_: int) -> int:
    return base(seed, "order", unit_tag, pass_)


def bucket_of(k: np.ndarray, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(len(k), dtype=np.int64)
    return (k >> np.uint64(64 - bits)).astype(np.int64)
