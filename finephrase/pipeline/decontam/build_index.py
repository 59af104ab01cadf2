"""BuildIndex: the first stage of a decontamination (one task): the benchmarks' n-gram index, built once into
OUT/.decontam/index/ and read by every task after it. Skipped when an index with the same settings is there."""

from __future__ import annotations

from pathlib import Path

import orjson
from datatrove.pipeline.base import PipelineStep

from finephrase.contamination.benchmarks import BenchmarkSpec, load_benchmark, parse_spec
from finephrase.contamination.index import DEFAULTS, INFO_FILE, NgramIndex
from finephrase.contamination.ngrams import HASH_VERSION


def _specs(benchmarks: list) -> list[BenchmarkSpec]:
    return [b if isinstance(b, BenchmarkSpec) else parse_spec(b) for b in benchmarks]


def index_settings(benchmarks: list, n: int, boilerplate_share: float, boilerplate_min: int) -> dict:
    """What an index is built from (compared with a saved index's: equal means reuse it)."""
    return {"benchmarks": [s.describe() for s in _specs(benchmarks)], "n": n, "hash_version": HASH_VERSION,
            "boilerplate_share": boilerplate_share, "boilerplate_min": boilerplate_min}


class BuildIndex(PipelineStep):
    type = "🧼 - DECONTAM"
    name = "📇 benchmark n-gram index"

    def __init__(self, benchmarks: list, folder: str, n: int = DEFAULTS["n"],
                 boilerplate_share: float = DEFAULTS["boilerplate_share"],
                 boilerplate_min: int = DEFAULTS["boilerplate_min"]):
        """benchmarks: specs (`NAME=PATH[#LAYOUT]`, see contamination/benchmarks.py) or BenchmarkSpec objects;
        folder: where the index goes (OUT/.decontam/index)."""
        super().__init__()
        self.specs = _specs(benchmarks)
        self.folder = str(folder)
        self.settings = index_settings(self.specs, n, boilerplate_share, boilerplate_min)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        info = Path(self.folder) / INFO_FILE
        if info.is_file() and orjson.loads(info.read_bytes()).get("settings") == self.settings:
            return
        with self.track_time():
            index = NgramIndex.build([load_benchmark(s) for s in self.specs], self.settings["n"],
                                     self.settings["boilerplate_share"], self.settings["boilerplate_min"])
            index.info["settings"] = self.settings
            index.save(self.folder)
        self.stat_update("ngrams", value=index.info["ngrams"])
