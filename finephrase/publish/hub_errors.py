"""The Hub's answers as one line (scrubbed of secrets), which of them are worth a retry, and `Publisher.call`,
the retry loop around each step of an upload."""

from __future__ import annotations

import sys
import time

from finephrase import card
from finephrase.errors import UsageError

TRANSIENT = {408, 429, 500, 502, 503, 504}


def _one_line(e: BaseException, secrets: list[str]) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError):
        status = e.response.status_code if getattr(e, "response", None) is not None else "?"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        server = (e.server_message or "").strip().replace("\n", " ")
        msg = f"the Hub answered HTTP {status}: {first}" + (f" ({server[:200]})" if server and server not in first
                                                            else "")
    else:
        text = " ".join(str(e).split())
        msg = f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__
    return card.scrub(msg, secrets)


def _status(e: BaseException) -> int | None:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None:
        return e.response.status_code
    return None


def _is_transient(e: BaseException) -> bool:
    status = _status(e)
    if status is not None:
        return status in TRANSIENT
    try:
        import httpx2

        if isinstance(e, httpx2.TransportError):
            return True
    except ImportError:
        pass
    try:
        import httpx

        if isinstance(e, httpx.TransportError):
            return True
    except ImportError:
        pass
    return isinstance(e, (ConnectionError, TimeoutError))


def _retry_after(e: BaseException) -> float | None:
    try:
        v = e.response.headers.get("Retry-After")  # type: ignore[attr-defined]
        return float(v) if v is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


class Publisher:
    def __init__(self, retries: int, secrets: list[str]):
        self.retries = retries
        self.secrets = secrets

    def call(self, what: str, fn, retries: int | None = None, base_wait: float = 10.0):
        """fn(), again after a transient failure (429, 5xx, connection): every step is idempotent (exist_ok, files
        already there are skipped), so a retry resumes. `retries`: default --retries (the upload steps, which
        huggingface_hub already retries inside); single requests that it does not retry get their own."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return fn()
            except UsageError:
                raise
            except Exception as e:
                if not _is_transient(e) or attempt == retries:
                    raise
                wait = _retry_after(e)
                wait = min(wait + 1, 600) if wait is not None else min(base_wait * 2 ** attempt, 120)
                print(f"publish: {what} failed ({_one_line(e, self.secrets)}); retrying in {wait:.0f}s "
                      f"({attempt + 1}/{retries}); what is committed stays", file=sys.stderr, flush=True)
                time.sleep(wait)
