"""The one owner of a model server while it is in use: `ServerHandle`.

Whoever uses a server (the run, the Rephrase step, the request loop) holds a handle instead of the server:
- `with ServerHandle(server) as h:` starts a managed server that is not running and stops it at the end; a server
  that was running already (started by the run for its tasks) or an external endpoint is left as it is;
- `h.base_url` is always the current address (the request client reads it for every request, so a restart never
  needs anyone to patch a client);
- `h.restart()` stops and starts a managed server that died, at most `max_restarts` times, and says whether it
  did.
"""

from __future__ import annotations

import subprocess

from finephrase.serving.base import Endpoint, ManagedServer

DEATH_SETTLE_S = 2.0  # a killed server's port closes before its process can be reaped: wait this long for it


class ServerHandle:
    def __init__(self, server: Endpoint, max_restarts: int = 0, log_path: str | None = None):
        self.server = server
        self.max_restarts = max_restarts
        self.restarts = 0
        self.started_here = False
        self.default_log_path = log_path  # where a managed server that has none logs

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def model(self) -> str | None:
        return self.server.model

    @property
    def managed(self) -> bool:
        return isinstance(self.server, ManagedServer)

    @property
    def log_path(self) -> str | None:
        return getattr(self.server, "log_path", None)

    def __enter__(self) -> ServerHandle:
        if self.managed and not self.server.alive():
            if self.server.log_path is None and self.default_log_path:
                self.server.log_path = self.default_log_path
            self.server.start()
            self.started_here = True
        return self

    def __exit__(self, *exc):
        if self.started_here:
            self.server.stop()
            self.started_here = False

    def can_restart(self, settle_s: float = DEATH_SETTLE_S) -> bool:
        """A managed server this process runs (its process handle is here), dead, with restarts left. A killed
        process refuses connections a moment before it can be reaped, so one that still looks alive is given
        `settle_s` to end (blocking: call it from a thread)."""
        if not (self.managed and self.server.proc is not None and self.restarts < self.max_restarts):
            return False
        try:
            self.server.proc.wait(timeout=settle_s)
        except subprocess.TimeoutExpired:
            return False  # alive: the failure was something else
        return True

    def restart(self) -> bool:
        """Stop what is left of a dead managed server and start it again (blocking); False if it cannot be."""
        if not self.can_restart(settle_s=0):
            return False
        self.restarts += 1
        self.server.stop()
        self.server.start()
        return True
