"""Checks that run before anything is spent: before the output folder is touched and before a model server
starts (on a GPU cluster every failed start is a model load per task). Each failure is one line naming the
file, flag or column and what to do (a UsageError: exit 2).

- settings in range: `check_settings(cfg)` (RunConfig.for_backend calls it, so pipeline definitions get it too;
  the rephrasing step's own settings check themselves: pipeline/inference/settings.py);
- the room left for the document: `check_document_room(cfg)` (from check_settings): some, and at least a quarter
  of the context unless --allow-short-documents;
- the inputs: `check_inputs(files, text_column, where, id_column)` (`finephrase.run.run` calls it for every
  pipeline): the first file opens and has the text column (and the id column when one was given explicitly), every
  `--where` column exists and its literal fits the column's type, and the input is not empty (parquet: from the
  footers).

`finephrase.run.run` also starts nothing when the run (or this `--rank`'s task) in the output folder has already
finished with the same settings.
"""

from __future__ import annotations

import gzip

import orjson

from finephrase.errors import UsageError


def check_settings(cfg) -> None:
    if cfg.limit == 0 or cfg.limit < -1:  # (the sampling settings check themselves: serving/client.Sampling)
        raise UsageError(f"--limit {cfg.limit}: give at least 1 document per task (or leave it out for all)")
    if cfg.min_chars is not None and cfg.min_chars < 0 or cfg.max_chars is not None and cfg.max_chars < 0:
        raise UsageError("--min-chars / --max-chars must be 0 or more")
    if cfg.min_chars is not None and cfg.max_chars is not None and cfg.min_chars > cfg.max_chars:
        raise UsageError(f"--min-chars {cfg.min_chars} is above --max-chars {cfg.max_chars}: no document could pass")
    if cfg.sample_rate is not None and not 0 < cfg.sample_rate <= 1:
        raise UsageError(f"--sample-rate {cfg.sample_rate}: must be above 0 and at most 1")
    if cfg.token_budget is not None and cfg.token_budget <= 0:
        raise UsageError(f"--token-budget {cfg.token_budget}: must be at least 1 token")
    if not 0 < cfg.gpu_memory_utilization <= 1:
        raise UsageError(f"--gpu-memory-utilization {cfg.gpu_memory_utilization}: must be above 0 and at most 1")
    if cfg.engine_args:
        check_engine_args(cfg)
    check_document_room(cfg)


# Below this share of the context left for the document, a run is refused unless --allow-short-documents: the
# documents would be cut to a few lines (e.g. --max-tokens 1900 in a context of 2048) without anyone noticing.
MIN_DOCUMENT_SHARE = 0.25


def check_document_room(cfg) -> None:
    """The room left for the document (context - max tokens - template - chat-template margin): refused when there
    is none, and below a quarter of the context unless `cfg.allow_short_documents`."""
    from finephrase.pipeline.inference.rephrase import CHAT_TEMPLATE_MARGIN

    max_tokens, context = cfg.sampling.max_tokens, cfg.context_length
    # the template's own tokens, estimated at one per 4 characters (the rephrase step counts them exactly with the
    # model's tokenizer and refuses a prompt that leaves no room; this catches it before anything starts)
    template = max((len(p.overhead_text()) // 4 for p in cfg.prompts), default=0)
    room = context - max_tokens - CHAT_TEMPLATE_MARGIN - template
    if room <= 0:
        raise UsageError(f"--max-tokens {max_tokens} leaves no room for the document in a context of "
                         f"{context} tokens (the template takes about {template}): lower --max-tokens "
                         f"or raise --context-length")
    floor = int(context * MIN_DOCUMENT_SHARE)
    if room < floor and not getattr(cfg, "allow_short_documents", False):
        raise UsageError(f"--max-tokens {max_tokens} leaves about {room} tokens for the document in a context of "
                         f"{context} (the template takes about {template}), under a quarter of it ({floor}): most "
                         f"documents would be cut to a few lines; lower --max-tokens, raise --context-length, or "
                         f"pass --allow-short-documents")


def check_engine_args(cfg) -> None:
    """--engine-arg NAME=VALUE: only for the embedded engine, and each a llama.cpp parameter of the right type
    (tried on a blank parameter set: nothing is loaded)."""
    if cfg.backend != "embedded":
        raise UsageError(f"--engine-arg sets the embedded llama.cpp server's parameters; the {cfg.backend} backend "
                         f"does not use it" + (" (use --vllm-arg)" if cfg.backend == "vllm" else ""))
    try:
        import xllamacpp
    except ImportError:
        return  # the server start says what to install
    from finephrase.serving.llamacpp_process import apply_engine_args

    try:
        apply_engine_args(xllamacpp.CommonParams(), cfg.engine_args)
    except ValueError as e:
        raise UsageError(str(e)) from None


# -- inputs -----------------------------------------------------------------------------------------------------


JSONL_RECORDS = 100  # records of a jsonl file looked at (records differ; a bad one is a reject, not an error)


def _schema(f) -> tuple[dict[str, str], int | None]:
    """({column: type name}, rows or None if unknown) of one input file: a parquet file's footer, or the union
    of the keys of a jsonl file's first records ({} when none of them could be read: the reader rejects them one
    by one)."""
    import pyarrow.parquet as pq
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(f.url)
    if f.kind != "parquet":
        columns, seen = {}, 0
        try:
            with fs.open(path, "rb") as fh:
                raw = gzip.GzipFile(fileobj=fh) if f.kind == "jsonl.gz" else fh
                for line in raw:
                    if not line.strip():
                        continue
                    seen += 1
                    try:
                        rec = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        rec = None
                    if isinstance(rec, dict):
                        columns.update({k: type(v).__name__ for k, v in rec.items() if k not in columns})
                    if seen >= JSONL_RECORDS:
                        break
        except (OSError, EOFError):
            pass
        return columns, (0 if seen == 0 else None)
    try:
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            return {fld.name: str(fld.type) for fld in pf.schema_arrow}, pf.metadata.num_rows
    except Exception as e:  # corrupt, truncated, not parquet at all
        detail = " ".join(str(e).split())[:160] or type(e).__name__
        raise UsageError(f"input {f.url} cannot be read as parquet ({detail}): fix or remove the file") from None


_NUMERIC = ("int", "uint", "float", "double", "decimal", "bool")


def _check_where(condition: str, columns: dict[str, str], first: str) -> None:
    from finephrase.pipeline.filters.select import _COND, _literal

    m = _COND.match(condition)
    if not m:
        return  # `where()` refuses it with its own message
    column, raw = m.group(1), m.group(3)
    if column not in columns:
        raise UsageError(f"--where '{condition}': {first} has no column '{column}' (columns: "
                         f"{', '.join(columns)}): every document would be filtered")
    kind = columns[column].lower()
    if kind.startswith(_NUMERIC) and isinstance(_literal(raw), str):
        raise UsageError(f"--where '{condition}': '{raw}' is not a number, and column '{column}' is {kind}")


def check_inputs(files, text_column: str = "text", where: list[str] = (), id_column: str | None = None) -> None:
    """The first file opens and has the columns the run needs (`text_column`, `id_column` when it was given
    explicitly, the columns of the `where` conditions); the input is not empty (when that is cheap to know: parquet
    footers, or a single jsonl file)."""
    first = files[0]
    columns, rows = _schema(first)
    if columns and text_column not in columns:
        raise UsageError(f"input {first.relpath} has no column '{text_column}' (columns: "
                         f"{', '.join(columns)}): pass --text-column")
    if columns and id_column is not None and id_column not in columns:
        raise UsageError(f"input {first.relpath} has no column '{id_column}' (columns: {', '.join(columns)}): fix "
                         f"--id-column, or leave it out for the 'id' column or positional ids (FILE:ROW)")
    for condition in where:
        _check_where(condition, columns, first.relpath)
    if all(f.kind == "parquet" for f in files) and len(files) <= 1000:
        if (rows or 0) + sum(_schema(f)[1] or 0 for f in files[1:]) == 0:  # every footer: a corrupt one says so
            raise UsageError(f"the input holds no documents ({len(files)} file(s), 0 rows): check INPUT")
    elif len(files) == 1 and rows == 0:
        raise UsageError(f"input {first.relpath} holds no documents: check INPUT")
