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
    """`await read()`: the engine's generated tokens so far (a running total), or None where it cannot say."""

    GIVE_UP_AFTER = 5  # failed reads in a row: this engine has no such counter (a restart fails a read or two)

    def __init__(self, client):
        self.client = client
        self.failures = 0

    async def read(self) -> int | None:
        if self.failures >= self.GIVE_UP_AFTER:
            return None
        style = self.client.tokenize_style
        if style == "vllm":
            body = await self.client.peek("/metrics")
            value = metric_sum(body.decode("utf-8", "replace"), "vllm:generation_tokens_total") if body else None
        elif style == "llamacpp":
            value = await self._llamacpp()
        else:
            value = None
        self.failures = 0 if value is not None else (self.GIVE_UP_AFTER if style not in ("vllm", "llamacpp")
                                                       else self.failures + 1)
        return None if value is None else int(value)

    async def _llamacpp(self) -> float | None:
        metrics = await self.client.peek("/metrics")
        finished = metric_sum(metrics.decode("utf-8", "replace"), "llamacpp:tokens_predicted_total") \
            if metrics else None
        slots = await self.client.peek("/slots")
        running = decoding_now(slots) if slots else None
        if finished is None or running is None:
            return None
        return finished + running
