"""A stand-in OpenAI-compatible server for fault tests.

It is NOT a model: it exists to test our own code's behaviour under faults (context overflow, timeouts,
5xx, a server that dies mid-run) and our overhead. Everything that tests generation uses the real
SmolLM2-135M model through llama.cpp.

Behaviour is driven by markers in the document text:
  OVERFLOW -> 400 "maximum context length exceeded";   SLOW -> sleeps `slow_seconds` before answering;
  FLAKY    -> always 500;                              RETRY -> 500 on the first try, then a normal answer;
  JUNK     -> always a loop cut at max tokens;         JUNKONCE -> that loop first, then a normal answer
                                                       (regeneration: the gate rejects the loop as `length`).
Otherwise it answers, in the shape the prompt asks for (FAQ, table, math, steps, else prose), a text made
from the document's first words, so the quality gate passes it and the tests see our code's accounting.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def shaped_answer(content: str) -> str:
    """A well-formed answer to the prompt `content`, made of its document's words (not a model)."""
    parts = content.split("\n\n")  # "Read the document below." / the document / the instructions
    doc = " ".join(parts[1:-1] if len(parts) >= 3 else parts).split()
    w = [x.strip("()[]{}|`*#") for x in doc]
    w = [x for x in w if x] or ["text"]

    def phrase(a: int, b: int) -> str:
        return " ".join(w[a:b] or w[: b - a])

    ask = content.lower()
    if "as a faq" in ask or "questions" in ask:
        return (f"Question: What does it say about {phrase(0, 3)}?\nAnswer: It says {phrase(3, 12)}.\n\n"
                f"Question: What else does it cover?\nAnswer: It covers {phrase(12, 20)} as well.")
    if "markdown table" in ask:
        return (f"Key facts\n\n| Item | Detail |\n|---|---|\n| {phrase(0, 2)} | {phrase(2, 6)} |\n"
                f"| {phrase(6, 8)} | {phrase(8, 12)} |\n\nQuestion: What is in the first row?\n"
                f"Answer: {phrase(0, 2)}.")
    if "math word problem" in ask:
        return (f"A page about {phrase(0, 12)} has 3 parts of 4 lines each. How many lines are there in all?\n\n"
                f"Solution:\nEach part of {phrase(0, 3)} has 4 lines and there are 3 parts.\n3 * 4 = 12 lines in "
                f"{phrase(0, 3)}.\nFinal answer: 12")
    if "tutorial" in ask:
        return (f"Guide to {phrase(0, 4)}\nYou will learn what it covers.\n\n1. Read about {phrase(4, 10)} "
                f"first.\n2. Then look at {phrase(10, 16)} closely.\n3. Finally use {phrase(16, 22)} in practice.")
    openers = ["It notes that", "It also says", "Then it adds", "It explains that", "Next it covers", "It shows that"]
    chunks = [w[i:i + 3] for i in range(0, min(len(w), 60), 3)]
    return " ".join(f"{openers[k % len(openers)]} {' '.join(c)} here." for k, c in enumerate(chunks))


class FakeServer:
    def __init__(self, slow_seconds: float = 5.0, die_after: int | None = None, models=("fake-model",),
                 delay: float = 0.0, delay_fn=None):
        self.models = list(models)  # what GET /v1/models lists (a run that names another model is refused)
        self.slow_seconds = slow_seconds
        self.die_after = die_after
        self.delay = delay  # seconds every answer takes (requests overlap, as on a real engine)
        self.delay_fn = delay_fn  # or: request body -> seconds (e.g. a long tail of slow answers)
        self.arrivals: list[tuple[float, int | None]] = []  # (wall-clock time, the request's seed) per answered POST
        self.events: list[tuple[str, str, float]] = []  # ("start" | "end", prompt text, monotonic time)
        self.requests = 0
        self.seen_retry: set[str] = set()
        self.seen_junk: set[str] = set()
        self.bodies: list[dict] = []  # every POST body received, in order (for tests that inspect requests)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code: int, payload: dict):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                req = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.bodies.append(req)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                with server.lock:
                    server.requests += 1
                    n = server.requests
                if server.die_after is not None and n > server.die_after:
                    threading.Thread(target=server.stop, daemon=True).start()
                    self.close_connection = True
                    return
                content = req["messages"][-1]["content"]
                if "OVERFLOW" in content:
                    self._send(400, {"error": {"message": "This model's maximum context length is 2048 tokens."}})
                    return
                if "FLAKY" in content:
                    self._send(500, {"error": "internal error"})
                    return
                if "RETRY" in content:
                    with server.lock:
                        first = content not in server.seen_retry
                        server.seen_retry.add(content)
                    if first:
                        self._send(503, {"error": "busy"})
                        return
                junk = "JUNK" in content and "JUNKONCE" not in content
                if "JUNKONCE" in content:
                    with server.lock:
                        junk = content not in server.seen_junk
                        server.seen_junk.add(content)
                with server.lock:
                    server.events.append(("start", content, time.monotonic()))
                    server.arrivals.append((time.time(), req.get("seed")))
                if "SLOW" in content:
                    time.sleep(server.slow_seconds)
                time.sleep(server.delay_fn(req) if server.delay_fn else server.delay)
                text = "again and again " * 8 if junk else shaped_answer(content)
                with server.lock:
                    server.events.append(("end", content, time.monotonic()))
                self._send(200, {
                    "id": f"cmpl-{n}", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "length" if junk else "stop"}],
                    "usage": {"prompt_tokens": len(content.split()), "completion_tokens": len(text.split()),
                              "total_tokens": 0},
                })

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 resets connections under concurrency

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
