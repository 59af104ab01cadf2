"""Token counts: the named tokenizer (built-in GGUF, a .gguf, a tokenizer.json or a Hub id) and counting each
record of a part once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from finephrase.errors import UsageError
from finephrase.mix.config import DEFAULT_TOKENIZER
from finephrase.mix.sources import Unit
from finephrase.store import metadata as meta


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
    from finephrase.serving.tokenizer import GGUFTokenizer

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
SPILL_DTYPE = np.int32  # per row: (tokens, -1 = not usable; characters), 8 bytes a row, on disk only
_MAX32 = 2**31 - 1


def count_unit(unit: Unit, counter: TokenCounter, spill: Path) -> dict:
    """Count one file's records into `spill` (written to a temporary name, then renamed: the file is complete
    when it exists); returns its totals: rows, usable rows, tokens, characters and skipped rows by reason."""
    bad: Counter = Counter()
    totals = {"rows": 0, "usable": 0, "tokens": 0, "chars": 0}
    pending: list[tuple[int, str | None]] = []
    tmp = spill.with_name(spill.name + ".tmp")

    def flush(fh):
        texts = [t for _, t in pending if t is not None]
        counts = iter(counter.count_batch(texts) if texts else [])
        toks = [next(counts) if t is not None else -1 for _, t in pending]
        chars = [n for n, _ in pending]
        totals["tokens"] += sum(k for k in toks if k > 0)
        totals["chars"] += sum(n for n, t in pending if t is not None)
        out = np.minimum(np.array([toks, chars], dtype=np.int64).T, _MAX32).astype(SPILL_DTYPE)
        fh.write(out.tobytes())
        pending.clear()

    with open(tmp, "wb") as fh:
        for doc in unit.documents():
            reason = doc.metadata.get(meta.REJECTED)
            totals["rows"] += 1
            if reason:
                bad[reason] += 1
            else:
                totals["usable"] += 1
            pending.append((len(doc.text), None if reason else doc.text))
            if len(pending) >= COUNT_BATCH:
                flush(fh)
        flush(fh)
    tmp.replace(spill)
    return {**totals, "bad": dict(sorted(bad.items()))}


def read_spill(spill: Path, chunk: int = 1 << 16):
    """(first row, array of shape (n, 2): tokens, characters) chunk by chunk: a file's counts in bounded memory."""
    with open(spill, "rb") as fh:
        start = 0
        while True:
            a = np.fromfile(fh, dtype=SPILL_DTYPE, count=2 * chunk)
            if not len(a):
                return
            yield start, a.reshape(-1, 2)
            start += len(a) // 2
