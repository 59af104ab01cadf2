"""finephrase/store/locks.py without flock: when a holder file is broken, and when it is not (the concurrent tests in
test_concurrent_start.py run whole arrays with FINEPHRASE_LOCK=file)."""

import os

import pytest

from finephrase.errors import FinephraseError
from finephrase.store import locks


def _holder(**kw) -> dict:
    return {"host": "node-7", "pid": 12345, "job": "777", "restart": 0, "time": 0.0, **kw}


@pytest.fixture
def in_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "555")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.setattr(locks, "_job_listed", lambda job: pytest.fail("squeue must not be asked"))


def test_a_dead_pid_on_this_host_is_gone_a_live_one_is_not(in_job):
    me = locks.holder_record()
    assert not locks.holder_gone({**me, "job": None}, 1.0, None)  # this very process
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    assert locks.holder_gone({**me, "pid": dead, "job": None}, 1.0, None)


def test_a_requeued_task_breaks_its_own_earlier_attempts_lock(in_job):
    assert locks.holder_gone(_holder(job="555", restart=0), 1.0, None)  # same job, earlier attempt
    assert not locks.holder_gone(_holder(job="555", restart=1), 1.0, 120.0)  # same attempt, elsewhere: held


def test_a_short_locks_fresh_holder_is_waited_for_an_old_one_broken(in_job):
    assert not locks.holder_gone(_holder(), 1.0, locks.FOLDER_LOCK_STALE_S)  # no squeue storm while it is fresh
    assert locks.holder_gone(_holder(), locks.FOLDER_LOCK_STALE_S + 1, locks.FOLDER_LOCK_STALE_S)


def test_a_task_lock_of_a_job_slurm_no_longer_lists_is_gone(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "555")
    monkeypatch.setattr(locks, "_job_listed", lambda job: job != "777")
    assert locks.holder_gone(_holder(job="777"), 1.0, None)
    assert not locks.holder_gone(_holder(job="778"), 1.0, None)
    monkeypatch.setattr(locks, "_job_listed", lambda job: None)  # no squeue here: cannot tell, so held
    assert not locks.holder_gone(_holder(job="777"), 1e6, None)


def test_task_lock_with_holder_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FINEPHRASE_LOCK", "file")
    with locks.TaskLock(tmp_path, 3):
        assert (tmp_path / ".ledger" / "rank_00003.lock.holder").is_file()
        with pytest.raises(FinephraseError, match="task 3 is already running"):
            locks.TaskLock(tmp_path, 3).__enter__()
    assert not (tmp_path / ".ledger" / "rank_00003.lock.holder").exists()
    with locks.folder_lock(tmp_path):
        assert (tmp_path / locks.FOLDER_LOCK_HOLDER).is_file()
    assert not (tmp_path / locks.FOLDER_LOCK_HOLDER).exists()
