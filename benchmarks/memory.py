"""Memory: peak RSS of the finephrase worker at a small and a 10x larger input, against the zero-latency server.
Flat memory (the number of open chunks is bounded) means the ratio stays near 1.

    python benchmarks/memory.py                   # 10,000 vs 100,000 documents, 3 repeats
    python benchmarks/memory.py --quick           # 100 vs 500 documents, 1 repeat

Each run is `finephrase rephrase IN --prompt faq --backend endpoint ...` as its own process, with one task and
one worker: datatrove runs that task inside the CLI process, so the CLI process is the worker. Its peak RSS is
`ru_maxrss` from `os.wait4` on it (Linux: the largest of the process and its waited-for children, i.e. also
datatrove's small multiprocess manager process).

It is started through a small wrapper process (`python -c ...`, ~10 MB), which waits for it and reports its
`ru_maxrss`: Linux carries the parent's peak RSS over fork/vfork + exec into the child's `ru_maxrss`, so a
child spawned directly by this script (which holds the generated documents) would report this script's size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ZeroServer,
    base_parser,
    env_for_children,
    finephrase_cmd,
    fmt,
    machine,
    machine_line,
    make_rows,
    median,
    resolve_repeats,
    table,
    write_input,
    write_results,
)

NAME = "memory"
TARGET = 1.2


# Runs argv[2:], writes "<exit code> <ru_maxrss KiB> <wall s>" to the file descriptor argv[1] (the command's own
# output is left alone).
_WRAPPER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
os.write(int(sys.argv[1]), f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {time.perf_counter() - t0}".encode())
"""


def peak_rss(cmd: list) -> dict:
    r_fd, w_fd = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(w_fd), *map(str, cmd)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env_for_children(),
                            pass_fds=(w_fd,))
    os.close(w_fd)
    err = proc.stderr.read()
    proc.wait()
    with os.fdopen(r_fd, "rb") as f:
        report = f.read().decode().split()
    if proc.returncode != 0 or len(report) != 3 or report[0] != "0":
        raise RuntimeError(f"{' '.join(map(str, cmd[:5]))} ... failed ({proc.returncode}, {report}):\n"
                           f"{err.decode(errors='replace')[-3000:]}")
    return {"peak_rss_mib": int(report[1]) / 1024, "wall_s": float(report[2])}


def main(argv=None):
    p = base_parser(NAME, "peak RSS of the worker at N vs 10N documents (zero-latency server)")
    p.add_argument("--sizes", default=None, help="two document counts, comma separated (10000,100000; quick "
                   "100,500)")
    p.add_argument("--chunk-size", type=int, default=None, help="documents per committed chunk (1000; quick 25)")
    p.add_argument("--concurrency", type=int, default=128, help="--max-concurrency (128)")
    p.add_argument("--format", default="parquet", choices=["parquet", "jsonl"],
                   help="input format (parquet, row groups of 1,024 rows)")
    args = p.parse_args(argv)
    resolve_repeats(args)
    sizes = [int(s) for s in (args.sizes or ("100,500" if args.quick else "10000,100000")).split(",")]
    if len(sizes) != 2:
        p.error("--sizes takes two counts")
    chunk = args.chunk_size or (25 if args.quick else 1000)
    print(machine_line(machine()))
    print(f"sizes {sizes[0]:,} and {sizes[1]:,} documents ({args.format}), chunks of {chunk:,}, concurrency "
          f"{args.concurrency}, repeats {args.repeats}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = make_rows(max(sizes))
    inputs = {s: write_input(work / f"in-{s}" / f"docs.{args.format}", rows[:s], args.format) for s in sizes}
    del rows
    runs = {s: [] for s in sizes}
    try:
        with ZeroServer() as server:
            for rep in range(args.repeats):  # interleaved
                for s in sizes:
                    out = work / f"out-{s}-{rep}"
                    r = peak_rss(finephrase_cmd("rephrase", inputs[s], "--prompt", "faq", "--backend", "endpoint",
                                                "--endpoint-url", server.url, "--output", out,
                                                "--max-concurrency", args.concurrency, "--chunk-size", chunk,
                                                "--progress-interval", 3600))
                    r["docs_per_s"] = s / r["wall_s"]
                    runs[s].append(r)
                    print(f"  run {rep + 1}: {s:>9,} documents: peak RSS {r['peak_rss_mib']:.1f} MiB "
                          f"({r['wall_s']:.1f}s)", flush=True)
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    peaks = {s: median([r["peak_rss_mib"] for r in runs[s]]) for s in sizes}
    ratio = peaks[sizes[1]] / peaks[sizes[0]]
    print(table(["documents", "peak RSS MiB (median)", "wall s (median)"],
                [[fmt(s), fmt(peaks[s], 1), fmt(median([r["wall_s"] for r in runs[s]]), 1)] for s in sizes]))
    print(f"peak RSS {sizes[1]:,} ÷ {sizes[0]:,} documents: {ratio:.3f} (target <= {TARGET}: "
          f"{'met' if ratio <= TARGET else 'NOT met'})")
    write_results(NAME, args, {
        "sizes": sizes, "chunk_size": chunk, "concurrency": args.concurrency, "format": args.format,
        "peak_rss_mib": {str(s): peaks[s] for s in sizes}, "ratio": ratio, "target": TARGET,
        "meets_target": ratio <= TARGET, "runs": {str(s): runs[s] for s in sizes},
    })


if __name__ == "__main__":
    main()
