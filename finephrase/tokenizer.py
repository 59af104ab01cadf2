"""Counting tokens with the served model's own tokenizer.

Remote servers are asked (`ChatClient.count_tokens`: vLLM `/tokenize`, llama-cpp-python `/extras/tokenize/count`).
The embedded llama.cpp server handles one request at a time, so a tokenize call there waits behind whole
generations; for it the same GGUF's vocabulary is loaded in-process instead (`vocab_only`: no weights, ~0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

_INLINE_CHARS = 20_000  # longer texts are tokenized in a worker thread, off the request loop


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp prints a context-size warning from C while loading a vocabulary: keep it off the console."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class GGUFTokenizer:
    def __init__(self, gguf: str | Path):
        self.gguf = str(gguf)
        self._llm = None

    def _load(self):
        if self._llm is None:
            from llama_cpp import Llama

            with _quiet_stderr():
                self._llm = Llama(model_path=self.gguf, vocab_only=True, verbose=False)
        return self._llm

    def count_sync(self, text: str) -> int:
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def count(self, text: str) -> int:
        if len(text) <= _INLINE_CHARS:
            return self.count_sync(text)
        return await asyncio.to_thread(self.count_sync, text)
