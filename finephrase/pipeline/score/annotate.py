"""`ScoreAnnotator`: the pipeline step that scores each document's text with one or more quality classifiers and
writes the scores into its metadata (`score_<name>`, a float), for statistics and for `ScoreFilter`.

    ScoreAnnotator(["dclm=fasttext:models/dclm.bin", "edu=hf:HuggingFaceFW/fineweb-edu-classifier"])
    ScoreAnnotator({"dclm": "fasttext:models/dclm.bin#__label__hq", "mine": FastTextScorer("m.bin")})

It never drops a document: every document it reads goes downstream, scored. Documents are scored `batch_size` at
a time (one batch in memory); the classifiers' models load in each task on first use. The step's stats count the
documents and batches scored and keep each score's mean, min and max (`score_<name>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from finephrase.argtypes import repeated_names
from finephrase.errors import UsageError
from finephrase.scoring import ClassifierSpec, check_name, load_scorer, parse_spec


def _scorer(name: str, value):
    """A scorer from what a user gave for `name`: a spec (`fasttext:PATH` or a ClassifierSpec) or a scorer."""
    if isinstance(value, str):
        return load_scorer(parse_spec(f"{name}={value}"))
    if isinstance(value, ClassifierSpec):
        return load_scorer(value)
    if callable(getattr(value, "score", None)):
        return value
    raise UsageError(f"classifier {name!r}: give a spec (fasttext:PATH, hf:MODEL) or an object with score(texts), "
                     f"not {type(value).__name__}")


def build_scorers(classifiers) -> dict:
    """{name: scorer} from a mapping {name: spec or scorer} or a list of `NAME=KIND:PATH` specs (or
    ClassifierSpecs)."""
    if isinstance(classifiers, (str, ClassifierSpec)):
        classifiers = [classifiers]
    if isinstance(classifiers, Mapping):
        items = [(check_name(name), value) for name, value in classifiers.items()]
    elif isinstance(classifiers, Iterable):
        specs = [c if isinstance(c, ClassifierSpec) else parse_spec(c) for c in classifiers]
        items = [(s.name, s) for s in specs]
    else:
        raise UsageError(f"classifiers: give a list of NAME=KIND:PATH specs or a dict, not "
                         f"{type(classifiers).__name__}")
    names = [name for name, _ in items]
    if not names:
        raise UsageError("ScoreAnnotator needs at least one classifier (NAME=fasttext:PATH or NAME=hf:MODEL)")
    if dupes := repeated_names(names):
        raise UsageError(f"two classifiers are named {', '.join(dupes)}: each name is a column (score_NAME)")
    return {name: _scorer(name, value) for name, value in items}


class ScoreAnnotator(PipelineStep):
    name = "📏 Score"
    type = "📊 - STATS"

    def __init__(self, classifiers, batch_size: int = 1024):
        super().__init__()
        if batch_size < 1:
            raise UsageError(f"ScoreAnnotator batch_size must be positive, got {batch_size}")
        self.scorers = build_scorers(classifiers)
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data is None:
            return
        for batch in batched(data, self.batch_size):
            texts = [doc.text or "" for doc in batch]
            with self.track_time("batch"):
                scores = {name: scorer.score(texts) for name, scorer in self.scorers.items()}
            self.stat_update("batches")
            for name, values in scores.items():
                if len(values) != len(batch):
                    raise RuntimeError(f"classifier {name} returned {len(values)} scores for {len(batch)} texts")
                column = f"score_{name}"
                for doc, value in zip(batch, values):
                    doc.metadata[column] = value = float(value)
                    self.stat_update(column, value=value)
            self.stat_update("scored", value=len(batch), unit="batch")
            yield from batch
