"""Helper processes die with the process that started them.

A `finephrase` command starts helper processes: datatrove's Manager and pool workers (executor.py), the pools of
`verify` and `recheck`, and the model server (serving/base.py). When the command itself is killed (`kill -9`, the
OOM killer), nothing else stops them; and a helper forked from the command inherits its drain handler (drain.py),
so a plain `kill` of it only sets a flag nobody reads. Each helper therefore asks the kernel for a signal when its
parent exits (Linux `prctl(PR_SET_PDEATHSIG)`), and puts SIGTERM and SIGUSR1 back to their defaults.

The parent-death signal comes when the parent *thread* that created the process exits. A pool worker started by
a forkserver (datatrove's default, and `verify`'s) has the forkserver as its parent, and the forkserver lives as
long as any of its children does (each holds its "alive" pipe), so such a worker instead watches the command
itself from a thread and kills itself when it is gone; the forkserver then exits too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
try:  # loaded here, not in a child between fork and exec (no dynamic loading there)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send `sig` to this process when its parent exits. False where that is not possible (not
    Linux). Safe between fork and exec (Popen's preexec_fn)."""
    return _prctl is not None and _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, as /proc says); None when it does not run (or is a
    zombie). A pid reused by a later process has another start time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` runs (a zombie, dead but not reaped yet, does not); with `started` (_start_time),
    whether that very process does."""
    if os.path.isdir("/proc"):
        now = _start_time(pid)
        return now is not None and (started is None or now == started)
    try:  # no /proc: ask the kernel (a zombie then counts as alive)
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _watch(owner_pid: int, started: str | None, every: float):
    while alive(owner_pid, started):
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGKILL)


def helper_init(owner_pid: int) -> None:
    """The first thing a helper process of the command `owner_pid` does (a pool's or a Manager's initializer):
    default SIGTERM and SIGUSR1 (not the command's drain handler), SIGKILL when its parent exits, and exit at
    once if the parent or the command is gone already (before the request took effect). A helper whose parent is
    not the command (a forkserver's child) also watches the command, every half second."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    parent = os.getppid()
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent or not alive(owner_pid):
        os._exit(1)
    if parent != owner_pid:
        threading.Thread(target=_watch, args=(owner_pid, _start_time(owner_pid), 0.5), name="finephrase-watch",
                         daemon=True).start()
