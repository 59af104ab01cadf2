"""The quality gate and constrained generation end to end, on the real SmolLM2-135M-Instruct through llama.cpp.

- every published row of a faq/math/table/tutorial run passes its template's own check, rejects carry reasons,
  `verify` passes;
- with --constrain-format, each template's grammar reaches the server with every request (seen by a recording
  proxy in front of the real server: the proxy only forwards) and every generation has the grammar's shape.
"""

import json
import re
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import read_rows, run_cli, small_rows, write_parquet
from expected_shapes import SHAPES

from finephrase.prompts.library import load_prompt
from finephrase.quality.formats import check_format
from finephrase.quality.gate import QualityGate

PROMPTS = ["faq", "math", "table", "tutorial"]
REASON_PREFIXES = ("format:", "non_answer:", "copy", "off_topic", "language", "length", "repetition", "too_short",
                   "empty")
# the grammars of prompts/faq.toml and prompts/table.toml, as regular expressions (a generation that stopped)
def test_published_rows_pass_their_templates_check(tmp_path):
    docs = small_rows(4, chars=900)
    src = write_parquet(tmp_path / "in" / "docs.parquet", docs)
    out = tmp_path / "out"
    # unconstrained (the gate's shape checks get work), and each rejected generation asked for once more
    r = run_cli("rephrase", src, "--prompt", ",".join(PROMPTS), "--output", out, "--max-tokens", "256",
                "--seed", "3", "--no-constrain-format", "--max-attempts", "2", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "published" in r.stderr  # the end summary says how much was published (so in format)
    text_of = {d["id"]: d["text"] for d in docs}
    reasons = Counter()
    for p in PROMPTS:
        tpl = load_prompt(p)
        for row in read_rows(out / p):
            assert check_format(row["text"], tpl.check) is None, (p, row["text"][:300])
            assert QualityGate().check(row["text"], row["finish_reason"], prompt=tpl,
                                       source=text_of[row["source_id"]]) is None, (p, row["text"][:300])
            assert 1 <= row["attempt"] <= 2
        for rej in read_rows(out / "rejects" / p):
            assert rej["reject_reason"].startswith(REASON_PREFIXES), rej["reject_reason"]
            reasons[rej["reject_reason"].split(":")[0]] += 1
            # every reason these prefixes name is one a new sample may fix: each reject had all its attempts
            assert rej["attempt"] == 2 and len(rej["attempt_reasons"]) == 2, rej
            assert rej["attempt_reasons"][-1] == rej["reject_reason"]
        assert len(read_rows(out / p)) + len(read_rows(out / "rejects" / p)) == len(docs)
    # the 135M model rarely writes what it is asked: the gate must be seen rejecting for shape or non-answers
    assert reasons["format"] + reasons["non_answer"] > 0, reasons
    assert run_cli("verify", out).returncode == 0


class RecordingProxy:
    """Forwards every request to the real server and keeps the JSON bodies of the chat requests. It changes
    nothing: it is how the test sees what the server received."""

    def __init__(self, upstream: str):
        proxy = self
        self.upstream = upstream.rstrip("/")
        self.bodies: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _forward(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
                if body and self.path.endswith("/chat/completions"):
                    proxy.bodies.append(json.loads(body))
                req = urllib.request.Request(proxy.upstream + self.path, data=body, method=method,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=600) as resp:
                        status, data = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_constrained_generation_sends_the_grammar_and_every_generation_has_its_shape(llama_endpoint, tmp_path):
    docs = small_rows(3, chars=900)
    src = write_parquet(tmp_path / "in" / "docs.parquet", docs)
    out = tmp_path / "out"
    proxy = RecordingProxy(llama_endpoint)
    try:
        r = run_cli("rephrase", src, "--prompt", "faq,table", "--output", out, "--backend", "endpoint",
                    "--endpoint-url", proxy.url, "--context-length", "1024", "--max-tokens", "400",
                    "--constrain-format", "--seed", "2", "--max-attempts", "1", timeout=900)
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr[-2000:]
    grammar = {p: load_prompt(p).check["grammar"] for p in ("faq", "table")}
    asked = [b for b in proxy.bodies if "Read the document below" in json.dumps(b["messages"])]
    assert len(asked) == 2 * len(docs)
    for b in asked:
        content = b["messages"][-1]["content"]
        which = "table" if "markdown table" in content else "faq"
        assert b["grammar"] == grammar[which]  # llama.cpp's field: told apart by the server's tokenize endpoint
        # the template's own [request.llamacpp] fields go to llama.cpp too (faq: the DRY sampler), nothing else
        assert {k: b[k] for k in ("dry_multiplier", "dry_penalty_last_n") if k in b} == \
            load_prompt(which).request_fields("llamacpp")
    generations = 0
    for p in ("faq", "table"):
        for row in read_rows(out / p) + read_rows(out / "rejects" / p):
            if row["finish_reason"] != "stop":  # cut by max tokens: a prefix of the shape
                continue
            generations += 1
            assert re.fullmatch(SHAPES[p], row["text"].strip() + ("\n\n" if p == "faq" else "\n")), row["text"]
    assert generations >= len(docs)  # most of them stopped where the grammar ends
    assert run_cli("verify", out).returncode == 0
