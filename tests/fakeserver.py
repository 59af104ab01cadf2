"""A stand-in OpenAI-compatible server for fault tests.

It is NOT a model: it exists to test our own code's behaviour under faults (context overflow, timeouts,
5xx, a server that dies mid-run) and our overhead. Everything that tests generation uses the real
SmolLM2-135M model through llama.cpp.

Behaviour is driven by markers in the document text:
  OVERFLOW -> 400 "maximum context length exceeded";   SLOW -> sleeps `slow_seconds` before answering;
  FLAKY    -> always 500;                              RETRY -> 500 on the first try, then a normal answer.
Otherwise it answers a short FAQ made from the document's first words.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    def __init__(self, slow_seconds: float = 5.0, die_after: int | None = None):
        self.slow_seconds = slow_seconds
        self.die_after = die_after
        self.requests = 0
        self.seen_retry: set[str] = set()
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
                    self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
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
                if "SLOW" in content:
                    time.sleep(server.slow_seconds)
                words = content.split()[:12]
                text = f"Question: What is this about?\nAnswer: {' '.join(words)}.\nQuestion: Why?\nAnswer: Because."
                self._send(200, {
                    "id": f"cmpl-{n}", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
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
