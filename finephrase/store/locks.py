"""The two locks of a run folder, for a hundred tasks that start in the same second on one shared filesystem.

- `folder_lock(DIR)`: short critical sections (create or join the manifest, finalize it, plan a compaction).
- `TaskLock(DIR, rank)`: one process per task (rank) for as long as the task runs.

Both are an exclusive `flock` where the filesystem has one (local disks, NFSv4, Lustre mounted with `flock`,
GPFS): the kernel drops it when its process dies, so a crashed, killed or requeued task never meets a stale lock.
Where `flock` is refused (Lustre mounted without the option answers ENOSYS; some NFS setups ENOLCK), or when
`FINEPHRASE_LOCK=file` says so, the lock is a *holder file* created atomically (`O_CREAT | O_EXCL`, atomic on
NFSv3+, Lustre and GPFS) that records who holds it: host, pid, SLURM job and restart count. A holder file is
broken (renamed away atomically, so only one waiter breaks it) when its holder is known to be gone: a dead pid on
this host; the same SLURM job at an earlier attempt (a requeued task keeps its job id, and SLURM starts the new
attempt only after the old one ended); a SLURM job that `squeue` no longer lists; or, for the folder lock, a
holder file older than FOLDER_LOCK_STALE_S (its critical sections last milliseconds).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import subprocess
import time
from pathlib import Path

import orjson

from finephrase.errors import FinephraseError

# flock refused by the filesystem (not "held by someone else")
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
FOLDER_LOCK_STALE_S = 120.0  # a folder lock's holder file older than this is a crashed holder's
ASK_SLURM_AFTER_S = 10.0  # squeue is asked about a folder lock's holder only once its file is this old
FOLDER_LOCK_WAIT_S = 900.0  # waiting longer than this for the folder lock is an error (one line)


def flock_wanted() -> bool:
    return os.environ.get("FINEPHRASE_LOCK", "flock") != "file"


def try_flock(fh, blocking: bool) -> bool | None:
    """flock `fh` exclusively: True when held, False when another process holds it (non-blocking only), None when
    the filesystem has no flock (or FINEPHRASE_LOCK=file)."""
    if not flock_wanted():
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_FLOCK:
            return None
        raise


# -- holder files ---------------------------------------------------------------------------------------------


def holder_record() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": os.environ.get("SLURM_JOB_ID"),
            "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0), "time": time.time()}


def describe_holder(record: dict) -> str:
    job = f", SLURM job {record['job']}" if record.get("job") else ""
    return f"pid {record.get('pid')} on {record.get('host')}{job}"


def _read_holder(path: Path) -> dict | None:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        return {}  # being written, or torn by a crash: judged by its age


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


def _job_listed(job: str) -> bool | None:
    """Whether SLURM still lists `job` (None: no squeue here to ask)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%i"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return False if "Invalid job id" in out.stderr else None
    return bool(out.stdout.strip())


def holder_gone(record: dict, age_s: float, max_age_s: float | None) -> bool:
    """True when the holder of a holder file is known to be gone (see the module's docstring)."""
    if not record:
        return max_age_s is not None and age_s > max_age_s or age_s > FOLDER_LOCK_STALE_S
    me = holder_record()
    if record.get("host") == me["host"] and not _pid_alive(record.get("pid")):
        return True
    if record.get("job") and record["job"] == me["job"] and record.get("restart", 0) < me["restart"]:
        return True
    if max_age_s is not None and age_s > max_age_s:
        return True
    if max_age_s is not None and age_s < ASK_SLURM_AFTER_S:
        return False  # a short lock's holder file, just written: no squeue storm from a hundred waiting tasks
    return bool(record.get("job")) and record["job"] != me["job"] and _job_listed(record["job"]) is False


def try_hold(path: Path, max_age_s: float | None) -> tuple[bool, dict | None]:
    """Create the holder file `path` if nobody holds it (breaking a gone holder's first): (True, None), or
    (False, the holder's record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            record = _read_holder(path)
            if record is None:
                continue  # released meanwhile: try again
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if not holder_gone(record, age, max_age_s):
                return False, record
            broken = path.with_name(f"{path.name}.broken.{os.getpid()}.{random.getrandbits(32):08x}")
            with contextlib.suppress(FileNotFoundError):  # another waiter broke it first
                os.rename(path, broken)
                broken.unlink()
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(holder_record()))
            f.flush()
            os.fsync(f.fileno())
        return True, None
    return False, _read_holder(path) or {}


def release(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# -- the folder lock ------------------------------------------------------------------------------------------

FOLDER_LOCK = ".lock"  # the flock file
FOLDER_LOCK_HOLDER = ".lock.holder"  # the holder file where there is no flock


@contextlib.contextmanager
def folder_lock(folder: Path):
    """Serialize short updates of `folder` between the tasks of one run (SLURM array tasks start together)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / FOLDER_LOCK, "a") as fh:
        if try_flock(fh, blocking=True):
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
            return
    holder = folder / FOLDER_LOCK_HOLDER
    deadline = time.monotonic() + FOLDER_LOCK_WAIT_S
    while True:
        held, record = try_hold(holder, FOLDER_LOCK_STALE_S)
        if held:
            break
        if time.monotonic() > deadline:
            raise FinephraseError(f"{folder} stayed locked for {FOLDER_LOCK_WAIT_S:.0f} s by {describe_holder(record)}"
                                  f": if that process is gone, delete {holder}")
        time.sleep(random.uniform(0.01, 0.1))
    try:
        yield
    finally:
        release(holder)


# -- one process per task -------------------------------------------------------------------------------------


class TaskLock:
    """Only one process works on a task (rank) at a time: `.ledger/rank_RRRRR.lock`, held while the task runs.
    A second process on the same rank (a manual resubmit while the old job still runs) fails at once instead of
    committing the same chunks twice; a crashed or requeued task's lock is never in the way of its next attempt."""

    def __init__(self, output_dir: str | Path, rank: int, folder: str = ".ledger"):
        self.path = Path(output_dir) / folder / f"rank_{rank:05d}.lock"
        self.rank = rank
        self._fh = None
        self._holder: Path | None = None

    def _refuse(self, holder: str):
        raise FinephraseError(f"task {self.rank} is already running ({holder}): stop that one first "
                              f"(e.g. scancel), then resubmit")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        held = try_flock(fh, blocking=False)
        if held is False:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            self._refuse(holder)
        if held is None:  # no flock here: a holder file beside it
            fh.close()
            self._holder = self.path.with_name(self.path.name + ".holder")
            ok, record = try_hold(self._holder, None)
            if not ok:
                self._holder = None
                self._refuse(describe_holder(record or {}))
            return self
        fh.seek(0)
        fh.truncate()
        fh.write(describe_holder(holder_record()) + "\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc):
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._holder is not None:
            release(self._holder)
            self._holder = None
