"""Async client for OpenAI-compatible `/v1/chat/completions` servers (llama.cpp, vLLM, anything else).

Failure policy (what becomes what):
- the last try cannot reach the server (refused, reset, died)          -> `ServerUnavailable`: the task stops
  without committing the open chunk; a rerun resumes it. A dead server never turns into thousands of rejects.
- 400 that says the context is exceeded                               -> `RequestRejected("context_overflow")`
- timeouts, 429 and 5xx, after `max_retries` retries with backoff     -> `RequestRejected("timeout" | "http_<code>")`
- other 4xx                                                           -> `RequestRejected("http_<code>")`
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from dataclasses import dataclass, field

import aiohttp
import orjson

from finephrase.errors import ServerError


class RequestRejected(Exception):
    """A document-level failure: becomes a reject row with `reason`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ServerUnavailable(ServerError):
    """The server is gone: stop the task (committed chunks are safe), fix the server, rerun."""


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; None means "the server's default" (vLLM: the model's generation config). Checked when
    made (the CLI's flags and a pipeline file's Sampling(...) alike): a bad value is one line, before anything
    starts."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    max_tokens: int = 2048

    def __post_init__(self):
        from finephrase.errors import UsageError

        if self.temperature is not None and self.temperature < 0:
            raise UsageError(f"--temperature {self.temperature}: must be 0 or more")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p {self.top_p}: must be above 0 and at most 1")
        if self.top_k is not None and self.top_k < 0:
            raise UsageError(f"--top-k {self.top_k}: must be 0 or more")
        if self.max_tokens < 1:
            raise UsageError(f"--max-tokens {self.max_tokens}: must be at least 1")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("temperature", "top_p", "top_k", "seed", "max_tokens")}


@dataclass
class ChatResult:
    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    raw: dict = field(default_factory=dict, repr=False)
    cached_tokens: int | None = None  # prompt tokens the engine served from its prefix cache (if it says)


_CONTEXT_WORDS = ("context length", "context_length", "maximum context", "max_model_len", "too long",
                  "exceed", "n_ctx", "context window")


def _proxy_for(url: str) -> str | None:
    """The proxy the environment sets for `url` (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY minus NO_PROXY), None if none."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def api_key_from(env_var: str | None) -> str | None:
    """The API key held by the environment variable `env_var` (None when unnamed, unset or empty): read where a
    request is made, never stored in settings, manifests or logs."""
    return os.environ.get(env_var) or None if env_var else None


def request_seed(seed: int | None, source_id: str, prompt: str) -> int | None:
    """A per-request seed that does not depend on scheduling order."""
    if seed is None:
        return None
    h = hashlib.blake2b(f"{seed}\x00{source_id}\x00{prompt}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


class ChatClient:
    """`base_url`: the server's address, or something with a `base_url` that may change (a ServerHandle: a
    restarted server is then asked at its new address without anyone telling the client)."""

    def __init__(self, base_url, model: str, timeout: float = 600.0, max_retries: int = 3,
                 backoff: float = 1.0, max_connections: int = 64, api_key: str | None = None,
                 chat_template_kwargs: dict | None = None):
        self._address = base_url
        self.model = model
        self.timeout = timeout
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_connections = max_connections
        self.api_key = api_key
        self.chat_template_kwargs = chat_template_kwargs  # sent with every chat request when set (vLLM reads it)
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        # "llamacpp" | "vllm" | "llama-cpp-python" | "none", found by detect_tokenizer()
        self.tokenize_style: str | None = None

    @property
    def base_url(self) -> str:
        address = self._address if isinstance(self._address, str) else self._address.base_url
        return address.rstrip("/")

    async def __aenter__(self):
        # aiohttp, not httpx: at a few thousand requests/s httpx's connection pool (httpcore + anyio) cost ~4 ms of
        # CPU per request here, 20x aiohttp (benchmarks/overhead.py, docs/benchmarks.md).
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=10.0),
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, keepalive_timeout=30.0),
            trust_env=False,  # aiohttp would then read ~/.netrc and the proxy variables on every request
        )
        self._proxy = _proxy_for(self.base_url)  # HTTP(S)_PROXY / NO_PROXY, as curl and httpx honour them, once
        return self

    async def __aexit__(self, *exc):
        await self._session.close()

    async def _sleep_backoff(self, attempt: int):
        await asyncio.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))

    async def _post(self, path: str, payload: dict) -> dict:
        last_reason, last_detail = "error", ""
        body_bytes = orjson.dumps(payload)
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            if attempt:
                await self._sleep_backoff(attempt - 1)
            try:
                async with self._session.post(url, data=body_bytes, proxy=self._proxy) as r:
                    status = r.status
                    raw = await r.read()
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as e:
                last_reason, last_detail = "timeout", f"no answer within {self.timeout:.0f}s ({type(e).__name__})"
                continue
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                # refused, reset, closed mid-answer: the server is (maybe) gone
                last_reason, last_detail = "unreachable", f"{type(e).__name__}: {e}"
                continue
            if status == 200:
                try:
                    return orjson.loads(raw)
                except orjson.JSONDecodeError:
                    last_reason, last_detail = "bad_response", raw[:200].decode("utf-8", "replace")
                    continue
            body = raw[:500].decode("utf-8", "replace")
            if status == 400 and any(w in body.lower() for w in _CONTEXT_WORDS):
                raise RequestRejected("context_overflow", body[:200])
            if status == 429 or status >= 500:
                last_reason, last_detail = f"http_{status}", body[:200]
                continue
            raise RequestRejected(f"http_{status}", body[:200])
        if last_reason == "unreachable":  # the last try could not even connect: the server is gone
            raise ServerUnavailable(f"model server {self.base_url} unreachable after {self.max_retries + 1} tries "
                                    f"({last_detail})")
        raise RequestRejected(last_reason, last_detail)

    async def peek(self, path: str, timeout: float = 10.0) -> tuple[int | None, bytes]:
        """GET `path` once (an engine's counters): (HTTP status, body), or (None, b"") when no answer came in time
        or the connection failed."""
        try:
            async with self._session.get(f"{self.base_url}{path}", proxy=self._proxy,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return r.status, await r.read()
        except (asyncio.TimeoutError, aiohttp.ClientError):
            return None, b""

    async def chat(self, messages: list[dict], sampling: Sampling, seed: int | None = None,
                   extra: dict | None = None) -> ChatResult:
        """One chat completion. `extra`: more request fields (a grammar: finephrase/quality/constrain.py)."""
        payload = {"model": self.model, "messages": messages, "max_tokens": sampling.max_tokens, **(extra or {})}
        for k in ("temperature", "top_p", "top_k"):
            if (v := getattr(sampling, k)) is not None:
                payload[k] = v
        if seed is not None:
            payload["seed"] = seed
        if self.chat_template_kwargs:
            payload["chat_template_kwargs"] = self.chat_template_kwargs
        data = await self._post("/v1/chat/completions", payload)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "unknown"
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RequestRejected("bad_response", str(data)[:200]) from None
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return ChatResult(text, finish, usage.get("prompt_tokens"), usage.get("completion_tokens"), data,
                          cached if isinstance(cached, int) else None)

    # -- tokenizer of the served model ------------------------------------------------------------------------

    async def detect_tokenizer(self) -> str:
        """Find which tokenize endpoint the server has: llama.cpp's server `/tokenize` (`content`), vLLM's
        `/tokenize` (`prompt`), or llama-cpp-python's `/extras/tokenize/count`. llama.cpp is asked first: vLLM
        answers its request with a quick 400, while llama.cpp fails vLLM's with a 500 that would be retried."""
        for style in ("llamacpp", "vllm", "llama-cpp-python"):
            self.tokenize_style = style
            try:
                n = await self.count_tokens("hello world")
                if isinstance(n, int) and n > 0:
                    return style
            except (RequestRejected, ServerError, KeyError, TypeError, ValueError):
                pass
        self.tokenize_style = "none"
        return "none"

    async def count_tokens(self, text: str) -> int | None:
        """Token count of `text` with the served model's own tokenizer (no special tokens), None if unknown."""
        if self.tokenize_style == "llamacpp":
            data = await self._post("/tokenize", {"content": text, "add_special": False, "parse_special": False})
            return len(data["tokens"])
        if self.tokenize_style == "vllm":
            data = await self._post("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
            return int(data["count"]) if "count" in data else len(data["tokens"])
        if self.tokenize_style == "llama-cpp-python":
            data = await self._post("/extras/tokenize/count", {"input": text, "model": self.model})
            return int(data["count"])
        return None
