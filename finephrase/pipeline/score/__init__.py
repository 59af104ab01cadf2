"""The quality-score steps of a pipeline: `ScoreAnnotator` (annotate.py) scores each document with classifiers
(finephrase/scoring/) into `score_<name>`, `ScoreFilter` (filter.py) keeps the documents whose score is within
bounds. The stages of `finephrase score`: ScoreRows and ScoreSources (score_files.py) into hash buckets of
source_id (buckets.py), JoinScores and FinalizeScores (join.py).

    from finephrase.pipeline.score import ScoreAnnotator, ScoreFilter

    [..., ScoreAnnotator(["dclm=fasttext:models/dclm.bin"]), ScoreFilter("dclm", min=0.018112), ...]
"""

from finephrase.pipeline.score.annotate import ScoreAnnotator, build_scorers
from finephrase.pipeline.score.filter import ScoreFilter
from finephrase.pipeline.score.join import SCORES_FILE, FinalizeScores, JoinScores
from finephrase.pipeline.score.score_files import WORK_DIR, ScoreRows, ScoreSources

__all__ = ["SCORES_FILE", "WORK_DIR", "FinalizeScores", "JoinScores", "ScoreAnnotator", "ScoreFilter", "ScoreRows",
           "ScoreSources", "build_scorers"]
