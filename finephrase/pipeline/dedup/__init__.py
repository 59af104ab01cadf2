"""Steps of `finephrase dedup` that datatrove does not have: read and write a run's rows unchanged, keep the
removed rows aside with their reason, remember which kept row each duplicate belongs to, and finalize.

The dedup itself is datatrove's: ExactDedupSignature / ExactFindDedups / ExactDedupFilter, then
MinhashDedupSignature / MinhashDedupBuckets / MinhashDedupCluster / MinhashDedupFilter. `finephrase.dedup.stages`
puts them and these steps into each stage's list (`pipelines/dedup.py` spells the same lists out; docs/dedup.md).
"""

from finephrase.pipeline.dedup.common import (
    REASONS,
    REMOVED_SCHEMA,
    STAGED_REMOVED_SCHEMA,
    SplitWords,
    exact_key,
    exact_text,
)
from finephrase.pipeline.dedup.finalize import Finalize
from finephrase.pipeline.dedup.kept_index import KeptIndex
from finephrase.pipeline.dedup.read_rows import RowsReader
from finephrase.pipeline.dedup.remove_files import RemoveFilesForClusters
from finephrase.pipeline.dedup.write_removed import RemovedWriter
from finephrase.pipeline.dedup.write_rows import RowsWriter

__all__ = ["REASONS", "REMOVED_SCHEMA", "STAGED_REMOVED_SCHEMA", "SplitWords", "exact_key", "exact_text",
           "Finalize", "KeptIndex", "RowsReader", "RemoveFilesForClusters", "RemovedWriter", "RowsWriter"]
