"""The keys finephrase puts into a document's metadata on its way from the reader to the writer: this module owns
them all (use them as `meta.POSITION`, never as literals). None of them is ever written out as a column
(`PREFIX`): the writer turns them into the row (finephrase/store/schema.py).

Source documents (the reader, the selection):
    POSITION       where the input stands after the document: {file_index, offset, line, read}; `read` counts
                   the task's documents from 1 (the ledger's chunk ranges are in it)
    FRACTION       the share of the task's input consumed
    FILTERED       the reason a selection step refused it (its id is listed under DIR/filtered/)
    REJECTED       also on an unreadable source record: the reason (a reject for every prompt)

Generations (Rephrase: one document per source document and prompt):
    PROMPT         the prompt's name (its presence makes a document a generation)
    TEMPLATE       the PromptTemplate (the gate reads its [check])
    SOURCE_TEXT    the source text the model was given (cut to the context)
    BASE           the row's provenance columns: source_id, prompt, prompt_hash, passthrough columns
    FIELDS         model, finish_reason, token counts, input_truncated, reasoning, attempt (1..n)
    ATTEMPTS       the reject reasons of the attempts before this one (regeneration; empty on attempt 1)
    RAW            the raw generation (a reject row keeps it)
    REJECTED       the reason it was refused (by the server, the parser, the gate or any filter after Rephrase)
    REJECT_DETAIL  more about the refusal (the server's message)

Chunks (Rephrase forms them, the writer commits them):
    CHUNK          the chunk a document belongs to
    CHUNK_END      on a chunk's last document: what the chunk is (range, position, counts)
"""

from __future__ import annotations

PREFIX = "_fp_"
POSITION = "_fp_pos"
FRACTION = "_fp_frac"
FILTERED = "_fp_filtered"
REJECTED = "_fp_reject"
REJECT_DETAIL = "_fp_reject_detail"
PROMPT = "_fp_prompt"
TEMPLATE = "_fp_template"
SOURCE_TEXT = "_fp_source_text"
BASE = "_fp_base"
FIELDS = "_fp_fields"
RAW = "_fp_raw"
ATTEMPTS = "_fp_attempts"
CHUNK = "_fp_chunk"
CHUNK_END = "_fp_chunk_end"


def read_count(doc) -> int:
    """The document's number in the task's reading order (from 1)."""
    return doc.metadata[POSITION]["read"]


def is_generation(doc) -> bool:
    return PROMPT in doc.metadata


def is_marked(doc) -> bool:
    """Refused already: filtered (a source document) or rejected."""
    return FILTERED in doc.metadata or REJECTED in doc.metadata


def mark(doc, reason: str) -> None:
    """Mark a refused document: a reject if it is a generation, else filtered."""
    doc.metadata[REJECTED if is_generation(doc) else FILTERED] = reason


def with_attempts(doc, attempt: int, earlier_reasons: list[str]):
    """`doc`, the generation of attempt number `attempt`, after attempts refused for `earlier_reasons`."""
    doc.metadata[FIELDS]["attempt"] = attempt
    doc.metadata[ATTEMPTS] = list(earlier_reasons)
    return doc


def attempt_reasons(doc) -> list[str]:
    """Every attempt's reject reason, the last one's included (a reject row lists them)."""
    return [*doc.metadata.get(ATTEMPTS, []), doc.metadata[REJECTED]]


def no_retries() -> dict:
    """A chunk's regeneration count before any (CHUNK_END["retries"]): discarded attempts per prompt, and the
    prompt, cached and generated tokens they took."""
    return {"attempts": {}, "input_tokens": 0, "cached_tokens": 0, "output_tokens": 0}


def without_own_keys(metadata: dict) -> dict:
    """The metadata without finephrase's keys (what an exclusion writer or a passthrough column may see)."""
    return {k: v for k, v in metadata.items() if not k.startswith(PREFIX)}
