"""A zero-latency OpenAI-compatible server: the cost of the model taken out, so what remains is the client's.

    python benchmarks/zero_server.py --port 8000              # serve until Ctrl-C
    python benchmarks/zero_server.py --bench [--quick]        # measure its own ceiling with a raw client

Answers
- POST /v1/chat/completions (and /v1/completions) with one fixed short completion: `finish_reason` "stop",
  `usage` with fixed prompt/completion token counts (`--prompt-tokens`, `--completion-tokens`);
- GET /v1/models with one model (`--model`, default "zero");
- anything else with 404 (so finephrase finds no tokenize endpoint and truncates by bytes).

Built for speed on a small machine: a raw asyncio Protocol (no HTTP library), HTTP/1.1 keep-alive with
pipelining, every response precomputed as bytes, the request body skipped without parsing it (its JSON is never
decoded). `--processes N` runs N copies on one port with SO_REUSEPORT (the kernel spreads connections). It
honours `Connection: close` (datatrove's localhost client opens one connection per request) and HTTP/1.0.

`--vary` (benchmarks/scale.py) makes every chat completion depend on its request, still without decoding the
JSON: the prompt is recognised by its instructions (faq, math, table, tutorial; others get the FAQ shape), a
hash of the document's words picks one of a few pre-built templates of that prompt's shape, and the document's
own words fill its slots. So distinct documents get distinct answers that pass the quality gate (in shape, on
topic, not copied), and duplicate documents get duplicate answers that dedup removes. It is a stand-in, not a
model: what it serves the scale rehearsal is finephrase's own costs at volume. Without `--vary` the behaviour
is unchanged (one precomputed answer, bodies skipped unread).

As a module, `benchmarks/_common.py:ZeroServer` starts it in a subprocess and waits until it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import zlib

DEFAULT_TEXT = (
    "Question: What is the main topic of this document?\n"
    "Answer: It explains one idea from the source text with a short worked example.\n"
    "Question: Who is the document written for?\n"
    "Answer: Readers who want a quick, practical overview before reading the details."
)


def no_delay(transport) -> None:
    """TCP_NODELAY on a connection: small answers go out at once, not after Nagle's delay."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def parse_request_head(head: bytes) -> tuple[list[bytes], bytes, int]:
    """(the request line split on spaces, the head lowercased, Content-Length: 0 when absent, -1 unreadable)."""
    first = head.split(b"\r\n", 1)[0].split(b" ")
    lower = head.lower()
    length = 0
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        j = lower.find(b"\r\n", i + 2)
        try:
            length = int(lower[i + 17: j if j >= 0 else len(lower)])
        except ValueError:
            length = -1
    return first, lower, length


def build_responses(model: str, text: str, prompt_tokens: int, completion_tokens: int) -> dict[str, bytes]:
    def http(status: str, body: dict, keep_alive: bool) -> bytes:
        raw = json.dumps(body, separators=(",", ":")).encode()
        conn = b"keep-alive" if keep_alive else b"close"
        return (b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(raw)).encode() + b"\r\nConnection: " + conn + b"\r\n\r\n" + raw)

    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    chat = {"id": "chatcmpl-zero", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage}
    completion = {"id": "cmpl-zero", "object": "text_completion", "created": 0, "model": model,
                  "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage}
    models = {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "zero"}]}
    missing = {"error": {"message": "not found", "type": "not_found", "code": 404}}
    bad = {"error": {"message": "bad request", "type": "invalid_request_error", "code": 400}}
    out = {}
    for keep in (True, False):
        k = "" if keep else "/close"
        out["chat" + k] = http("200 OK", chat, keep)
        out["completion" + k] = http("200 OK", completion, keep)
        out["models" + k] = http("200 OK", models, keep)
        out["404" + k] = http("404 Not Found", missing, keep)
        out["400" + k] = http("400 Bad Request", bad, keep)
    return out


class ZeroProtocol(asyncio.Protocol):
    """One connection: parse request heads, skip bodies, answer from the precomputed table."""

    __slots__ = ("responses", "transport", "buf", "want", "pending_close", "pending_key", "served")

    routes: dict[tuple[bytes, bytes], str] = {
        (b"POST", b"/v1/chat/completions"): "chat",
        (b"POST", b"/v1/completions"): "completion",
        (b"GET", b"/v1/models"): "models",
    }
    stats = {"requests": 0}

    def __init__(self, responses: dict[str, bytes]):
        self.responses = responses
        self.transport = None
        self.buf = bytearray()
        self.want = 0  # body bytes still to skip for the request being read
        self.pending_key = None

    def connection_made(self, transport):
        self.transport = transport
        no_delay(transport)

    def data_received(self, data: bytes):
        out = []
        close = False
        if self.want:  # the rest of a body: usually the common case for multi-segment requests
            if len(data) < self.want:
                self.want -= len(data)
                return
            data = data[self.want:]
            self.want = 0
            out.append(self.responses[self.pending_key])
            close = self.pending_key.endswith("/close")
            self.pending_key = None
        buf = self.buf
        if data:
            buf += data
        while buf and not close:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    close = True
                    out.append(self.responses["400/close"])
                break
            head = bytes(buf[:end])
            first, lower, length = parse_request_head(head)
            if len(first) != 3 or length < 0 or b"transfer-encoding: chunked" in lower:
                out.append(self.responses["400/close"])
                close = True
                break
            method, path, version = first
            key = self.routes.get((method, path.split(b"?", 1)[0]), "404")
            if b"connection: close" in lower or (version == b"HTTP/1.0" and b"connection: keep-alive" not in lower):
                key += "/close"
            ZeroProtocol.stats["requests"] += 1
            body_end = end + 4 + length
            if len(buf) < body_end:  # body not all here: skip the rest as it arrives
                self.want = body_end - len(buf)
                self.pending_key = key
                buf.clear()
                break
            del buf[:body_end]
            out.append(self.responses[key])
            if key.endswith("/close"):
                close = True
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()


# -- --vary: an answer per request ---------------------------------------------------------------------------------

# Pre-built answers of each prompt's shape: {0}..{12} are words of the document (12: its last one), {a} {b} {s}
# numbers from the hash. Fixed runs between slots stay under 5 words, so two documents share few 5-word shingles.
VARY_TEMPLATES = {
    "faq": [
        "Question: What is the {0} of the {1}?\nAnswer: The {0} of the {1} is {2} and {3}, as with {4}.\n\n"
        "Question: How does {5} work with {6}?\nAnswer: It uses {7} to {8} the {9}, then {10}.\n\n"
        "Question: Why is {11} part of it?\nAnswer: Because {11} and {12} go with {0} in each case.",
        "Question: Where does {1} come from?\nAnswer: From {0} and {2}, which {3} the {4}.\n\n"
        "Question: When is {5} used?\nAnswer: When {6} or {7} need {8} for {9}.\n\n"
        "Question: Which {10} is linked to {11}?\nAnswer: The {12} one, next to {1}.",
        "Question: Who needs {0} and {1}?\nAnswer: Anyone with {2} or {3} who has {4}.\n\n"
        "Question: What does {5} add to {6}?\nAnswer: It adds {7} and {8} to the {9}.\n\n"
        "Question: Is {10} the same as {11}?\nAnswer: No, {10} is {12} while {11} is not.",
    ],
    "math": [
        "A {0} of {7} has {a} {1} and gets {b} more {2} from the {3} near {8}. How many {1} and {2} does the {0} "
        "have now?\n\nSolution:\nStart with the {1} of the {0} and {9}: {a}.\n"
        "Add the {2} from the {3} of {10}: {a} + {b} = {s}.\nFinal answer: {s} {1} and {2} ({11}, {12})",
        "Each {4} of {0} holds {a} {5}, and there are {b} of them next to the {6} and {1}. How many {5} are there "
        "in all?\n\nSolution:\nThere are {b} {4} by the {6} of {2}.\nEach {4} with {3} holds {a} {5}, so {a} * {b} "
        "= {p}.\nFinal answer: {p} {5} ({7}, {11}, {12})",
    ],
    "table": [
        "{0} and {1} in brief\n\n| {2} | {3} |\n|---|---|\n| {4} | {5} |\n| {6} | {7} |\n| {8} | {9} |\n\n"
        "Question: Which {3} goes with {4}?\nAnswer: The {5}, with {12}.",
        "{10} compared with {11}\n\n| {0} | {1} | {2} |\n|---|---|---|\n| {3} | {4} | {5} |\n| {6} | {7} | {8} |\n\n"
        "Question: What is next to {3} in the {0} column?\nAnswer: {4}, and then {12}.",
    ],
    "tutorial": [
        "How to use {0} with {1}\nThis guide shows how {2} and {3} fit with {4}.\n\n"
        "1. Set up the {5} and check the {6}.\n2. Add {7} to the {8} and keep the {9}.\n"
        "3. Run the {10} with {11} until it is done.\n4. Look at {12} and the {0} at the end.",
        "Getting started with {0}\nYou will learn to bring {1} and {2} into {3}.\n\n"
        "1. Find the {4} that has {5}.\n2. Put the {6} next to the {7} and {8}.\n"
        "3. Test the {9} on {10} and {11}.\n4. Finish with {12} for the {0}.",
    ],
}
# the instructions that tell the prompts apart (the last one in the body wins: they follow the document)
VARY_MARKERS = ((b"as a FAQ", "faq"), (b"math word problem", "math"), (b"markdown table", "table"),
                (b"tutorial", "tutorial"))
VARY_SLOTS = 13
# bytes -> lowercase letters, everything else a space (a JSON-escaped "\\n" is blanked before)
_VARY_LETTERS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))
_VARY_STOP = frozenset(b"""this that with from have your which will their more also when there these what about
into than them they were been some would could should other only each such over most very just then here does both
many much made used using well like even because where after before while being between through under again those
same make must shall upon once""".split())


class Varier:
    """--vary: one chat completion per request body, built from the body's bytes (never JSON-decoded)."""

    def __init__(self, model: str, prompt_tokens: int, completion_tokens: int):
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        head = json.dumps({"id": "chatcmpl-zero", "object": "chat.completion", "created": 0, "model": model,
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]},
                          separators=(",", ":"))
        # '..."content":' + the answer + '},"finish_reason":"stop"}],"usage":{...}}'
        self.prefix = head[: head.rindex('""')].encode()
        self.suffix = b'},"finish_reason":"stop"}],"usage":' + json.dumps(usage, separators=(",", ":")).encode() + b"}"

    @staticmethod
    def text(body: bytes) -> str:
        """The answer to one request: the prompt's shape, filled with the document's words."""
        where = [(body.rfind(m), kind) for m, kind in VARY_MARKERS]
        pos, kind = max(where)
        start = body.find(b"below.\\n\\n")
        start = start + 10 if 0 <= start < pos else 0
        end = body.rfind(b"\\n\\n", start, pos) if pos > 0 else len(body)
        end = end if end > start else len(body)
        head = body[start:min(end, start + 2000)].replace(b"\\n", b"  ").translate(_VARY_LETTERS).split()
        distinct = dict.fromkeys(w for w in head if 4 <= len(w) <= 14 and w not in _VARY_STOP)
        picks = sorted(distinct, key=len, reverse=True)[:VARY_SLOTS - 1]  # the longest: the rarest, most topical
        tail = [w for w in body[max(start, end - 300):end].replace(b"\\n", b"  ").translate(_VARY_LETTERS).split()
                if 4 <= len(w) <= 14]
        picks = picks or [b"topic"]
        picks = (picks * (VARY_SLOTS // len(picks) + 1))[:VARY_SLOTS - 1] + [tail[-1] if tail else picks[-1]]
        key = zlib.crc32(b" ".join(picks[:-1]))  # not the last word: a near copy (a sentence added) keeps it
        turn = key % (VARY_SLOTS - 1)  # common long words land in different slots in different documents
        picks = picks[turn:-1] + picks[:turn] + picks[-1:]
        options = VARY_TEMPLATES[kind]
        a, b = 2 + key % 37, 3 + (key >> 8) % 41
        return options[(key >> 16) % len(options)].format(*(w.decode() for w in picks), a=a, b=b, s=a + b, p=a * b)

    def response(self, body: bytes, close: bool) -> bytes:
        raw = self.prefix + json.dumps(self.text(body)).encode() + self.suffix
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(raw)).encode()
                + (b"\r\nConnection: close\r\n\r\n" if close else b"\r\nConnection: keep-alive\r\n\r\n") + raw)


class VaryProtocol(ZeroProtocol):
    """ZeroProtocol that reads each request's body: chat completions come from `varier`, the rest as before."""

    __slots__ = ("varier",)

    def __init__(self, responses: dict[str, bytes], varier: Varier):
        super().__init__(responses)
        self.varier = varier

    def data_received(self, data: bytes):
        out = []
        close = False
        buf = self.buf
        buf += data
        while buf and not close:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    close = True
                    out.append(self.responses["400/close"])
                break
            first, lower, length = parse_request_head(bytes(buf[:end]))
            if len(first) != 3 or length < 0 or b"transfer-encoding: chunked" in lower:
                out.append(self.responses["400/close"])
                close = True
                break
            body_end = end + 4 + length
            if len(buf) < body_end:  # wait for the whole body
                break
            method, path, version = first
            key = self.routes.get((method, path.split(b"?", 1)[0]), "404")
            close = b"connection: close" in lower or (version == b"HTTP/1.0" and b"connection: keep-alive" not in lower)
            ZeroProtocol.stats["requests"] += 1
            if key == "chat":
                out.append(self.varier.response(bytes(buf[end + 4:body_end]), close))
            else:
                out.append(self.responses[key + "/close" if close else key])
            del buf[:body_end]
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()


def _listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(4096)
    s.setblocking(False)
    return s


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: faster if installed

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def serve(sock: socket.socket, responses: dict[str, bytes], varier: Varier | None = None):
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    factory = (lambda: VaryProtocol(responses, varier)) if varier else (lambda: ZeroProtocol(responses))
    server = loop.run_until_complete(loop.create_server(factory, sock=sock, backlog=4096))
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


def run_server(host: str, port: int, processes: int, responses: dict[str, bytes], varier: Varier | None = None):
    sock = _listening_socket(host, port, reuse_port=processes > 1)
    port = sock.getsockname()[1]
    children = []
    for _ in range(processes - 1):
        s = _listening_socket(host, port, reuse_port=True)
        pid = os.fork()
        if pid == 0:
            sock.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                serve(s, responses, varier)
            finally:
                os._exit(0)
        s.close()
        children.append(pid)
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        serve(sock, responses, varier)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


# -- the raw client: the server's own ceiling --------------------------------------------------------------------


class _RawClient(asyncio.Protocol):
    """Keep-alive client on one connection: send, read one full response (by Content-Length), send again."""

    def __init__(self, request: bytes, state: dict, done: asyncio.Future):
        self.request, self.state, self.done = request, state, done
        self.buf = bytearray()
        self.need = None

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send()

    def _send(self):
        if self.state["sent"] >= self.state["total"]:
            self.transport.close()
            return
        self.state["sent"] += 1
        self.transport.write(self.request)

    def data_received(self, data):
        buf = self.buf
        buf += data
        while True:
            if self.need is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                i = buf.find(b"Content-Length: ")
                j = buf.find(b"\r\n", i)
                if buf[9:12] != b"200":
                    self.state["errors"] += 1
                self.need = end + 4 + int(buf[i + 16: j])
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = None
            self.state["received"] += 1
            if self.state["received"] >= self.state["total"] and not self.done.done():
                self.done.set_result(time.perf_counter())
            self._send()

    def connection_lost(self, exc):
        if exc is not None and not self.done.done():
            self.done.set_exception(exc)


def raw_request(url_host: str, port: int, body: bytes) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + f"{url_host}:{port}".encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def raw_client_run(host: str, port: int, body: bytes, total: int, concurrency: int) -> dict:
    """Send `total` identical requests over `concurrency` keep-alive connections; requests/s and errors."""
    loop = asyncio.get_running_loop()
    state = {"sent": 0, "received": 0, "total": total, "errors": 0}
    done = loop.create_future()
    req = raw_request(host, port, body)
    t0 = time.perf_counter()
    transports = []
    for _ in range(min(concurrency, total)):
        tr, _ = await loop.create_connection(lambda: _RawClient(req, state, done), host, port)
        transports.append(tr)
    t1 = await asyncio.wait_for(done, timeout=600)
    for tr in transports:
        tr.close()
    return {"requests": state["received"], "seconds": t1 - t0, "requests_per_s": state["received"] / (t1 - t0),
            "errors": state["errors"]}


def _bench_body() -> bytes:
    """A realistic request: the faq prompt around a ~5 KB sample document, as finephrase would send it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import sample_texts

    from finephrase.prompts.library import load_prompts

    doc = max(sample_texts(5000), key=lambda r: len(r["text"]))["text"]
    messages = load_prompts("faq")[0].render(doc)
    return json.dumps({"model": "zero", "messages": messages, "max_tokens": 2048}).encode()


def bench(argv: list[str]):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import (
        ZeroServer,
        base_parser,
        fmt,
        machine,
        machine_line,
        median,
        resolve_repeats,
        table,
        write_results,
    )

    p = base_parser("zero_server", "The zero-latency server's own ceiling, measured with a raw asyncio client "
                    "(keep-alive, precomputed request bytes) in another process.")
    p.add_argument("--bench", action="store_true")
    p.add_argument("--requests", type=int, default=None, help="requests per measurement (200k, quick 20k)")
    p.add_argument("--concurrency", default="64,256", help="client connections, comma separated (64,256)")
    p.add_argument("--processes", default="1,2", help="server processes to try, comma separated (1,2)")
    args = p.parse_args(argv)
    resolve_repeats(args)
    total = args.requests or (20_000 if args.quick else 200_000)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    processes = [int(c) for c in args.processes.split(",")]
    if args.quick:
        concurrencies, processes = concurrencies[:1], processes[:1]
    body = _bench_body()
    print(machine_line(machine()))
    print(f"raw client: {total:,} POST /v1/chat/completions of {len(body):,} bytes each, keep-alive")
    rows, results = [], []
    for procs in processes:
        with ZeroServer(processes=procs) as server:
            host, port = server.url.removeprefix("http://").split(":")
            for conc in concurrencies:
                runs = []
                for _ in range(args.repeats):
                    cpu0 = server.cpu_seconds()
                    r = asyncio.run(raw_client_run(host, int(port), body, total, conc))
                    r["server_cpu_s"] = server.cpu_seconds() - cpu0
                    runs.append(r)
                rps = median([r["requests_per_s"] for r in runs])
                cpu_us = median([1e6 * r["server_cpu_s"] / r["requests"] for r in runs])
                errors = sum(r["errors"] for r in runs)
                results.append({"server_processes": procs, "concurrency": conc, "requests": total,
                                "requests_per_s": rps, "server_cpu_us_per_request": cpu_us, "errors": errors,
                                "runs": runs})
                rows.append([procs, conc, fmt(rps), fmt(cpu_us, 1), errors])
    print(table(["server processes", "connections", "requests/s (median)", "server CPU µs/request", "errors"],
                rows))
    best = max(results, key=lambda r: r["requests_per_s"])
    print(f"ceiling: {best['requests_per_s']:,.0f} requests/s (server processes {best['server_processes']}, "
          f"{best['concurrency']} connections; one client process, {os.cpu_count()} cores shared)")
    write_results("zero_server", args, {
        "request_bytes": len(body),
        "results": results,
        "ceiling_requests_per_s": best["requests_per_s"],
        "ceiling_config": {"server_processes": best["server_processes"], "concurrency": best["concurrency"]},
    })


def main(argv: list[str] | None = None):
    argv = sys.argv[1:] if argv is None else argv
    if "--bench" in argv or "--quick" in argv:  # --quick only exists for the measurement
        return bench(argv)
    import argparse

    p = argparse.ArgumentParser(prog="benchmarks/zero_server.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="port (0: a free one; the first line printed says which)")
    p.add_argument("--processes", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--model", default="zero", help="the model name /v1/models lists (default: zero)")
    p.add_argument("--text", default=DEFAULT_TEXT, help="the completion every request gets")
    p.add_argument("--prompt-tokens", type=int, default=1000, help="usage.prompt_tokens reported (1000)")
    p.add_argument("--completion-tokens", type=int, default=40, help="usage.completion_tokens reported (40)")
    p.add_argument("--vary", action="store_true",
                   help="answer each chat completion from its request: the prompt's shape (faq, math, table, "
                   "tutorial) filled with the document's words (for benchmarks/scale.py; --text is then unused)")
    p.add_argument("--bench", action="store_true",
                   help="measure the server's ceiling instead: --bench [--quick] [--repeats N] [--json PATH] "
                   "(see --bench --help)")
    args = p.parse_args(argv)
    responses = build_responses(args.model, args.text, args.prompt_tokens, args.completion_tokens)
    varier = Varier(args.model, args.prompt_tokens, args.completion_tokens) if args.vary else None
    run_server(args.host, args.port, max(1, args.processes), responses, varier)


if __name__ == "__main__":
    main()
