"""A child-process model server on a free loopback port, and the plain external endpoint."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import httpx

from finephrase.errors import ServerError
from finephrase.process.children import die_with_parent


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():  # runs in the child between fork and exec: SIGTERM (the server stops) when we exit
    die_with_parent(signal.SIGTERM)


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
        try:
            served = [m["id"] for m in r.json()["data"]]
        except (ValueError, KeyError, IndexError, TypeError):
            served = []
        if self.model is None:
            if not served:
                raise ServerError(f"endpoint {self.base_url} lists no model: pass --model")
            self.model = served[0]
        elif served and self.model not in served:  # llama.cpp would answer any name: the rows would lie
            raise ServerError(f"endpoint {self.base_url} serves {', '.join(served[:5])}, not '{self.model}': pass "
                              f"--model {served[0]}, or leave --model out to use what it serves")
        return self

    def check_install(self):
        """Before a run touches anything: what this server needs is installed and accepts its flags (a
        UsageError, one line, if not). Nothing to check for an endpoint; VllmServer checks its flags."""

    def stop(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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
        """Stop the server and what is left of its process group. Engines run children (vLLM: EngineCore,
        Worker) in the server's group; when the server itself dies (killed, OOM) they live on, holding the memory
        (GPU memory too) a restarted server needs, so the whole group is ended: SIGTERM, SIGKILL after `grace`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # started in a new session: its pid is the group's id
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _end_group(proc.pid, grace)
