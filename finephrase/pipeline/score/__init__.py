"""The quality-score steps of a pipeline: `ScoreAnnotator` (annotate.py) scores each document with classifiers
(finephrase/scoring/) into `score_<name>`, `ScoreFilter` (filter.py) keeps the documents whose score is within
bounds.

    from finephrase.pipeline.score import ScoreAnnotator, ScoreFilter

    [..., ScoreAnnotator(["dclm=fasttext:models/dclm.bin"]), ScoreFilter("dclm", min=0.018112), ...]
"""

from finephrase.pipeline.score.annotate import ScoreAnnotator, build_scorers
from finephrase.pipeline.score.filter import ScoreFilter

__all__ = ["ScoreAnnotator", "ScoreFilter", "build_scorers"]
