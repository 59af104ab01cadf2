"""The scale rehearsal's stage runners (benchmarks/scale.py): measured processes, rows, a stage's record, and
the stages that do not run as the plain per-task commands of scale.py: rephrase (started together against the
stand-in server, failed tasks rerun), dedup with --tasks/--workers, mix as its SLURM array form (three rounds).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import ZeroServer, env_for_children, finephrase_cmd

PROMPTS = ("faq", "math", "table", "tutorial")
PAPER_DOCS = 339_000_000
PAPER_TASKS = 100
MIX_ROUNDS = 4  # the array form needs 3 (count; plan, scatter; shards); one more if a task ran late

# Runs argv[3:] once the file argv[2] exists ("-": at once); writes "R" to the descriptor argv[1] when ready,
# then "<exit code> <peak RSS KiB> <user+sys s> <start> <end>" (wall clock) when the command has exited. It is a
# child subreaper: what the command leaves orphaned (a multiprocessing forkserver and its pool, datatrove's
# --workers) comes back to it and is reaped too, so the CPU and peak RSS are of every process of the command.
_WRAPPER = """
import ctypes, os, resource, subprocess, sys, time
fd, go = int(sys.argv[1]), sys.argv[2]
try:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (AttributeError, OSError):
    pass
os.write(fd, b"R")
while go != "-" and not os.path.exists(go):
    time.sleep(0.002)
t0 = time.time()
p = subprocess.Popen(sys.argv[3:])
_, status, _ = os.wait4(p.pid, 0)
t1 = time.time()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(fd, f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime} {t0} {t1}".encode())
"""


# -- measured processes ---------------------------------------------------------------------------------------------


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if re.search(r"error|Error|ERROR|refus|not a finephrase", ln)]
    return (errors or lines or [None])[-1]


def run_measured(cmds: list[list], logs: list[Path], barrier: Path | None, timeout: float) -> list[dict]:
    """Start every command (through the wrapper), all at once on `barrier` if given; wait for all of them.
    Each: exit code, peak RSS (MiB), CPU s, start and end (wall clock), and its last error line if it failed."""
    go = str(barrier) if barrier else "-"
    if barrier:
        barrier.unlink(missing_ok=True)
    started = []
    for cmd, log in zip(cmds, logs):
        log.parent.mkdir(parents=True, exist_ok=True)
        r_fd, w_fd = os.pipe()
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(w_fd), go, *map(str, cmd)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env_for_children(),
                                    pass_fds=(w_fd,), start_new_session=True)
        os.close(w_fd)
        started.append((proc, r_fd, log))
    for _, r_fd, _ in started:  # every wrapper is up and polling
        os.read(r_fd, 1)
    if barrier:
        barrier.touch()
    deadline = time.monotonic() + timeout
    return [_collect(proc, r_fd, log, deadline) for proc, r_fd, log in started]


def _collect(proc: subprocess.Popen, r_fd: int, log: Path, deadline: float) -> dict:
    try:
        proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    with os.fdopen(r_fd, "rb") as f:
        report = f.read().decode().split()
    if len(report) != 5:
        return {"exit": proc.returncode or -9, "peak_rss_mib": None, "cpu_s": None, "start": None, "end": None,
                "error": "killed: over --stage-timeout" if proc.returncode else _last_error(log)}
    code, rss, cpu, t0, t1 = int(report[0]), int(report[1]), float(report[2]), float(report[3]), float(report[4])
    return {"exit": code, "peak_rss_mib": round(rss / 1024, 1), "cpu_s": round(cpu, 2), "start": t0, "end": t1,
            "error": _last_error(log) if code else None}


def help_flags(command: str) -> set[str]:
    """The long options `finephrase COMMAND --help` lists (others may be adding some right now)."""
    r = subprocess.run(finephrase_cmd(command, "--help"), capture_output=True, text=True, env=env_for_children())
    return set(re.findall(r"--[a-z][a-z-]+", r.stdout))


# -- rows ---------------------------------------------------------------------------------------------------------


def parquet_rows(folder: Path, sub: str = "") -> int:
    """Rows in the parquet files under folder/sub (hidden folders such as .dedup/ and .ledger/ left out)."""
    import pyarrow.parquet as pq

    root = folder / sub if sub else folder
    if not root.is_dir():
        return 0
    return sum(pq.ParquetFile(p).metadata.num_rows for p in root.rglob("*.parquet")
               if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def published_rows(folder: Path) -> int:
    return sum(parquet_rows(folder, p) for p in PROMPTS)


def run_rows(folder: Path) -> int:
    """Rows of a run: published and rejected (documents x prompts, less the filtered)."""
    return published_rows(folder) + parquet_rows(folder, "rejects")


# -- a stage's record, rephrase --------------------------------------------------------------------------------


def summarize(stage: str, kind: str, procs: list[dict], rows: int, documents: int) -> dict:
    """One stage's record: the stage's wall (first start to last exit), the largest peak RSS of its processes,
    rows/s per process (rows / the processes' summed walls), rows per CPU-second, and the paper's hours."""
    timed = [p for p in procs if p["start"] is not None]
    failed = sum(1 for p in procs if p["exit"] != 0)
    rec = {"stage": stage, "kind": kind, "processes": len(procs), "failed": failed, "rows": rows,
           "exit_codes": [p["exit"] for p in procs], "errors": sorted({p["error"] for p in procs if p["error"]}),
           "wall_s": None, "peak_rss_mib": None, "cpu_s": None, "rows_per_s_per_process": None,
           "rows_per_cpu_s": None, "paper_hours": None, "processes_detail": procs}
    if not timed:
        return rec
    wall = max(p["end"] for p in timed) - min(p["start"] for p in timed)
    walls = sum(p["end"] - p["start"] for p in timed)
    cpu = sum(p["cpu_s"] for p in timed)
    rec.update(wall_s=round(wall, 2), peak_rss_mib=max(p["peak_rss_mib"] for p in timed), cpu_s=round(cpu, 2),
               start_spread_s=round(max(p["start"] for p in timed) - min(p["start"] for p in timed), 3),
               rows_per_s_per_process=rows / walls if walls else None, rows_per_cpu_s=rows / cpu if cpu else None)
    paper_rows = rows * PAPER_DOCS / documents
    # an array stage with some tasks failed is still timed on the rows the others wrote (its exit≠0 says so)
    if rows and (failed == 0 or kind == "array" and failed < len(procs)):
        rec["paper_hours"] = (paper_rows / rec["rows_per_cpu_s"] / PAPER_TASKS if kind == "array"
                              else paper_rows / (rows / wall)) / 3600
    return rec


def run_rephrase(sc, logs: Path) -> list[dict]:
    """--tasks rephrase processes started at the same instant against the stand-in server; the ranks that
    failed are then started once more together (as a requeue would), recorded as a stage of their own."""
    a = sc.args
    records = []
    with ZeroServer(processes=a.server_processes, vary=True) as server:
        sc.url = server.url
        ranks = list(range(sc.tasks))
        for attempt in ("rephrase", "rephrase (rerun of failed tasks)"):
            cpu0, before = server.cpu_seconds(), run_rows(sc.out)
            prefix = "rephrase" if attempt == "rephrase" else "rephrase-rerun"
            procs = run_measured([sc.rephrase(r) for r in ranks], [logs / f"{prefix}-{r}.log" for r in ranks],
                                 logs / "go", a.stage_timeout)
            for r, p in zip(ranks, procs):
                p["rank"] = r
            rec = summarize(attempt, "array", procs, run_rows(sc.out) - before, sc.documents)
            rec["server_cpu_s"] = round(server.cpu_seconds() - cpu0, 2)
            records.append(rec)
            ranks = [p["rank"] for p in procs if p["exit"] != 0]
            if not ranks or attempt != "rephrase":
                break
    return records


def add_fixed(rec: dict, fixed_s: float, documents: int):
    """An array stage with a part that does not split over the paper's tasks: `fixed_s` seconds at this scale,
    extrapolated by rows and not divided by the tasks, added to the paper's hours of the part that splits."""
    rec["fixed_s"] = round(fixed_s, 3)
    if rec["paper_hours"] is not None:
        rec["paper_hours_split"] = rec["paper_hours"]
        rec["paper_hours_fixed"] = fixed_s * PAPER_DOCS / documents / 3600
        rec["paper_hours"] += rec["paper_hours_fixed"]


# -- dedup --tasks --workers ------------------------------------------------------------------------------------


def dedup_fixed_stages(out: Path, tasks: int) -> list[dict]:
    """The datatrove stages of a finished dedup in `out` whose task count is not --tasks (exact find, near
    clusters and finalize: 1 task; near buckets: --buckets tasks), from each stage's executor.json, and their
    work: the summed step times of datatrove's stats.json (the tasks' own time, without process start-up)."""
    stages = []
    for ex in sorted((out / ".dedup").rglob("logs/*/executor.json")):
        n, stats = json.loads(ex.read_text()).get("tasks"), ex.parent / "stats.json"
        if not n or n == tasks or not stats.exists():
            continue
        work = sum(s["time_stats"]["total"] for s in json.loads(stats.read_text())
                   if isinstance(s.get("time_stats"), dict))
        stages.append({"stage": str(ex.parent.relative_to(out / ".dedup")).replace("logs/", ""), "tasks": n,
                       "work_s": round(work, 3)})
    return stages


def run_dedup_tasks(sc, logs: Path) -> dict:
    """`finephrase dedup RUN --output OUT --tasks T --workers W` (T: the rehearsal's tasks, W: this machine's CPUs)
    as one measured process. The paper's hours: its CPU (all its processes) / 100 tasks, plus the stages that
    keep their task count (their work / their tasks, not divided: the chains of the prompts one after another,
    as the command runs them)."""
    workers = len(os.sched_getaffinity(0))
    cmd = finephrase_cmd("dedup", sc.out, "--output", sc.dedup, "--tasks", sc.tasks, "--workers", workers)
    (proc,) = run_measured([cmd], [logs / "dedup-0.log"], None, sc.args.stage_timeout)
    rec = summarize("dedup", "array", [proc], sc.rows("dedup"), sc.documents)
    fixed = dedup_fixed_stages(sc.dedup, sc.tasks) if proc["exit"] == 0 else []
    rec.update(form=f"1 process, --tasks {sc.tasks} -w {workers}", fixed_stages=fixed)
    if proc["exit"] == 0 and not fixed:
        rec["note"] = "no per-stage stats found in OUT/.dedup: all of its CPU assumed to split over the tasks"
    add_fixed(rec, sum(f["work_s"] / f["tasks"] for f in fixed), sc.documents)
    return rec


# -- mix as a SLURM array ----------------------------------------------------------------------------------------


def check_mix(folder: Path) -> dict:
    """What docs/mixing.md promises of a finished mix: OUT/mix.json, and OUT/train/ holding its rows (> 0)."""
    meta = folder / "mix.json"
    if not meta.exists():
        return {"ok": False, "problem": f"no mix.json after {MIX_ROUNDS} rounds at most", "plan_s": 0.0}
    d = json.loads(meta.read_text())
    rows, said = parquet_rows(folder, "train"), d.get("totals", {}).get("rows")
    ok = rows > 0 and said == rows
    return {"ok": ok, "train_rows": rows, "mix_json_rows": said, "plan_s": d.get("timing", {}).get("plan_s") or 0.0,
            "problem": None if ok else f"mix.json says {said} rows, train/ holds {rows}"}


def _last_line(log: Path) -> str | None:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    return lines[-1][:240] if lines else None


def run_mix_array(sc, logs: Path, flags: set[str]) -> dict:
    """mix's SLURM array form: the same --tasks processes `mix ... --rank R --tasks T` started together, round
    after round (as the array submitted again after the one before) until mix.json exists, at most MIX_ROUNDS.
    --workers 1 when it takes it (a core per task). Recorded as one array stage: every round's processes."""
    workers = ["--workers", 1] if "--workers" in flags else []
    procs, rounds = [], []
    for n in range(1, MIX_ROUNDS + 1):
        ranks = range(sc.tasks)
        got = run_measured([sc.mix_cmd("--rank", r, "--tasks", sc.tasks, *workers) for r in ranks],
                           [logs / f"mix-round-{n}-{r}.log" for r in ranks], logs / "go", sc.args.stage_timeout)
        for r, p in zip(ranks, got):
            p.update(rank=r, round=n)
        procs += got
        timed = [p for p in got if p["start"] is not None]
        rounds.append({"round": n, "failed": sum(1 for p in got if p["exit"] != 0),
                       "wall_s": round(max(p["end"] for p in timed) - min(p["start"] for p in timed), 2)
                       if timed else None, "cpu_s": round(sum(p["cpu_s"] for p in timed), 2),
                       "task_0_said": _last_line(logs / f"mix-round-{n}-0.log")})
        if rounds[-1]["failed"] or (sc.mix / "mix.json").exists():
            break
    rec = summarize("mix", "array", procs, sc.rows("mix"), sc.documents)
    check = check_mix(sc.mix)
    rec.update(form=f"array x{sc.tasks}, {len(rounds)} rounds", rounds=rounds, output_check=check,
               wall_s=round(sum(r["wall_s"] or 0 for r in rounds), 2))
    if check["ok"]:
        add_fixed(rec, check["plan_s"], sc.documents)  # the plan: written by one task while the others wait
    else:
        rec.update(failed=max(rec["failed"], 1), paper_hours=None, errors=rec["errors"] + [check["problem"]])
    return rec
