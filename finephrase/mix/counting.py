"""Token counts: the named tokenizer (built-in GGUF, a .gguf, a tokenizer.json or a Hub id) and counting each
record of a part once."""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Callable

import numpy as np

from finephrase.errors import UsageError
from finephrase.mix.config import DEFAULT_TOKENIZER
from finephrase.mix.sources import Part


class TokenCounter:
    """Counts tokens of texts (no BOS/EOS, special tokens not parsed) with a named tokenizer."""

    def __init__(self, name: str, kind: str, location: str, count_batch: Callable[[list[str]], list[int]]):
        self.name, self.kind, self.location = name, kind, location
        self.count_batch = count_batch

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "location": self.location}


def _gguf_counter(name: str, gguf: str, workers: int) -> TokenCounter:
    """A GGUF's tokenizer (read from the file, no llama.cpp). With workers > 1 a batch is split over the cores
    by tokenizers' own thread pool (the GIL released; RAYON_NUM_THREADS sets its size, else one per CPU); with
    workers == 1 the texts are counted one after the other in the calling thread."""
    from finephrase.tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(gguf)
    try:
        tok._load()
    except Exception as e:  # noqa: BLE001 - a missing, broken or unsupported GGUF: one line
        why = str(e).splitlines()[0] if str(e) else ""
        raise UsageError(f"tokenizer {name}: cannot load {gguf}: {type(e).__name__}: {why}") from None

    def one_by_one(texts: list[str]) -> list[int]:
        return [tok.count_sync(t) for t in texts]

    return TokenCounter(name, "gguf", gguf, tok.count_batch if workers > 1 else one_by_one)


def _hf_counter(name: str, spec: str, from_file: bool) -> TokenCounter:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UsageError(f"tokenizer {name} needs the `tokenizers` package (pip install tokenizers); the built-in "
                         f"{DEFAULT_TOKENIZER} needs nothing") from None
    try:
        tok = Tokenizer.from_file(spec) if from_file else Tokenizer.from_pretrained(spec)
    except Exception as e:  # noqa: BLE001 - not found, no network, bad file: one line
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"tokenizer {name} cannot be loaded: {why}") from None
    tok.no_truncation()
    tok.no_padding()

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]

    return TokenCounter(name, "tokenizers", spec, count)


def load_tokenizer(name: str = DEFAULT_TOKENIZER, workers: int = 1) -> TokenCounter:
    """`smollm2-135m` (built in: the packaged SmolLM2 GGUF, no download; the SmolLM2 models share this
    tokenizer), a .gguf file, a tokenizer.json file or a folder holding one, or a Hugging Face tokenizer id."""
    if name.lower() in (DEFAULT_TOKENIZER, "smollm2"):
        from finephrase.serving import packaged_gguf_path

        try:
            gguf = str(packaged_gguf_path())
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"tokenizer {name}: {e}") from None
        return _gguf_counter(DEFAULT_TOKENIZER, gguf, workers)
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UsageError(f"tokenizer {name}: GGUF file does not exist")
        return _gguf_counter(name, str(path), workers)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise UsageError(f"tokenizer {name}: folder has no tokenizer.json")
        return _hf_counter(name, str(path / "tokenizer.json"), True)
    if path.is_file():
        return _hf_counter(name, str(path), True)
    if name.startswith((".", "/", "~")) or name.endswith(".json"):
        raise UsageError(f"tokenizer {name} does not exist")
    return _hf_counter(name, name, False)


COUNT_BATCH = 1024


def count_part(part: Part, counter: TokenCounter):
    tokens = array("q")  # 8 bytes a row, not a Python int each
    chars = array("q")
    pending: list[tuple[int, str]] = []

    def flush():
        for (i, _), n in zip(pending, counter.count_batch([t for _, t in pending])):
            tokens[i] = n
        pending.clear()

    for doc in part.documents():
        reason = doc.metadata.get("_fp_reject")
        tokens.append(-1)
        chars.append(len(doc.text))
        if reason:
            part.bad[reason] += 1
            continue
        pending.append((len(tokens) - 1, doc.text))
        if len(pending) >= COUNT_BATCH:
            flush()
    flush()
    part.tokens = np.frombuffer(tokens, dtype=np.int64) if len(tokens) else np.zeros(0, dtype=np.int64)
    part.chars = np.frombuffer(chars, dtype=np.int64) if len(chars) else np.zeros(0, dtype=np.int64)
    if len(tokens) and part.bad.get("missing_text", 0) == len(tokens):
        raise UsageError(f"{part.label}: no column '{part.text_column}' in its records"
                         + (" (pass --text-column)" if part.label.startswith("source:") else ""))
