"""Tasks of one run started at the same instant on a new output folder, as a SLURM array's tasks are: how many
fail because of another task (target: none), and, with a random quarter of them SIGKILLed mid-run and the whole
array rerun, whether the run still verifies exactly once.

    python benchmarks/concurrent_start.py                    # 32 tasks x 20 trials, then 20 kill-and-rerun trials
    python benchmarks/concurrent_start.py --tasks 16 --trials 3 --quick

Every task is a real `finephrase rephrase --tasks N --rank R` process against the zero-latency stand-in server
(not a model: what is measured is finephrase's own start-up under concurrency). All processes are spawned first
and wait for one go-file, so their start-ups overlap as much as this machine allows.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    REPO,
    ZeroServer,
    base_parser,
    env_for_children,
    machine,
    machine_line,
    table,
    write_input,
    write_results,
)

GATE = ("import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.005)\n"
        "from finephrase.cli import main\nsys.argv = ['finephrase'] + sys.argv[2:]\nsys.exit(main())")


def make_input(folder: Path, files: int, per_file: int) -> Path:
    if not folder.is_dir():
        for f in range(files):
            rows = [{"id": f"f{f}-{i}", "text": f"Document {f}-{i} on subject {f * per_file + i}. " * 10}
                    for i in range(per_file)]
            write_input(folder / f"part_{f:04d}.parquet", rows, "parquet")
    return folder


def launch(src: Path, out: Path, url: str, tasks: int) -> list[subprocess.Popen]:
    go = out.parent / f".go-{out.name}-{time.time_ns()}"
    procs = []
    for rank in range(tasks):
        args = ["rephrase", str(src), "--prompt", "faq,table", "--output", str(out), "--backend", "endpoint",
                "--endpoint-url", url, "--tasks", str(tasks), "--rank", str(rank), "--chunk-size", "4"]
        procs.append(subprocess.Popen([sys.executable, "-c", GATE, str(go), *args], cwd=REPO, text=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_for_children()))
    time.sleep(0.5 + 0.05 * tasks)  # all of them at the gate
    go.touch()
    return procs


def exit_codes(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _, err = p.communicate(timeout=1800)
        out.append((p.returncode, (err.strip().splitlines() or [""])[-1]))
    return out


def verify_ok(out: Path) -> bool:
    r = subprocess.run([sys.executable, "-m", "finephrase.cli", "verify", str(out)], cwd=REPO, capture_output=True,
                       text=True, env=env_for_children())
    return r.returncode == 0


def trial(src: Path, out: Path, url: str, tasks: int, kill: bool, rng: random.Random) -> dict:
    t0 = time.monotonic()
    procs = launch(src, out, url, tasks)
    victims = set()
    if kill:
        time.sleep(rng.uniform(2.0, 6.0))
        victims = set(rng.sample(range(tasks), tasks // 4))
        for rank in victims:
            procs[rank].send_signal(signal.SIGKILL)
    codes = exit_codes(procs)
    lost = [(r, c, line) for r, (c, line) in enumerate(codes) if c != 0 and r not in victims]
    if kill:
        codes = exit_codes(launch(src, out, url, tasks))
        lost += [(r, c, line) for r, (c, line) in enumerate(codes) if c != 0]
    return {"wall_s": time.monotonic() - t0, "lost": len(lost), "errors": [line for _, _, line in lost][:3],
            "verify_ok": verify_ok(out), "killed": len(victims)}


def main() -> int:
    p = base_parser("concurrent_start", __doc__)
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--kill-trials", type=int, default=None, help="kill-and-rerun trials (default: --trials)")
    args = p.parse_args()
    if args.quick:
        args.tasks, args.trials, args.kill_trials = min(args.tasks, 8), 1, 1
    kill_trials = args.trials if args.kill_trials is None else args.kill_trials
    work = Path(args.workdir or "/tmp/finephrase-bench-concurrent")
    src = make_input(work / f"in-{args.tasks}", files=args.tasks * 4, per_file=6)
    rng = random.Random(0)
    results = {"machine": machine(), "tasks": args.tasks, "trials": []}
    with ZeroServer(processes=1) as server:
        for kind, n in (("start", args.trials), ("kill+rerun", kill_trials)):
            for i in range(n):
                r = trial(src, work / f"out-{kind}-{i}-{time.time_ns()}", server.url, args.tasks,
                          kind == "kill+rerun", rng)
                results["trials"].append({"kind": kind, **r})
                print(f"{kind} trial {i}: {r['lost']} tasks lost, verify {'OK' if r['verify_ok'] else 'FAILED'}, "
                      f"{r['wall_s']:.1f} s" + (f" ({r['errors'][0]})" if r["errors"] else ""), flush=True)
    rows = []
    for kind in ("start", "kill+rerun"):
        ts = [t for t in results["trials"] if t["kind"] == kind]
        if ts:
            rows.append([kind, len(ts), args.tasks, sum(t["lost"] for t in ts),
                         sum(not t["verify_ok"] for t in ts)])
    print(machine_line(results["machine"]))
    print(table(["trials of", "trials", "tasks each", "tasks lost (all trials)", "verify failed"], rows))
    write_results("concurrent_start", args, results)
    return 0 if all(t["lost"] == 0 and t["verify_ok"] for t in results["trials"]) else 1


if __name__ == "__main__":
    sys.exit(main())
