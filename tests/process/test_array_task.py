"""One rule for a process's share of a job, in every stage (finephrase/process/array_task.py), in-process."""

import orjson
import pytest

from finephrase.errors import UsageError
from finephrase.process.array_task import share_from_flags, task_of
from finephrase.run.runner import slurm_task

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT",
              "FINEPHRASE_RANK", "FINEPHRASE_TASKS")


@pytest.fixture
def array(monkeypatch):
    """Set the environment of one task of a SLURM array: array(task, low, high, count)."""
    for name in SLURM_VARS:
        monkeypatch.delenv(name, raising=False)

    def task(index: int, low: int, high: int, count: int):
        for name, value in zip(SLURM_VARS, (index, low, high, count)):
            monkeypatch.setenv(name, str(value))

    return task


def test_outside_an_array_the_whole_job_or_the_flags(array):
    assert task_of(None, None) == (0, 1)
    assert task_of(None, 4) == (0, 4)
    assert task_of(2, 4) == (2, 4)
    assert slurm_task() == {}
    with pytest.raises(UsageError, match="pass --tasks N"):
        task_of(2, None)
    with pytest.raises(UsageError, match=r"--rank 4 is outside 0..3"):
        task_of(4, 4)


def test_a_whole_array_from_zero_gives_its_index_and_size(array):
    array(5, 0, 15, 16)
    assert task_of(None, None) == (5, 16)
    assert slurm_task() == {"rank": 5, "tasks": 16}
    assert share_from_flags("auto", None) == (5, 16)
    assert task_of(None, 32) == (5, 32)  # --tasks says otherwise


def test_a_resubmitted_part_keeps_the_runs_numbering(array, tmp_path):
    """`sbatch --array=3,7` after a run of 16: tasks 3 and 7, of 16 (the run's manifest, or --tasks)."""
    array(7, 3, 7, 2)
    (tmp_path / "manifest.json").write_bytes(orjson.dumps({"config": {"tasks": 16}}))
    assert slurm_task(tmp_path) == {"rank": 7, "tasks": 16}
    assert task_of(None, None, recorded_tasks=16) == (7, 16)
    assert task_of(None, 16) == (7, 16)
    with pytest.raises(UsageError, match="not a whole array from 0"):
        task_of(None, None)  # its own size (2, or 8) is not the run's


def test_an_array_from_one_is_not_taken_for_a_run_of_its_size(array):
    """`--array=1-8`: the same rank in every stage (rephrase, compact, mix, gate), never index minus MIN."""
    array(1, 1, 8, 8)
    with pytest.raises(UsageError, match="tasks 1..8 .8 of them.*pass --tasks N"):
        task_of(None, None)
    assert task_of(None, 9) == (1, 9)


def test_finephrase_rank_and_tasks_override_the_array(array, monkeypatch):
    array(3, 0, 3, 4)
    monkeypatch.setenv("FINEPHRASE_RANK", "1")
    monkeypatch.setenv("FINEPHRASE_TASKS", "2")
    assert task_of(None, None) == (1, 2) and slurm_task() == {"rank": 1, "tasks": 2}
    monkeypatch.setenv("FINEPHRASE_RANK", "x")
    with pytest.raises(UsageError, match="FINEPHRASE_RANK='x' is not a task number"):
        task_of(None, None)
