"""A child-process model server on a free loopback port, and the plain external endpoint."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import httpx

from finephrase.errors import ServerError


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def log_tail(path: str | Path | None, lines: int = 15) -> str:
    if not path or not Path(path).exists():
        return ""
    with open(path, "r", errors="replace") as f:
        return "".join(deque(f, maxlen=lines)).rstrip()


def wait_until_ready(base_url: str, timeout: float, proc: subprocess.Popen | None = None, log: str | None = None):
    """Poll `GET /v1/models` until it answers 200; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_tail(log)
            raise ServerError(
                f"model server exited with code {proc.returncode} before it was ready"
                + (f"; last lines of {log}:\n{tail}" if tail else "")
            )
        try:
            r = httpx.get(f"{base_url}/v1/models", timeout=2.0)
            if r.status_code == 200:
                return
            last_error = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            last_error = type(e).__name__
        time.sleep(0.2)
    tail = log_tail(log)
    raise ServerError(
        f"model server at {base_url} not ready after {timeout:.0f}s ({last_error})"
        + (f"; last lines of {log}:\n{tail}" if tail else "")
    )


class Endpoint:
    """An external OpenAI-compatible server: nothing to start or stop."""

    backend = "endpoint"

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None):
        self.base_url = url.rstrip("/").removesuffix("/v1/chat/completions").removesuffix("/v1")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __getstate__(self):  # never pickle (or log) a secret
        return {k: v for k, v in self.__dict__.items() if k != "_headers"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._headers = {}

    def start(self, ready_timeout: float = 30.0):
        try:
            r = httpx.get(f"{self.base_url}/v1/models", timeout=min(ready_timeout, 10.0), headers=self._headers)
        except httpx.HTTPError as e:
            raise ServerError(
                f"endpoint {self.base_url} is unreachable ({type(e).__name__}): check --endpoint-url and that the "
                f"server is running"
            ) from None
        if r.status_code != 200:
            raise ServerError(f"endpoint {self.base_url}/v1/models answered HTTP {r.status_code}")
        if self.model is None:
            try:
                self.model = r.json()["data"][0]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise ServerError(f"endpoint {self.base_url} lists no model: pass --model") from None
        return self

    def stop(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ManagedServer(Endpoint):
    """Base for servers we launch: subclasses build the command line."""

    backend = "managed"
    ready_timeout = 120.0

    def __init__(self, model: str, log_path: str | Path | None = None, port: int | None = None,
                 env: dict | None = None):
        self.port = port
        self.log_path = str(log_path) if log_path else None
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        super().__init__(url="http://127.0.0.1:0", model=model)

    @property
    def served_model_name(self) -> str:
        return self.model

    def __deepcopy__(self, memo):  # a running process is a resource, not a value: copies share it
        return self

    def command(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, ready_timeout: float | None = None):
        self.port = self.port or find_free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cmd = self.command()
        if self.log_path:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C goes to us; we stop the server ourselves
            )
        except FileNotFoundError:
            raise ServerError(f"cannot start model server: {cmd[0]} not found") from None
        finally:
            if self.log_path:
                log.close()
        try:
            wait_until_ready(self.base_url, ready_timeout or self.ready_timeout, self.proc, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
