"""A classifier as a user writes it on a command line, and the scorer it stands for.

    NAME=fasttext:PATH[#LABEL]        a fastText model file (DCLM's classifier, for one)
    NAME=hf:MODEL_OR_PATH[#INDEX]     a Hugging Face sequence-classification model (FineWeb-Edu's, for one)

NAME (`[a-z][a-z0-9_]*`) names the score: a document gets it as the column `score_NAME`.

Which number is the score:
- fastText: the probability of LABEL (`__label__hq`, or `hq`: the `__label__` prefix is added when the model has
  no label spelled as given). Without `#LABEL`: the model's `__label__hq` if it has one, else the first of its
  labels (in the model's own order: fastText sorts them by training frequency) that is not one of
  `__label__lq`, `__label__low`, `__label__0`.
- Hugging Face: without `#INDEX`, the regression output (logits[:, 0]) of a model with one output
  (`num_labels == 1`, as FineWeb-Edu's), else the softmax probability of the last label; with `#INDEX`, the
  probability of that label (0-based).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from finephrase.errors import UsageError
from finephrase.scoring.fasttext_scorer import FastTextScorer
from finephrase.scoring.hf_scorer import HfScorer

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
KINDS = ("fasttext", "hf")
FORM = "use NAME=fasttext:PATH[#LABEL] or NAME=hf:MODEL_OR_PATH[#LABEL_INDEX], NAME matching [a-z][a-z0-9_]*"


@dataclass(frozen=True)
class ClassifierSpec:
    name: str  # the score's name: the column is score_<name>
    kind: str  # "fasttext" or "hf"
    path: str  # the model: a fastText file, a Hugging Face model id or folder
    label: str | int | None = None  # fastText: a label; hf: a label index; None: the default rule (module doc)

    @property
    def column(self) -> str:
        return f"score_{self.name}"


def check_name(name: str, what: str = "classifier name") -> str:
    """`name` when it can name a score column, else a one-line UsageError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"{what} {name!r} must match [a-z][a-z0-9_]* (it becomes the column score_NAME)")
    return name


def parse_spec(text: str) -> ClassifierSpec:
    """Read `NAME=KIND:PATH[#LABEL]`; a one-line UsageError (what is wrong, and the expected form) otherwise."""
    if not isinstance(text, str):
        raise UsageError(f"cannot read classifier {text!r}: {FORM}")
    name, eq, rest = text.strip().partition("=")
    if not eq:
        raise UsageError(f"cannot read classifier {text!r}: no NAME= before the model; {FORM}")
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"cannot read classifier {text!r}: the name {name!r} is not [a-z][a-z0-9_]*; {FORM}")
    kind, colon, target = rest.partition(":")
    kind = kind.strip().lower()
    if not colon or kind not in KINDS:
        raise UsageError(f"cannot read classifier {text!r}: the kind must be fasttext or hf; {FORM}")
    path, hash_, label = target.strip().rpartition("#") if "#" in target else (target.strip(), "", "")
    path, label = path.strip(), label.strip()
    if not path:
        raise UsageError(f"cannot read classifier {text!r}: no model path after '{kind}:'; {FORM}")
    if hash_ and not label:
        raise UsageError(f"cannot read classifier {text!r}: nothing after '#'; {FORM}")
    return ClassifierSpec(name, kind, path, _label(text, kind, label) if hash_ else None)


def _label(text: str, kind: str, label: str) -> str | int:
    if kind == "fasttext":
        if any(c.isspace() for c in label):
            raise UsageError(f"cannot read classifier {text!r}: a fastText label has no spaces; {FORM}")
        return label
    if not label.isdigit():
        raise UsageError(f"cannot read classifier {text!r}: an hf label is an index (0, 1, ...), not {label!r}; "
                         f"{FORM}")
    return int(label)


def load_scorer(spec: ClassifierSpec | str):
    """The scorer `spec` stands for (a spec string is parsed first). The model itself loads on first use."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if spec.kind == "fasttext":
        return FastTextScorer(spec.path, label=spec.label)
    if spec.kind == "hf":
        return HfScorer(spec.path, label=spec.label)
    raise UsageError(f"unknown classifier kind {spec.kind!r}: {FORM}")
