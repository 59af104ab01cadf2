"""A long-tail latency stand-in for an OpenAI-compatible server. It is NOT a model: every completion is the same
fixed text (zero_server.py's), and answers only after a latency drawn from a seeded RNG, the way a busy engine's
answers spread out (most quick, a few stragglers).

    python benchmarks/tail_server.py --port 8000 --timeline /tmp/timeline.jsonl    # serve until Ctrl-C
    python benchmarks/tail_server.py --tail-share 0 --low 2 --high 5                   # uniform latency, no tail

Answers
- POST /v1/chat/completions (and /v1/completions) after a latency: with probability `--tail-share` (0.02)
  `--tail-seconds` (40), else uniform in `--low`..`--high` (2..5 s); the draws come from `random.Random(--seed)`
  in the order the requests arrive. The latency is a timer (`loop.call_later`), not a sleep: thousands of
  requests wait at once at no CPU cost. On a connection, responses go out in the order its requests came
  (a quick answer behind a slow one on the same connection waits for it; finephrase's client sends one request
  at a time per connection, so this never happens there);
- GET /v1/models at once, with one model (`--model`, default "tail");
- anything else with 404 at once (so finephrase finds no tokenize endpoint and truncates by bytes).

The timeline: every `--interval` seconds (1) it appends one JSON line to `--timeline PATH`, flushed at once, and
one last line when it stops (SIGTERM/SIGINT):

    {"t": 1764000000.12, "in_flight": 2048, "received": 51234, "answered": 49186, "abandoned": 0,
     "latency_sum": 179321.4, "latency_max": 40.0, "tails": 1021, "first": 1763999990.5,
     "last_received": 1764000000.1, "last": 1764000000.1}

`t` is the wall clock (`time.time()`, comparable across processes); `in_flight` the completions received (their
request read in full) and not yet answered; `received`/`answered` count completions since the start;
`abandoned` those whose connection closed before their answer; `latency_sum` and `latency_max` are over every
latency drawn so far (so `latency_sum / concurrency` is Little's law's ideal wall time); `tails` the draws that
were stragglers; `first` and `last_received` the times the first and the latest completion arrived, `last` the
time of the latest answer (null before). GET /v1/models and 404s are not counted.

The HTTP side is zero_server.py's (its precomputed responses, listening socket and event loop are imported, not
copied): HTTP/1.1 keep-alive, `Connection: close` and HTTP/1.0 honoured, bodies not parsed. One process.
`benchmarks/_common.py:TailServer` starts it in a subprocess (the first line printed is
`listening on http://127.0.0.1:PORT`) and waits until it answers; benchmarks/occupancy.py uses it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zero_server import DEFAULT_TEXT, _listening_socket, _new_loop, build_responses, no_delay, parse_request_head  # noqa: E402

MAX_HEAD = 65536


class State:
    """What all connections share: the latency draws, the counters and the timeline file."""

    def __init__(self, responses: dict[str, bytes], tail_share: float, tail_seconds: float, low: float,
                 high: float, seed: int):
        self.responses = responses
        self.tail_share, self.tail_seconds, self.low, self.high = tail_share, tail_seconds, low, high
        self.rng = random.Random(seed)
        self.in_flight = self.received = self.answered = self.abandoned = self.tails = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.first: float | None = None
        self.last_received: float | None = None
        self.last: float | None = None

    def draw(self) -> float:
        if self.tail_share > 0 and self.rng.random() < self.tail_share:
            self.tails += 1
            latency = self.tail_seconds
        else:
            latency = self.rng.uniform(self.low, self.high)
        self.latency_sum += latency
        self.latency_max = max(self.latency_max, latency)
        return latency

    def snapshot(self) -> dict:
        return {"t": round(time.time(), 3), "in_flight": self.in_flight, "received": self.received,
                "answered": self.answered, "abandoned": self.abandoned, "latency_sum": round(self.latency_sum, 3),
                "latency_max": self.latency_max, "tails": self.tails, "first": self.first,
                "last_received": self.last_received, "last": self.last}


class _Slot:
    """One request's place in its connection's response order: `data` is None until its answer is due."""

    __slots__ = ("data", "close", "handle")

    def __init__(self, data: bytes | None, close: bool):
        self.data, self.close, self.handle = data, close, None


class TailProtocol(asyncio.Protocol):
    """One connection: parse request heads, skip bodies, answer completions when their drawn latency is up."""

    routes: dict[tuple[bytes, bytes], str] = {
        (b"POST", b"/v1/chat/completions"): "chat",
        (b"POST", b"/v1/completions"): "completion",
        (b"GET", b"/v1/models"): "models",
    }
    delayed = ("chat", "completion")

    def __init__(self, state: State):
        self.state = state
        self.transport = None
        self.buf = bytearray()
        self.queue: deque[_Slot] = deque()  # responses not yet written, in request order
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        no_delay(transport)

    def data_received(self, data: bytes):
        if self.closing:
            return
        buf = self.buf
        buf += data
        responses = self.state.responses
        while buf:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._bad()
                break
            head = bytes(buf[:end])
            first, lower, length = parse_request_head(head)
            if len(first) != 3 or length < 0 or b"transfer-encoding: chunked" in lower:
                self._bad()
                break
            body_end = end + 4 + length
            if len(buf) < body_end:  # the body is not all here yet
                break
            del buf[:body_end]
            method, path, version = first
            key = self.routes.get((method, path.split(b"?", 1)[0]), "404")
            close = b"connection: close" in lower or (version == b"HTTP/1.0" and b"connection: keep-alive" not in lower)
            data_key = key + ("/close" if close else "")
            if key in self.delayed:
                self._delay(responses[data_key], close)
            else:
                self.queue.append(_Slot(responses[data_key], close))
            if close:
                self.closing = True  # nothing after a Connection: close request is read
                break
        self._flush()

    def _bad(self):
        self.queue.append(_Slot(self.state.responses["400/close"], True))
        self.closing = True

    def _delay(self, data: bytes, close: bool):
        st = self.state
        now = time.time()
        if st.first is None:
            st.first = now
        st.last_received = now
        st.received += 1
        st.in_flight += 1
        slot = _Slot(None, close)
        slot.handle = asyncio.get_running_loop().call_later(st.draw(), self._due, slot, data)
        self.queue.append(slot)

    def _due(self, slot: _Slot, data: bytes):
        st = self.state
        st.in_flight -= 1
        st.answered += 1
        st.last = time.time()
        slot.data, slot.handle = data, None
        self._flush()

    def _flush(self):
        out = []
        q = self.queue
        close = False
        while q and q[0].data is not None:
            slot = q.popleft()
            out.append(slot.data)
            if slot.close:
                close = True
                break
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()

    def connection_lost(self, exc):
        st = self.state
        for slot in self.queue:
            if slot.handle is not None:
                slot.handle.cancel()
                st.in_flight -= 1
                st.abandoned += 1
        self.queue.clear()
        self.transport = None


def _raise_fd_limit():
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ImportError, ValueError, OSError):
        pass


def run_server(host: str, port: int, state: State, timeline: str | None, interval: float):
    _raise_fd_limit()
    sock = _listening_socket(host, port, reuse_port=False)
    port = sock.getsockname()[1]
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    out = open(timeline, "a", buffering=1) if timeline else None

    def write():
        if out is not None:
            out.write(json.dumps(state.snapshot()) + "\n")
            out.flush()

    start = loop.time()
    ticks = {"n": 0}

    def tick():  # on a fixed schedule (no drift)
        write()
        ticks["n"] += 1
        loop.call_at(start + (ticks["n"] + 1) * interval, tick)

    server = loop.run_until_complete(loop.create_server(lambda: TailProtocol(state), sock=sock, backlog=4096))
    print(f"listening on http://{host}:{port}", flush=True)
    loop.call_at(start + interval, tick)
    try:
        loop.run_forever()
    finally:
        write()  # the last counts, whenever it stops
        if out is not None:
            out.close()
        server.close()
        loop.close()


def main(argv: list[str] | None = None):
    import argparse

    p = argparse.ArgumentParser(prog="benchmarks/tail_server.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port (0: a free one; the first line printed says which)")
    p.add_argument("--model", default="tail", help="the model name /v1/models lists (default: tail)")
    p.add_argument("--text", default=DEFAULT_TEXT, help="the completion every request gets (zero_server.py's)")
    p.add_argument("--prompt-tokens", type=int, default=1000, help="usage.prompt_tokens reported (1000)")
    p.add_argument("--completion-tokens", type=int, default=40, help="usage.completion_tokens reported (40)")
    p.add_argument("--tail-share", type=float, default=0.02, help="share of completions that are stragglers (0.02)")
    p.add_argument("--tail-seconds", type=float, default=40.0, help="a straggler's latency in seconds (40)")
    p.add_argument("--low", type=float, default=2.0, help="the other completions: latency at least (2 s)")
    p.add_argument("--high", type=float, default=5.0, help="... and at most (5 s), uniform in between")
    p.add_argument("--seed", type=int, default=0, help="seed of the latency draws (0)")
    p.add_argument("--timeline", default=None, help="append the in-flight samples here as JSON lines (default: none)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between timeline samples (1)")
    args = p.parse_args(argv)
    if not 0 <= args.tail_share <= 1 or args.low < 0 or args.high < args.low or args.tail_seconds < 0:
        p.error("need 0 <= --tail-share <= 1, 0 <= --low <= --high and --tail-seconds >= 0")
    if args.interval <= 0:
        p.error("--interval must be > 0")
    responses = build_responses(args.model, args.text, args.prompt_tokens, args.completion_tokens)
    state = State(responses, args.tail_share, args.tail_seconds, args.low, args.high, args.seed)
    run_server(args.host, args.port, state, args.timeline, args.interval)


if __name__ == "__main__":
    main()
