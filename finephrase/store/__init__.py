"""The run folder on disk: its paths and durable writes (`layout.py`), the locks that let a hundred tasks share it
(`locks.py`), each task's commit ledger (`ledger.py`) and the input range of each committed chunk
(`task_ranges.py`), the rows' schema (`schema.py`), which data files a folder commits (`datafiles.py`), what kind
of folder a path is (`folders.py`) and the shard sizes the Hub accepts (`hub_limits.py`).

Nothing here knows about models, prompts or pipelines: everything else builds on it.
"""
