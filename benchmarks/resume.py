"""Resume overhead: time to finish a run that was killed (SIGKILL) at ~90% ÷ time to process the same remaining
documents from scratch, both against the zero-latency server (so the model costs nothing and what is left is
our own resume work: ledger repair, deleting uncommitted files, the manifest check, seeking the input).

    python benchmarks/resume.py                   # 20,000 documents, chunks of 1,000, 3 repeats
    python benchmarks/resume.py --quick           # 600 documents, chunks of 20, concurrency 16, 1 repeat

Per repeat:
1. `finephrase rephrase IN ... --output A` is started in its own process group and killed with SIGKILL (the
   whole group) as soon as its ledger shows >= 90% of the documents committed;
2. the documents not committed at that moment (what the rerun must redo) are written to a new input TAIL,
   same format;
3. timed, one after the other: the rerun `finephrase rephrase IN ... --output A` (it resumes) and a fresh
   `finephrase rephrase TAIL ... --output B`. Both are whole processes: interpreter start-up counts in both.
   `finephrase verify A` then checks that the resumed run is exactly once (not timed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    ZeroServer,
    base_parser,
    env_for_children,
    finephrase_cmd,
    fmt,
    ledger_committed_docs,
    machine,
    machine_line,
    make_rows,
    median,
    resolve_repeats,
    table,
    write_input,
    write_results,
)

NAME = "resume"
TARGET = 1.2
KILL_AT = 0.9


def rephrase_args(inp: Path, out: Path, url: str, args) -> list:
    return finephrase_cmd("rephrase", inp, "--prompt", "faq", "--backend", "endpoint", "--endpoint-url", url,
                          "--output", out, "--max-concurrency", args.concurrency, "--chunk-size", args.chunk_size,
                          "--progress-interval", 3600)


def run_timed(cmd: list) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       env=env_for_children())
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:5]))} ... exited {r.returncode}:\n{r.stdout.decode()[-3000:]}")
    return wall


def run_and_kill(cmd: list, out: Path, threshold: int, timeout: float = 3600) -> dict:
    """Start cmd in its own process group; SIGKILL the group once the ledger has >= threshold documents."""
    log = open(out.parent / f"{out.name}.log", "w+b")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env_for_children(), start_new_session=True)
    t0 = time.perf_counter()
    seen = 0
    try:
        while time.perf_counter() - t0 < timeout:
            seen = ledger_committed_docs(out)
            if seen >= threshold:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                if proc.returncode != 0:
                    log.seek(0)
                    raise RuntimeError(f"the run failed (exit {proc.returncode}):\n"
                                       f"{log.read().decode(errors='replace')[-3000:]}")
                break  # it finished before the kill point: the caller retries with an earlier one
            time.sleep(0.005)
        else:
            raise RuntimeError("timed out waiting for the run to reach the kill point")
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        log.close()
    return {"killed_after_s": time.perf_counter() - t0, "committed_at_kill": ledger_committed_docs(out)}


def verify(out: Path) -> bool:
    r = subprocess.run(finephrase_cmd("verify", out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env_for_children())
    return r.returncode == 0


def main(argv=None):
    p = base_parser(NAME, "time to finish a run killed at ~90% ÷ time to process its remaining documents fresh")
    p.add_argument("--docs", type=int, default=None, help="documents (20,000; quick 600)")
    p.add_argument("--chunk-size", type=int, default=None, help="documents per committed chunk (1000; quick 20)")
    p.add_argument("--concurrency", type=int, default=None, help="--max-concurrency (128; quick 16)")
    p.add_argument("--format", default="parquet", choices=["parquet", "jsonl"],
                   help="input format (parquet, row groups of 1,024 rows)")
    args = p.parse_args(argv)
    resolve_repeats(args)
    n = args.docs or (600 if args.quick else 20_000)
    args.chunk_size = args.chunk_size or (20 if args.quick else 1000)
    args.concurrency = args.concurrency or (16 if args.quick else 128)
    print(machine_line(machine()))
    print(f"{n:,} documents ({args.format}), chunks of {args.chunk_size:,}, concurrency {args.concurrency}, "
          f"kill at >= {KILL_AT:.0%} committed, repeats {args.repeats}")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fp-bench-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = make_rows(n)
    inp = write_input(work / "in" / f"docs.{args.format}", rows, args.format)
    threshold = int(KILL_AT * n)
    runs = []
    try:
        with ZeroServer() as server:
            for rep in range(args.repeats):
                a, b = work / f"A-{rep}", work / f"B-{rep}"
                for attempt in range(5):  # the last chunks may all commit before the kill lands: kill earlier
                    k = run_and_kill(rephrase_args(inp, a, server.url, args), a,
                                     threshold - attempt * args.chunk_size)
                    if k["committed_at_kill"] < n:
                        break
                    shutil.rmtree(a, ignore_errors=True)
                else:
                    raise RuntimeError("every run finished before it could be killed: use more documents")
                remaining = n - k["committed_at_kill"]
                tail = write_input(work / f"tail-{rep}" / f"docs.{args.format}", rows[k["committed_at_kill"]:],
                                   args.format)
                t_resume = run_timed(rephrase_args(inp, a, server.url, args))
                t_fresh = run_timed(rephrase_args(tail, b, server.url, args))
                ok = verify(a)
                r = {**k, "remaining_docs": remaining, "resume_s": t_resume, "fresh_tail_s": t_fresh,
                     "ratio": t_resume / t_fresh, "verify_ok": ok}
                runs.append(r)
                print(f"  run {rep + 1}: killed at {k['committed_at_kill']:,}/{n:,} committed; finishing "
                      f"{remaining:,} documents: resume {t_resume:.2f}s, fresh {t_fresh:.2f}s -> "
                      f"{r['ratio']:.3f} (verify {'OK' if ok else 'FAILED'})", flush=True)
                shutil.rmtree(a, ignore_errors=True)
                shutil.rmtree(b, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    ratio = median([r["ratio"] for r in runs])
    print(table(["documents", "killed at (committed)", "remaining", "resume s", "fresh tail s", "resume ÷ fresh",
                 f"target <= {TARGET}"],
                [[fmt(n), fmt(median([r["committed_at_kill"] for r in runs])),
                  fmt(median([r["remaining_docs"] for r in runs])), fmt(median([r["resume_s"] for r in runs]), 2),
                  fmt(median([r["fresh_tail_s"] for r in runs]), 2), fmt(ratio, 3),
                  "met" if ratio <= TARGET else "NOT met"]]))
    write_results(NAME, args, {
        "documents": n, "chunk_size": args.chunk_size, "concurrency": args.concurrency, "format": args.format,
        "kill_at": KILL_AT, "target": TARGET, "ratio": ratio, "meets_target": ratio <= TARGET,
        "all_verified": all(r["verify_ok"] for r in runs), "runs": runs,
    })


if __name__ == "__main__":
    main()
