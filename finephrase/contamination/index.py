"""The n-gram index of a set of benchmarks: built once, saved in a folder, loaded read-only by every task, and
the check of a batch of texts against it.

What is indexed: every n-gram (default 10 words, normalized as ngrams.py says) of every item, except
- degenerate ones: fewer than half of the n words distinct (`_ _ _ _`, `0 0 0 0 1 0 0 ...`), which match tables
  and filler rather than a benchmark's text;
- boilerplate: an n-gram that more than `boilerplate_share` of a benchmark's items share (and at least
  `boilerplate_min` of them), e.g. an instruction every item repeats.
An n-gram two benchmarks share is attributed to the first given. Items shorter than n words have no n-gram and
cannot be found (counted as `short_items`).

On disk (FOLDER/): `ngrams.parquet` (hash uint64 sorted, benchmark int16, item int32), `vocab.parquet` (the
benchmarks' words: a word outside it ends any n-gram), `index.json` (settings and counts). In memory: 14 bytes
per n-gram plus the vocabulary: 1M n-grams is about 15 MB, whatever the number of rows checked.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finephrase.contamination.benchmarks import Benchmark
from finephrase.contamination.ngrams import HASH_VERSION, distinct_words, ngram_hashes, split_words

NGRAMS_FILE, VOCAB_FILE, INFO_FILE = "ngrams.parquet", "vocab.parquet", "index.json"
DEFAULTS = {"n": 10, "boilerplate_share": 0.01, "boilerplate_min": 5}
_WINDOW_BATCH = 1_000_000  # n-grams whose distinct words are counted at once (n x 8 bytes each)
_FILTER_BITS = 24  # a table of 2**24 flags by the hashes' top bits: most windows are answered there (16 MB)


@dataclass(frozen=True)
class Match:
    """The first indexed n-gram found in text `row` of a checked batch."""

    row: int
    benchmark: str
    item: int
    ngram: str


def _degenerate(ids: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(len(starts), bool)
    for lo in range(0, len(starts), _WINDOW_BATCH):
        part = starts[lo:lo + _WINDOW_BATCH]
        out[lo:lo + len(part)] = distinct_words(ids, part, n) * 2 < n
    return out


def _benchmark_ngrams(bench: Benchmark, vocab: pa.Array, n: int, share: float, least: int):
    """(hashes, items, counts) of one benchmark's indexed n-grams, one per distinct hash (its first item)."""
    words = split_words(bench.items)
    ids = words.ids(vocab)
    hashes, starts = ngram_hashes(ids, words.row, n)
    items = words.row[starts]
    degenerate = _degenerate(ids, starts, n)
    hashes, items = hashes[~degenerate], items[~degenerate]
    pairs = np.unique(np.stack([hashes, items.astype(np.uint64)]), axis=1)  # one per (n-gram, item), sorted
    unique, first, n_items = np.unique(pairs[0], return_index=True, return_counts=True)
    limit = max(least, share * len(bench.items))
    keep = n_items <= limit
    short = len(bench.items) - len(np.unique(words.row[starts])) if len(starts) else len(bench.items)
    counts = {"items": len(bench.items), "short_items": int(short), "degenerate": int(degenerate.sum()),
              "boilerplate": int((~keep).sum()), "ngrams": int(keep.sum())}
    return unique[keep], pairs[1][first][keep].astype(np.int32), counts


class NgramIndex:
    def __init__(self, hashes: np.ndarray, bench: np.ndarray, item: np.ndarray, vocab: pa.Array, info: dict):
        self.hashes, self.bench, self.item, self.vocab, self.info = hashes, bench, item, vocab, info
        self.n = int(info["n"])
        # a first answer for every window: only those whose top bits some indexed n-gram has are looked up
        self._maybe = np.zeros(1 << _FILTER_BITS, np.bool_)
        self._maybe[hashes >> np.uint64(64 - _FILTER_BITS)] = True
        self.names = [b["name"] for b in info["benchmarks"]]

    @classmethod
    def build(cls, benchmarks: list[Benchmark], n: int = DEFAULTS["n"],
              boilerplate_share: float = DEFAULTS["boilerplate_share"],
              boilerplate_min: int = DEFAULTS["boilerplate_min"]) -> NgramIndex:
        vocab = pc.unique(pa.concat_arrays([split_words(b.items).words for b in benchmarks]))
        vocab = vocab.filter(pc.not_equal(vocab, ""))
        parts, described = [], []
        for i, b in enumerate(benchmarks):
            hashes, items, counts = _benchmark_ngrams(b, vocab, n, boilerplate_share, boilerplate_min)
            parts.append((hashes, np.full(len(hashes), i, np.int16), items))
            described.append({"name": b.name, "source": b.source, "layout": b.layout, "columns": list(b.columns),
                              **counts})
        hashes = np.concatenate([p[0] for p in parts])
        unique, first = np.unique(hashes, return_index=True)  # stable: the first benchmark's, on a tie
        info = {"n": n, "hash_version": HASH_VERSION, "boilerplate_share": boilerplate_share,
                "boilerplate_min": boilerplate_min,
                "normalization": "ascii punctuation as space, lower case, whitespace split",
                "benchmarks": described, "ngrams": int(len(unique)), "vocabulary": len(vocab)}
        return cls(unique, np.concatenate([p[1] for p in parts])[first],
                   np.concatenate([p[2] for p in parts])[first], vocab, info)

    def save(self, folder: str | Path) -> None:
        """Write the index into `folder` (each file atomically; index.json last: its presence means complete)."""
        from finephrase.store.layout import durable_write, durable_write_table

        folder = Path(folder)
        durable_write_table(pa.table({"hash": self.hashes, "benchmark": self.bench, "item": self.item}),
                            folder / NGRAMS_FILE)
        durable_write_table(pa.table({"word": self.vocab}), folder / VOCAB_FILE)
        durable_write(folder / INFO_FILE, orjson.dumps(self.info, option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, folder: str | Path) -> NgramIndex:
        folder = Path(folder)
        info = orjson.loads((folder / INFO_FILE).read_bytes())
        if info.get("hash_version") != HASH_VERSION:
            from finephrase.errors import UsageError

            raise UsageError(f"the n-gram index in {folder} was built by another finephrase version: rerun the "
                             f"command with --overwrite")
        t = pq.read_table(folder / NGRAMS_FILE)
        vocab = pq.read_table(folder / VOCAB_FILE).column("word").combine_chunks()
        return cls(t.column("hash").to_numpy(), t.column("benchmark").to_numpy(), t.column("item").to_numpy(),
                   vocab, info)

    def find(self, texts: pa.Array | list[str], threads: int = 1) -> list[Match]:
        """The texts that contain an indexed n-gram, each with its first one (in `row` order). `threads` split
        the batch (Arrow and numpy release the GIL)."""
        arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
        if threads <= 1 or len(arr) < 2 * threads:
            return self._find(arr, 0)
        step = -(-len(arr) // threads)
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(lambda lo: self._find(arr.slice(lo, step), lo), range(0, len(arr), step))
            return [m for part in parts for m in part]

    def _find(self, arr: pa.Array, offset: int) -> list[Match]:
        words = split_words(arr)
        hashes, starts = ngram_hashes(words.ids(self.vocab), words.row, self.n)
        if not len(hashes) or not len(self.hashes):
            return []
        maybe = np.flatnonzero(self._maybe[hashes >> np.uint64(64 - _FILTER_BITS)])
        pos = np.minimum(np.searchsorted(self.hashes, hashes[maybe]), len(self.hashes) - 1)
        equal = self.hashes[pos] == hashes[maybe]
        hit, pos = maybe[equal], pos[equal]
        rows, first = np.unique(words.row[starts[hit]], return_index=True)
        found = []
        for row, j in zip(rows.tolist(), first.tolist()):
            k, at = hit[j], pos[j]
            found.append(Match(offset + row, self.names[self.bench[at]], int(self.item[at]),
                               words.text(int(starts[k]), self.n)))
        return found
