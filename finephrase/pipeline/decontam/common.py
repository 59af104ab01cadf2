"""What the decontamination steps share: the schema of a removed (or flagged) row, the reason it carries, and the
work folder's names."""

from __future__ import annotations

import pyarrow as pa

from finephrase.store.schema import OUTPUT_SCHEMA

WORK_DIR = ".decontam"  # OUT/.decontam: the index, the sources' overlaps, datatrove's logs and completion markers
INDEX_DIR = "index"
SOURCES_DIR = "sources"
REASON_PREFIX = "contaminated:"

# OUT/removed/<prompt>/ (or OUT/flagged/<prompt>/ for an audit): the row, which benchmark it overlaps and where
REMOVED_SCHEMA = pa.schema([
    *OUTPUT_SCHEMA,
    pa.field("decontam_reason", pa.string(), nullable=False),  # contaminated:<benchmark>
    pa.field("matched_ngram", pa.string()),  # the first benchmark n-gram found, normalized
    pa.field("benchmark_item", pa.int64()),  # the item's number in the benchmark's files (0-based, file order)
    pa.field("source_overlap", pa.bool_()),  # its source document had a benchmark n-gram too (null: not checked)
])
# OUT/.decontam/sources/RRRRR.parquet: source documents of the run that contain a benchmark n-gram
SOURCE_SCHEMA = pa.schema([pa.field("source_id", pa.string(), nullable=False),
                           pa.field("benchmark", pa.string(), nullable=False),
                           pa.field("benchmark_item", pa.int64()), pa.field("matched_ngram", pa.string())])


def reason(benchmark: str) -> str:
    return f"{REASON_PREFIX}{benchmark}"
