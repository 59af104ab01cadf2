"""Graceful stop ("drain"): on SLURM's warning signal (SIGUSR1, sent ahead of the time limit or a preemption)
and on SIGTERM, a task stops taking new documents, lets the requests in flight finish, commits every complete
chunk (the open chunk is closed early) and exits with DRAINED_EXIT_CODE, without marking itself finished; a
rerun (or `scontrol requeue`) resumes after the last commit. A second signal interrupts at once.
"""

from __future__ import annotations

import threading

from finephrase.errors import FinephraseError

DRAIN = threading.Event()
DRAINED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later


class Drained(FinephraseError):
    """The task stopped early on request; what it committed is kept."""


def drain_on_signals() -> None:
    """SIGTERM and SIGUSR1 start a drain; a second signal interrupts (KeyboardInterrupt). Only in the main thread,
    and only for signals the process does not handle already (a caller's own handlers stay). A process forked
    from this one inherits the handler but not the drain: there the signal does what it does by default."""
    import os
    import signal
    import sys

    owner = os.getpid()

    def on_signal(signum, frame):
        if os.getpid() != owner:  # a forked helper (children.py resets its handlers; this is the safety net)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if DRAIN.is_set():  # second signal: stop now
            raise KeyboardInterrupt
        DRAIN.set()
        print(f"\n{signal.Signals(signum).name}: draining (finishing requests in flight, committing complete "
              f"chunks); signal again to stop at once", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, on_signal)
