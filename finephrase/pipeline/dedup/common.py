"""What the dedup steps share: the normalization of exact dedup, the word splitter of MinHash, the schemas of
removed rows, and the conversion between a run's rows and datatrove Documents.

(No `from __future__ import annotations` here: datatrove reads `exact_text`'s return annotation as a type.)
"""

import hashlib

import pyarrow as pa
from datatrove.data import Document
from datatrove.utils.word_tokenizers import WordTokenizer

from finephrase.store.schema import OUTPUT_SCHEMA

REASONS = ("exact", "near")  # the values of `dedup_reason`, in the order the stages remove rows
ROW_COLUMNS = [f.name for f in OUTPUT_SCHEMA]
_OTHER_COLUMNS = [c for c in ROW_COLUMNS if c not in ("id", "text")]

# OUTPUT/removed/<prompt>/*.parquet: the row, why it went, and the id of the row it duplicates
REMOVED_SCHEMA = pa.schema([*OUTPUT_SCHEMA, pa.field("dedup_reason", pa.string(), nullable=False),
                            pa.field("duplicate_of", pa.string())])
# OUTPUT/.dedup/<unit>/removed/<reason>/<prompt>/*.parquet: the same, with the key that finds `duplicate_of`
STAGED_REMOVED_SCHEMA = pa.schema([*OUTPUT_SCHEMA, pa.field("dedup_reason", pa.string(), nullable=False),
                                   pa.field("dup_key", pa.string())])
# OUTPUT/.dedup/<unit>/kept/<reason>/*.parquet: kept rows that have duplicates, by key
KEPT_INDEX_SCHEMA = pa.schema([pa.field("dup_key", pa.string(), nullable=False),
                               pa.field("id", pa.string(), nullable=False),
                               pa.field("prompt", pa.string(), nullable=False)])


def normalize(text: str) -> str:
    """Exact-dedup normalization: case folded, runs of whitespace as one space, no leading/trailing space."""
    return " ".join(text.casefold().split())


def exact_text(doc: Document) -> bytes:
    """`content_getter` of datatrove's ExactDedupConfig: the normalized text, UTF-8 (datatrove hashes it; bytes
    because xxhash >= 4 refuses str)."""
    return normalize(doc.text).encode()


def exact_key(text: str) -> str:
    """Key of an exact duplicate group (our own hash of the normalized text, to find `duplicate_of`)."""
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()


def near_key(doc: Document) -> str | None:
    """Key of a near-duplicate cluster: MinhashDedupFilter's `minhash_cluster_id` (-1: in no cluster)."""
    cluster = doc.metadata.get("minhash_cluster_id", -1)
    return None if cluster is None or cluster < 0 else str(cluster)


class SplitWords(WordTokenizer):
    """Word splitter for MinhashDedupSignature: datatrove simplifies the text first (lower case, no punctuation,
    single spaces), so splitting on spaces is enough, and it needs neither spaCy nor NLTK."""

    def __init__(self):
        super().__init__("split")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in text.splitlines() if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for line in text.splitlines(keepends=True):
            if line.strip():
                spans.append((start, start + len(line.rstrip("\n"))))
            start += len(line)
        return spans


def doc_from_row(self, data: dict, path: str, id_in_file) -> dict:
    """Reader adapter: `text` and `id` as they are, every other column into `metadata` untouched."""
    return {"text": data.pop("text"), "id": data.pop("id"), "metadata": data}


def row_from_doc(doc: Document) -> dict:
    """A Document read by `doc_from_row` back into an OUTPUT_SCHEMA row (extra metadata from steps dropped)."""
    meta = doc.metadata
    return {"id": doc.id, "text": doc.text, **{c: meta.get(c) for c in _OTHER_COLUMNS}}
