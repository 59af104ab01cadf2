"""The process itself: signals and the drain they start (`drain.py`), child processes that die with their
parent (`children.py`), console logging (`console.py`) and which share of an array this process is
(`array_task.py`: flags or SLURM's variables).
"""
