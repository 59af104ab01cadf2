"""The engine's own count of the tokens it has generated, read while requests are still running.

A request's tokens are known to the client only when it finishes, so a task whose requests take minutes would
show 0 tok/s in between. The engines count as they go:
- llama.cpp's server: `/metrics` (`llamacpp:tokens_predicted_total`, finished requests; needs its metrics
  endpoint, which the embedded engine turns on) plus `/slots` (`n_decoded` of each slot still generating);
- vLLM: `/metrics` (`vllm:generation_tokens_total`, counted at every engine step).
Both count the whole engine: where tasks share one server (`--workers`), every task reads the engine's rate.
Any other server, or one that refuses these endpoints, reads None, and progress falls back to finished requests.
"""

from __future__ import annotations

import orjson


def metric_sum(text: str, name: str) -> float | None:
    """The sum of a Prometheus metric's samples (all label sets) in `text`, None if it has none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            try:
                total += float(line.rsplit(None, 1)[-1])
                seen = True
            except ValueError:
                continue
    return total if seen else None


def decoding_now(slots_body: bytes) -> int | None:
    """Tokens generated so far by llama.cpp's slots that are still at work (its `/slots` answer: `next_token` is
    one object per slot, or a list of them in recent versions)."""
    try:
        total = 0
        for slot in orjson.loads(slots_body):
            if slot.get("is_processing"):
                nxt = slot.get("next_token") or {}
                for item in nxt if isinstance(nxt, list) else [nxt]:
                    total += int(item.get("n_decoded") or 0)
        return total
    except (orjson.JSONDecodeError, TypeError, AttributeError, ValueError):
        return None


class EngineCounter:
    """`await read()`: the engine's generated tokens so far (a running total), or None where it cannot say.

    An engine that refuses the endpoints (an answer other than 200), or that is neither llama.cpp nor vLLM, is not
    asked again. One that is slow to answer (llama.cpp answers between two steps of its loop, so a long prefill
    holds the answer back) or briefly gone (a restart) is asked again at the next read."""

    def __init__(self, client):
        self.client = client
        self.refused = False

    async def read(self) -> int | None:
        if self.refused:
            return None
        # which engine: known when Rephrase counted tokens with the server's tokenizer; asked once otherwise (the
        # embedded engine counts with the GGUF in-process, so nobody asked its server before)
        style = self.client.tokenize_style or await self.client.detect_tokenizer()
        if style == "vllm":
            metrics = (await self._body("/metrics")).decode("utf-8", "replace")
            value = metric_sum(metrics, "vllm:generation_tokens_total")
        elif style == "llamacpp":
            metrics = (await self._body("/metrics")).decode("utf-8", "replace")
            finished = metric_sum(metrics, "llamacpp:tokens_predicted_total")
            running = decoding_now(await self._body("/slots")) if finished is not None else None
            value = None if finished is None or running is None else finished + running
        else:
            self.refused = True
            value = None
        return None if value is None else int(value)

    async def _body(self, path: str) -> bytes:
        """The answer to GET `path`, b"" when there is none."""
        status, body = await self.client.peek(path)
        if status is not None and status != 200:
            self.refused = True  # the engine has no such endpoint (llama.cpp without --metrics, a proxy)
        return body if status == 200 else b""
