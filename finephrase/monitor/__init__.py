"""Watching a run: a task's progress line and snapshot (`progress.py`), its requests in flight (`occupancy.py`),
a note when the engine runs slow (`engine_speed.py`), and the commands that read a run from outside:
`finephrase status` (`status/`), `finephrase report` (`report/`) and `finephrase plan` (`cost_plan.py`).
"""
