"""`finephrase score SOURCE --classifiers SPEC... --output OUT [--sources]`: quality scores of a run's rows and,
with --sources, of the source documents they were written from, for the card (`--scores OUT`) and the report.

Stages (each a datatrove pipeline, see stages.py): rows (each row's text scored, --tasks), sources (the run's
inputs read again and scored, the run's tasks), join (one task per hash bucket of source_id: a row's score beside
its source's, memory bounded by a bucket), finalize (every row scored exactly once; OUT/scores.json, written last).
The classifiers: finephrase/scoring/. A pipeline can also score and filter on the way: ScoreAnnotator and
ScoreFilter (finephrase/pipeline/score/).
"""

from finephrase.score.command import add_parser, main
from finephrase.score.plan import SCORES_FILE, WORK_DIR, ScorePlan
from finephrase.score.render import render_summary, score_line

__all__ = ["SCORES_FILE", "WORK_DIR", "ScorePlan", "add_parser", "main", "render_summary", "score_line"]
