"""Where each point of a sweep stands: no run yet, an unfinished run to resume, or nothing to do (and why); and the
submissions recorded in ROOT/.sweep/submissions.jsonl, with whether their jobs are still queued or running."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from finephrase.sweep.point import Point

SUBMISSIONS = Path(".sweep") / "submissions.jsonl"


@dataclass
class State:
    action: str  # "new" | "resume" | "skip"
    reason: str
    problem: bool = False  # skipped because something needs a decision (other settings, job still active)


def _comparable(fp: dict, model_known: bool) -> dict:
    fp = {k: v for k, v in fp.items() if k != "input_files"}
    if not model_known:
        fp.pop("model", None)
    return fp


def submissions(root: Path) -> dict[str, list[dict]]:
    """Recorded submissions by point key (ROOT/.sweep/submissions.jsonl), oldest first."""
    out: dict[str, list[dict]] = {}
    f = root / SUBMISSIONS
    if f.exists():
        for line in f.read_bytes().splitlines():
            if line.strip():
                rec = orjson.loads(line)
                out.setdefault(rec["point"], []).append(rec)
    return out


def active_jobs(job_ids: list[str]) -> set[str] | None:
    """The job ids among `job_ids` that SLURM still has queued or running; None when `squeue` is not available."""
    exe = shutil.which("squeue")
    if exe is None:
        return None
    active = set()
    for job in job_ids:
        try:
            r = subprocess.run([exe, "-h", "-j", job, "-o", "%i"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode == 0:
            if r.stdout.strip():
                active.add(job)
        elif "invalid job id" not in (r.stderr + r.stdout).lower():  # e.g. the controller is unreachable
            return None  # gone from the controller's memory is the only other answer that means "not active"
    return active


def point_state(p: Point, submitted: list[dict] | None = None, active: set[str] | None = None) -> State:
    """What a run of `p` would do: start, resume, or nothing (and why)."""
    from finephrase.run.manifest import describe_difference
    from finephrase.store.ledger import LEDGER_DIR

    manifest_path = p.output / "manifest.json"
    last = (submitted or [None])[-1]
    if not manifest_path.exists():
        if p.output.is_dir() and any(x.name != ".lock" for x in p.output.iterdir()) and \
                not (p.output / LEDGER_DIR).exists():
            return State("skip", "the folder exists and is not a finephrase run: move it away", True)
        state = State("new", "no run yet")
    else:
        m = orjson.loads(manifest_path.read_bytes())
        cfg = p.config()
        want = _comparable(cfg.fingerprint([]), cfg.model is not None)
        have = _comparable(m.get("config", {}), cfg.model is not None)
        diff = describe_difference(have, want) if have != want else ""
        status = m.get("status", "?")
        if status == "finished":
            if diff:
                return State("skip", f"finished, but with other settings ({diff}): delete the folder to redo it")
            return State("skip", "finished")
        if diff:
            return State("skip", f"holds an unfinished run with other settings ({diff}): it would be refused; "
                         f"delete the folder or change output_root", True)
        counts = m.get("counts") or {}
        state = State("resume", f"{status}: {counts.get('tasks_finished', 0)}/{m.get('config', {}).get('tasks', '?')} "
                      f"tasks finished")
    if last is not None:
        job = str(last.get("job_id"))
        if active is None:
            return State("skip", f"submitted as job {job} on {last.get('at')} and not finished; squeue could not "
                         f"tell whether it still runs: pass --resubmit once it is gone", True)
        if job in active:
            return State("skip", f"job {job} (submitted {last.get('at')}) is still queued or running", True)
        state.reason += f"; job {job} is gone"
    return state
