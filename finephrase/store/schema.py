"""Explicit pyarrow schemas of what a run writes: every file of a folder has the same schema, so the Hub and
`datasets` load the folder as one table."""

from __future__ import annotations

import math

import orjson
import pyarrow as pa

from finephrase.store.metadata import PREFIX as OWN_KEYS

# FineWeb-Edu's columns, passed through with fixed types; any other source column goes, as JSON, into `metadata`.
PASSTHROUGH = [
    pa.field("url", pa.string()),
    pa.field("dump", pa.string()),
    pa.field("date", pa.string()),
    pa.field("file_path", pa.string()),
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float64()),
    pa.field("token_count", pa.int64()),
    pa.field("score", pa.float64()),
    pa.field("int_score", pa.int64()),
    pa.field("metadata", pa.string()),
]
_PASSTHROUGH_NAMES = {f.name for f in PASSTHROUGH} - {"metadata"}

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("prompt_hash", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),  # of input_tokens, served from the engine's prefix cache
        pa.field("output_tokens", pa.int64()),
        pa.field("input_truncated", pa.bool_()),
        pa.field("reasoning", pa.string()),
        pa.field("attempt", pa.int64()),  # the generation's attempt (1..n): regenerated after n - 1 rejects
        *PASSTHROUGH,
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("prompt_hash", pa.string()),
        pa.field("reject_reason", pa.string(), nullable=False),
        pa.field("reject_detail", pa.string()),
        pa.field("text", pa.string()),  # the generation, when there was one (to see why it was rejected)
        pa.field("model", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),  # of input_tokens, served from the engine's prefix cache
        pa.field("output_tokens", pa.int64()),
        pa.field("input_truncated", pa.bool_()),
        pa.field("attempt", pa.int64()),  # attempts made (the text and tokens are the last one's)
        pa.field("attempt_reasons", pa.list_(pa.string())),  # each attempt's reject reason, in order
        *PASSTHROUGH,
    ]
)

FILTERED_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("filter_reason", pa.string(), nullable=False),
    ]
)


def _coerce(value, typ: pa.DataType):
    if value is None:
        return None
    if pa.types.is_string(typ):
        return value if isinstance(value, str) else str(value)
    if pa.types.is_integer(typ):
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, float) and not value.is_integer():
            raise TypeError
        v = int(value)
        if not -(2**63) <= v < 2**63:
            raise OverflowError
        return v
    if pa.types.is_floating(typ):
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
        return None if math.isnan(v) else v
    raise TypeError


def passthrough(meta: dict) -> dict:
    """Source columns -> the fixed passthrough columns; anything else (or a value of the wrong type) into
    `metadata` as JSON, so nothing from the source is lost and every file keeps the same schema."""
    out = {}
    extra = {}
    for f in PASSTHROUGH[:-1]:
        if f.name in meta:
            try:
                out[f.name] = _coerce(meta[f.name], f.type)
            except (TypeError, ValueError, OverflowError):
                out[f.name] = None
                extra[f.name] = meta[f.name]
    for k, v in meta.items():
        if k not in _PASSTHROUGH_NAMES and not k.startswith(OWN_KEYS):
            extra[k] = v
    out["metadata"] = orjson.dumps(extra, default=str).decode() if extra else None
    return out
