"""Compaction: a finished run's chunk files rewritten into Hub-sized shards, exactly once (`finephrase compact`).

- plan.py: which source files go into which shard (the same plan for every task);
- write.py: writing one shard (streamed, row groups, statistics; tmp, fsync, rename);
- core.py: the tasks, the done logs (the commit point), the totals check and OUT's manifest;
- source.py: what can be compacted; command.py: the command.
"""

from finephrase.argtypes import parse_size  # noqa: F401
from finephrase.compact.command import compact_folder  # noqa: F401
from finephrase.compact.core import compact  # noqa: F401
from finephrase.compact.plan import DEFAULT_TARGET_BYTES, Shard, make_plan  # noqa: F401
from finephrase.store.compacted import done_shards  # noqa: F401
