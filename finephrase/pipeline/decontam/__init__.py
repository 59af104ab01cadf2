"""Steps of `finephrase decontaminate`: the benchmarks' n-gram index (BuildIndex), the run's source documents
that already overlap (FindInSources, after the run's reader), each data file split into kept and removed (or
flagged) rows (DecontaminateFiles), and the check and manifest (FinalizeDecontam). The n-grams and the index
themselves: finephrase/contamination/. `finephrase.decontam.stages` puts them into each stage's list
(`pipelines/decontaminate.py` spells the same lists out; docs/decontamination.md)."""

from finephrase.pipeline.decontam.build_index import BuildIndex, index_settings
from finephrase.pipeline.decontam.common import (
    INDEX_DIR,
    REASON_PREFIX,
    REMOVED_SCHEMA,
    SOURCES_DIR,
    WORK_DIR,
    reason,
)
from finephrase.pipeline.decontam.finalize import FinalizeDecontam
from finephrase.pipeline.decontam.find_sources import FindInSources
from finephrase.pipeline.decontam.split_files import DecontaminateFiles

__all__ = ["BuildIndex", "DecontaminateFiles", "FinalizeDecontam", "FindInSources", "INDEX_DIR", "REASON_PREFIX",
           "REMOVED_SCHEMA", "SOURCES_DIR", "WORK_DIR", "index_settings", "reason"]
