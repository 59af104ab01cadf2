"""Classifier models that score a text's quality; the steps that use them live in finephrase/pipeline/score/.

Two kinds, as the FinePhrase paper scores source documents and their rephrasings:

- `FastTextScorer` (fasttext_scorer.py): a DCLM-style fastText classifier; the score is the probability of one of
  its labels (`__label__hq` by default). Needs `pip install 'finephrase[scores]'`.
- `HfScorer` (hf_scorer.py): a Hugging Face sequence-classification model such as the FineWeb-Edu classifier; the
  score is its regression output (`num_labels == 1`) or the probability of one label. Needs
  `pip install 'finephrase[scores-hf]'` (torch and transformers).

`parse_spec` (spec.py) reads a classifier as a user writes it on a command line (`edu=hf:PATH`,
`dclm=fasttext:PATH#__label__hq`), `load_scorer` turns it into a scorer. A scorer loads its model on first use and
pickles without it, so datatrove can ship it to its executors.
"""

from finephrase.scoring.fasttext_scorer import FastTextScorer
from finephrase.scoring.hf_scorer import HfScorer
from finephrase.scoring.spec import KINDS, NAME_PATTERN, ClassifierSpec, check_name, load_scorer, parse_spec

__all__ = ["KINDS", "NAME_PATTERN", "ClassifierSpec", "FastTextScorer", "HfScorer", "check_name", "load_scorer",
           "parse_spec"]
