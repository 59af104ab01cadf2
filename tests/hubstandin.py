"""A stand-in for the Hugging Face Hub, NOT the Hub: a small HTTP server for the upload tests.

There is no Hub (and no network) where the tests run, so `finephrase publish` talks, through the real
huggingface_hub client (pointed here with HF_ENDPOINT), to this server. It answers only the endpoints that
huggingface_hub 2.4.0 calls to create a dataset repo and upload a folder into it, and it stores what it is given,
so a test can compare what arrived with the local folder. What it tests is our use of the client and the client's
behaviour under faults (rate limits, server errors, a server that dies mid-upload), not the Hub.

Endpoints (dataset repos only; anything else answers 404 and is logged as `unhandled`):

  GET  /api/agent-harnesses                               the client's best-effort user-agent registry (empty;
                                                          public, like on the Hub)
  POST /api/repos/create                                  create a repo (409 if it exists)
  GET  /api/datasets/{org}/{name}[/revision/{rev}]        repo info: sha, private, siblings
  POST /api/datasets/{org}/{name}/branch/{branch}         create a branch from main (409 if it exists)
  POST /api/validate-yaml                                 parse a README's YAML front matter (400 if invalid)
  POST /api/datasets/{org}/{name}/preupload/{rev}         upload mode of each file: always "regular", with the
                                                          stored file's git oid when the path exists (the client
                                                          skips unchanged files with it: that is how a rerun
                                                          continues where it stopped)
  POST /api/datasets/{org}/{name}/commit/{rev}            ndjson commit: header, file (base64), deletedFile,
                                                          deletedFolder; applied atomically

Xet and LFS: the real Hub answers "lfs" for data files and huggingface_hub (with hf_xet installed) then uploads
them through the Xet storage protocol, which this stand-in does not speak. Here preupload answers "regular" for
every file, so the client sends the bytes inside the commit payload and never asks for a Xet token or an LFS
batch; everything else (preupload batches, the multi-commit pipeline, retries, skipping what is already there)
is the client's real code path. A `lfsFile` commit line would be refused with 400.

State lives in --state DIR (survives a SIGKILL and a restart on the same port): `repos.json` (repos, branches,
trees: path -> git oid and size), `blobs/<git oid>`, and `events.jsonl`, one JSON line per commit, injected
fault, hang, refused request or unhandled request. Writes are atomic (temp file + rename).

Faults: the first requests to each endpoint named in --faults get the listed status codes (e.g.
`preupload:429,commit:503,commit:500,create:429`), then each request to preupload / commit / create gets a
429, 500 or 503 with probability --fault-rate (seeded by --seed, at most two in a row per endpoint). A 429 carries
`Retry-After: 0`. `--hang-after-commits N`: after N commits by this process, commit requests hang (the test
kills the server then: a kill that lands mid-upload, deterministically).

Limits: the Hub's, enforced on every commit (--max-files-per-commit 100, --max-entries-per-folder 10000,
--max-files-per-repo 100000, --max-file-bytes 20e9: a commit that reaches one is refused with 400 and nothing of
it is applied; --max-commits-per-hour 128: past it a commit gets 429 with Retry-After), so a test that passes
proves an upload stays inside them. Each refusal is an event (`limit`).

Auth: every request (but /api/agent-harnesses) must carry `Authorization: Bearer <--token>`, else 401.

Run: python tests/hubstandin.py --port 0 --state DIR --token hf_x  (prints `ready PORT` on stdout).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

FAULTABLE = ("preupload", "commit", "create")
# the Hub's limits (huggingface.co/docs/hub/repositories-recommendations; the commit rate as users report it)
LIMITS = {"files_per_commit": 100, "entries_per_folder": 10_000, "files_per_repo": 100_000,
          "file_bytes": 20 * 10**9, "commits_per_hour": 128}


def limit_problem(tree: dict, adds: dict, limits: dict) -> str | None:
    """Why a commit adding `adds` to `tree` breaks one of the Hub's limits, or None."""
    if len(adds) >= limits["files_per_commit"]:
        return f"{len(adds)} files in one commit (fewer than {limits['files_per_commit']} allowed)"
    big = [p for p, data in adds.items() if len(data) >= limits["file_bytes"]]
    if big:
        return f"file {big[0]} is {len(adds[big[0]])} bytes (files must be under {limits['file_bytes']})"
    paths = set(tree) | set(adds)
    if len(paths) >= limits["files_per_repo"]:
        return f"the repo would hold {len(paths)} files (fewer than {limits['files_per_repo']} allowed)"
    entries: dict[str, set] = {}
    for p in paths:
        parts = p.split("/")
        for i in range(len(parts)):
            entries.setdefault("/".join(parts[:i]), set()).add(parts[i])
    folder, names = max(entries.items(), key=lambda kv: len(kv[1]))
    if len(names) >= limits["entries_per_folder"]:
        return f"folder '{folder or '/'}' would hold {len(names)} entries (fewer than {limits['entries_per_folder']})"
    return None


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _atomic_write(path: Path, data: bytes):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Store:
    def __init__(self, root: Path):
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        self.path = root / "repos.json"
        self.repos = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.lock = threading.Lock()

    def save(self):
        _atomic_write(self.path, json.dumps(self.repos, indent=1, sort_keys=True).encode())

    def event(self, **kw):
        kw["t"] = time.time()
        with open(self.root / "events.jsonl", "ab") as f:
            f.write(json.dumps(kw).encode() + b"\n")

    def put_blob(self, data: bytes) -> str:
        oid = git_oid(data)
        path = self.root / "blobs" / oid
        if not path.exists():
            _atomic_write(path, data)
        return oid


def read_tree(state_dir: str | Path, repo: str, revision: str = "main") -> dict[str, bytes]:
    """{path: bytes} of a repo's branch as stored by the stand-in (for tests)."""
    root = Path(state_dir)
    repos = json.loads((root / "repos.json").read_text())
    tree = repos[f"datasets/{repo}"]["branches"][revision]["tree"]
    return {p: (root / "blobs" / v["oid"]).read_bytes() for p, v in tree.items()}


def read_events(state_dir: str | Path) -> list[dict]:
    path = Path(state_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class HubStandIn:
    def __init__(self, state: Path, token: str, port: int = 0, seed: int = 0, fault_rate: float = 0.0,
                 faults: str = "", hang_after_commits: int | None = None, limits: dict | None = None):
        self.store = Store(Path(state))
        self.limits = {**LIMITS, **(limits or {})}
        self.commit_times: list[float] = []
        self.token = token
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.scheduled: dict[str, list[int]] = {}
        for item in filter(None, faults.split(",")):
            ep, code = item.split(":")
            self.scheduled.setdefault(ep, []).append(int(code))
        self.in_a_row: dict[str, int] = {}
        self.hang_after = hang_after_commits
        self.commits_here = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code: int, payload, headers: dict | None = None):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                standin.handle(self, "GET", b"")

            def do_POST(self):
                standin.handle(self, "POST", self._body())

            def do_PUT(self):
                standin.handle(self, "PUT", self._body())

            def do_HEAD(self):
                standin.store.event(event="unhandled", method="HEAD", path=self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.httpd = Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- faults -----------------------------------------------------------------------------------------------

    def _fault(self, endpoint: str) -> int | None:
        with self.store.lock:
            if self.scheduled.get(endpoint):
                code = self.scheduled[endpoint].pop(0)
            elif endpoint in FAULTABLE and self.in_a_row.get(endpoint, 0) < 2 and self.rng.random() < self.fault_rate:
                code = self.rng.choice((429, 500, 503))
            else:
                self.in_a_row[endpoint] = 0
                return None
            self.in_a_row[endpoint] = self.in_a_row.get(endpoint, 0) + 1
            self.store.event(event="fault", endpoint=endpoint, code=code)
            return code

    # -- dispatch ---------------------------------------------------------------------------------------------

    def handle(self, h, method: str, body: bytes):
        path = unquote(urlsplit(h.path).path)
        if method == "GET" and path == "/api/agent-harnesses":  # public: the client's user-agent registry
            h._send(200, {"standardEnvVars": [], "harnesses": {}})
            return
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            self.store.event(event="unauthorized", method=method, path=path,
                             has_auth=h.headers.get("Authorization") is not None)
            h._send(401, {"error": "Invalid credentials in Authorization header"})
            return
        parts = path.strip("/").split("/")
        endpoint, args = None, None
        if method == "POST" and path == "/api/repos/create":
            endpoint = "create"
        elif method == "POST" and path == "/api/validate-yaml":
            endpoint = "validate-yaml"
        elif len(parts) >= 4 and parts[:2] == ["api", "datasets"]:
            repo = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            if method == "GET" and not rest:
                endpoint, args = "info", (repo, "main")
            elif method == "GET" and len(rest) >= 2 and rest[0] == "revision":
                endpoint, args = "info", (repo, "/".join(rest[1:]))
            elif method == "POST" and len(rest) >= 2 and rest[0] in ("preupload", "commit", "branch"):
                endpoint, args = rest[0], (repo, "/".join(rest[1:]))
        if endpoint is None:
            self.store.event(event="unhandled", method=method, path=path)
            h._send(404, {"error": f"not handled by the stand-in: {method} {path}"})
            return
        code = self._fault(endpoint)
        if code is not None:
            h._send(code, {"error": f"injected {code}"}, {"Retry-After": "0"} if code == 429 else None)
            return
        try:
            getattr(self, "ep_" + endpoint.replace("-", "_"))(h, body, *(args or ()))
        except Exception as e:  # a bug here should be visible to the test, not hang the client
            self.store.event(event="error", endpoint=endpoint, error=repr(e))
            h._send(500, {"error": f"stand-in error: {e!r}"})

    def _repo(self, h, repo: str):
        r = self.store.repos.get(f"datasets/{repo}")
        if r is None:
            h._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return r

    def _branch(self, h, r: dict, rev: str):
        b = r["branches"].get(rev)
        if b is None:
            h._send(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return b

    # -- endpoints --------------------------------------------------------------------------------------------

    def ep_create(self, h, body: bytes):
        req = json.loads(body)
        if req.get("type") != "dataset":
            h._send(400, {"error": "the stand-in only holds dataset repos"})
            return
        repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
        key = f"datasets/{repo}"
        with self.store.lock:
            if key in self.store.repos:
                h._send(409, {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo}"})
                return
            private = req.get("visibility") == "private" or bool(req.get("private"))
            self.store.repos[key] = {"private": private,
                                     "branches": {"main": {"sha": hashlib.sha1(key.encode()).hexdigest(), "tree": {}}}}
            self.store.save()
            self.store.event(event="create", repo=repo, private=private)
        h._send(200, {"url": f"{self.url}/datasets/{repo}", "name": repo})

    def ep_info(self, h, body: bytes, repo: str, rev: str):
        r = self._repo(h, repo)
        if r is None:
            return
        b = self._branch(h, r, rev)
        if b is None:
            return
        h._send(200, {"id": repo, "author": repo.split("/")[0], "sha": b["sha"], "private": r["private"],
                      "siblings": [{"rfilename": p} for p in sorted(b["tree"])], "tags": []})

    def ep_branch(self, h, body: bytes, repo: str, branch: str):
        r = self._repo(h, repo)
        if r is None:
            return
        with self.store.lock:
            if branch in r["branches"]:
                h._send(409, {"error": "Reference already exists"})
                return
            start = (json.loads(body) if body else {}).get("startingPoint") or "main"
            r["branches"][branch] = json.loads(json.dumps(r["branches"][start]))
            self.store.save()
        h._send(200, {})

    def ep_validate_yaml(self, h, body: bytes):
        import yaml

        content = json.loads(body).get("content", "")
        if not content.startswith("---\n"):
            h._send(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
            return
        try:
            meta = yaml.safe_load(content[4:content.index("\n---", 4)])
        except (ValueError, yaml.YAMLError) as e:
            h._send(400, {"errors": [{"message": f"invalid YAML: {e}"}]})
            return
        errors = []
        for c in (meta or {}).get("configs", []) or []:
            if not isinstance(c, dict) or "config_name" not in c or "data_files" not in c:
                errors.append({"message": f"bad config entry: {c!r}"})
        h._send(400 if errors else 200, {"errors": errors, "warnings": []})

    def ep_preupload(self, h, body: bytes, repo: str, rev: str):
        r = self._repo(h, repo)
        if r is None:
            return
        b = self._branch(h, r, rev)
        if b is None:
            return
        files = []
        for f in json.loads(body)["files"]:
            stored = b["tree"].get(f["path"])
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": stored["oid"] if stored else None})
        h._send(200, {"files": files, "commitOid": b["sha"]})

    def ep_commit(self, h, body: bytes, repo: str, rev: str):
        r = self._repo(h, repo)
        if r is None:
            return
        if self.hang_after is not None and self.commits_here >= self.hang_after:
            self.store.event(event="hang", repo=repo)
            time.sleep(3600)  # until the test kills the process
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        adds, deletes = {}, []
        for x in lines:
            v = x["value"]
            if x["key"] == "file":
                if v.get("encoding") != "base64":
                    h._send(400, {"error": "only base64 file content"})
                    return
                adds[v["path"]] = base64.b64decode(v["content"])
            elif x["key"] in ("deletedFile", "deletedFolder"):
                deletes.append((x["key"], v["path"]))
            elif x["key"] != "header":
                h._send(400, {"error": f"the stand-in does not take '{x['key']}' (no LFS / Xet here)"})
                return
        with self.store.lock:
            b = self._branch(h, r, rev)
            if b is None:
                return
            now = time.monotonic()
            self.commit_times = [t for t in self.commit_times if now - t < 3600]
            if len(self.commit_times) >= self.limits["commits_per_hour"]:
                self.store.event(event="limit", repo=repo, what="commits per hour")
                h._send(429, {"error": "You have exceeded the rate limit for repository commits"},
                        {"Retry-After": "60"})
                return
            problem = limit_problem(b["tree"], adds, self.limits)
            if problem:
                self.store.event(event="limit", repo=repo, what=problem)
                h._send(400, {"error": problem})
                return
            self.commit_times.append(now)
            if header.get("parentCommit") and header["parentCommit"] != b["sha"]:
                h._send(412, {"error": "A commit has happened since. Please refresh and try again."})
                return
            tree = dict(b["tree"])
            for kind, p in deletes:
                for q in [q for q in tree if q == p or (kind == "deletedFolder" and q.startswith(p.rstrip("/") + "/"))]:
                    del tree[q]
            for p, data in adds.items():
                tree[p] = {"oid": self.store.put_blob(data), "size": len(data)}
            sha = hashlib.sha1(json.dumps([b["sha"], sorted(tree.items())]).encode()).hexdigest()
            r["branches"][rev] = {"sha": sha, "tree": tree}
            self.store.save()  # the commit point
            self.commits_here += 1
            self.store.event(event="commit", repo=repo, revision=rev, sha=sha, files=len(adds),
                             deleted=len(deletes), summary=header.get("summary"))
        h._send(200, {"commitUrl": f"{self.url}/datasets/{repo}/commit/{sha}", "commitOid": sha,
                      "pullRequestUrl": None})

    def serve_forever(self):
        self.httpd.serve_forever()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="A stand-in for the Hugging Face Hub (tests only; NOT the Hub)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", required=True)
    ap.add_argument("--token", required=True, help="the only token accepted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--faults", default="", help="scheduled faults: ENDPOINT:CODE,... (first requests)")
    ap.add_argument("--hang-after-commits", type=int)
    for name, default in LIMITS.items():
        ap.add_argument(f"--max-{name.replace('_', '-')}", type=int, default=default, dest=name)
    a = ap.parse_args(argv)
    s = HubStandIn(Path(a.state), a.token, port=a.port, seed=a.seed, fault_rate=a.fault_rate, faults=a.faults,
                   hang_after_commits=a.hang_after_commits, limits={k: getattr(a, k) for k in LIMITS})
    print(f"ready {s.port}", flush=True)
    s.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
