"""The scoring stages of `finephrase score` that run the classifiers: ScoreRows (each published row's text, file by
file) and ScoreSources (each source document, after the run's own reader). Both write their scores into hash
buckets of `source_id` (buckets.py) for JoinScores; memory is one batch and the open bucket files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from finephrase.pipeline.score.annotate import build_scorers
from finephrase.pipeline.score.buckets import BucketWriters
from finephrase.store.datafiles import prompt_files

WORK_DIR = ".score"  # OUT/.score: rows/ and sources/ by bucket, stats/, datatrove's logs and completion markers


def rows_schema(names: list[str]) -> pa.Schema:
    return pa.schema([pa.field("id", pa.string()), pa.field("source_id", pa.string()),
                      pa.field("prompt", pa.string()), *[pa.field(f"score_{n}", pa.float64()) for n in names]])


def sources_schema(names: list[str]) -> pa.Schema:
    return pa.schema([pa.field("source_id", pa.string()),
                      *[pa.field(f"score_{n}_source", pa.float64()) for n in names]])


class _Scoring(PipelineStep):
    type = "📊 - STATS"

    def __init__(self, output: str, classifiers: list[str], buckets: int, batch_size: int = 1024):
        """output: OUT (the work folder is OUT/.score); classifiers: `NAME=KIND:PATH` specs (finephrase/scoring);
        buckets: how many hash buckets of source_id (the same number in every stage)."""
        super().__init__()
        self.output, self.classifiers = str(output), list(classifiers)
        self.buckets, self.batch_size = buckets, batch_size

    def _score(self, scorers: dict, texts: list[str], suffix: str = "") -> dict:
        with self.track_time("batch"):
            return {f"score_{n}{suffix}": pa.array(s.score(texts), pa.float64()) for n, s in scorers.items()}


class ScoreRows(_Scoring):
    name = "📏 score rows"

    def __init__(self, source: str, output: str, prompts: list[str], classifiers: list[str], buckets: int,
                 batch_size: int = 1024):
        super().__init__(output, classifiers, buckets, batch_size)
        self.source, self.prompts = str(source), list(prompts)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        scorers = build_scorers(self.classifiers)
        out = BucketWriters(Path(self.output) / WORK_DIR / "rows", rank, self.buckets, rows_schema(list(scorers)))
        try:
            for prompt, path in prompt_files(Path(self.source), self.prompts)[rank::world_size]:
                pf = pq.ParquetFile(path)
                for batch in pf.iter_batches(batch_size=self.batch_size, columns=["id", "source_id", "text"]):
                    scores = self._score(scorers, batch.column("text").to_pylist())
                    out.write(pa.table({"id": batch.column("id"), "source_id": batch.column("source_id"),
                                        "prompt": pa.array([prompt] * batch.num_rows, pa.string()), **scores}),
                              "source_id")
                    self.stat_update("rows", value=batch.num_rows)
        except BaseException:
            out.abort()
            raise
        out.commit()


class ScoreSources(_Scoring):
    name = "📏 score sources"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        scorers = build_scorers(self.classifiers)
        out = BucketWriters(Path(self.output) / WORK_DIR / "sources", rank, self.buckets,
                            sources_schema(list(scorers)))
        try:
            for docs in batched(data or (), self.batch_size):
                scores = self._score(scorers, [d.text or "" for d in docs], "_source")
                out.write(pa.table({"source_id": pa.array([str(d.id) for d in docs], pa.string()), **scores}),
                          "source_id")
                self.stat_update("documents", value=len(docs))
        except BaseException:
            out.abort()
            raise
        out.commit()
