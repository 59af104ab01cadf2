"""Model serving: an embedded llama.cpp server, a vLLM server, or an external OpenAI-compatible endpoint.

Every backend ends up as a base URL that the request client talks to; managed backends own a child process
that is started on a free loopback port, waited for, and stopped when the run ends (also on Ctrl-C/errors).
"""

from finephrase.serving.base import Endpoint, ManagedServer, find_free_port, wait_until_ready
from finephrase.serving.llamacpp import LlamaCppServer, packaged_gguf_path
from finephrase.serving.vllm import VllmServer

__all__ = [
    "Endpoint",
    "ManagedServer",
    "LlamaCppServer",
    "VllmServer",
    "find_free_port",
    "packaged_gguf_path",
    "wait_until_ready",
]
