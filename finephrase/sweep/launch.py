"""Doing a sweep's points: one sbatch array job each (`submit`), or one run after another here (`run_locally`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

from finephrase.errors import FinephraseError, UsageError
from finephrase.sweep.definition import label
from finephrase.sweep.point import Point
from finephrase.sweep.state import SUBMISSIONS

_REPOSITORY = Path(__file__).resolve().parents[2]  # finephrase/sweep/launch.py -> the checkout holding slurm/


def find_script(arg: str | None) -> str:
    """The sbatch script: --script, else slurm/rephrase.sh here, else the repository's."""
    if arg:
        if not Path(arg).is_file():
            raise UsageError(f"sbatch script {arg} does not exist")
        return arg
    if Path("slurm/rephrase.sh").is_file():
        return "slurm/rephrase.sh"
    repo = _REPOSITORY / "slurm" / "rephrase.sh"
    if repo.is_file():
        return str(repo)
    raise UsageError("slurm/rephrase.sh not found: run from the repository root or pass --script")


def sbatch_command(p: Point, script: str, extra: list[str]) -> list[str]:
    # --array always: the script's own #SBATCH --array=0-99 would otherwise start 100 tasks
    return ["sbatch", "--parsable", f"--array=0-{p.tasks - 1}", f"--job-name=fp-{label(p.key.replace('/', '-'))}",
            *extra, script, *p.rephrase_args(for_slurm=True)]


def submit(commands: list[tuple[Point, list[str]]], root: Path, sweep_file: str) -> list[str]:
    """Run each sbatch command and record the job in ROOT/.sweep/submissions.jsonl; the keys that failed."""
    if shutil.which("sbatch") is None:
        raise UsageError("sbatch not found: submit from a SLURM login node (or use --local)")
    failed = []
    log = root / SUBMISSIONS
    log.parent.mkdir(parents=True, exist_ok=True)
    for p, cmd in commands:
        r = subprocess.run(cmd, capture_output=True, text=True)
        job = r.stdout.strip().split(";")[0].strip() if r.returncode == 0 else ""
        if not job:
            print(f"error: sbatch failed for {p.key} (exit {r.returncode}): {(r.stderr or r.stdout).strip()}",
                  file=sys.stderr)
            failed.append(p.key)
            continue
        with open(log, "ab") as f:
            f.write(orjson.dumps({"point": p.key, "job_id": job, "tasks": p.tasks, "output": str(p.output),
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "sweep": sweep_file, "command": cmd}) + b"\n")
        print(f"submitted {p.key}: job {job} ({p.tasks} task{'s' if p.tasks > 1 else ''})")
    return failed


def run_locally(todo: list[Point]) -> list[str]:
    """Run the points one after another (a drain stops after the current one); the keys that did not finish."""
    from finephrase.process.drain import DRAIN, Drained
    from finephrase.run.runner import execute

    failed = []
    for i, p in enumerate(todo, 1):
        print(f"[sweep] {i}/{len(todo)} {p.key} -> {p.output}", file=sys.stderr)
        try:
            ok = execute(p.config())["status"] == "finished"
        except Drained:
            raise
        except FinephraseError as e:
            print(f"error: {p.key}: {e}", file=sys.stderr)
            ok = False
        except Exception as e:  # a task failed: one line, the traceback is in the run's task logs
            print(f"error: {p.key}: {type(e).__name__}: {e} (task logs: {p.output}/logs/logs/)", file=sys.stderr)
            ok = False
        if not ok:
            failed.append(p.key)
        if DRAIN.is_set():
            raise Drained(f"sweep stopped after {p.key}")
    print(f"sweep: {sum(p.key not in failed for p in todo)} of {len(todo)} runs finished", file=sys.stderr)
    return failed
