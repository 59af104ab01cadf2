"""The fastText classifier scorer: the probability of one label of a supervised fastText model (DCLM's classifier
scores `__label__hq`), for a list of texts.

It calls fastText's C++ predictor directly (`model.f.predict`, one line at a time): the Python wrapper's
`predict()` fails under numpy 2 (`np.array(..., copy=False)`), and the C++ `multilinePredict` of fasttext-wheel
0.9.2 returns, under numpy 2, arrays that repeat the first label's probability for every label. fastText reads
one line per text, so newlines and carriage returns become spaces, and the line ends with the newline fastText
saw at the end of each training line (as the wrapper's `predict()` adds it). An empty text is scored like any
other: the model's answer for an empty line.

The model loads on first use (`labels` or `score`), and a pickled scorer leaves it behind: datatrove pickles the
steps for its executors, and each process loads its own copy.
"""

from __future__ import annotations

import math
from pathlib import Path

from finephrase.errors import UsageError

HQ = "__label__hq"
NEGATIVE = ("__label__lq", "__label__low", "__label__0")
PREFIX = "__label__"
MISSING = "fastText classifiers need fasttext-wheel: pip install 'finephrase[scores]'"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def default_label(labels: list[str]) -> str | None:
    """`__label__hq` when the model has it, else its first label that is not a low-quality one (NEGATIVE)."""
    if HQ in labels:
        return HQ
    return next((lab for lab in labels if lab not in NEGATIVE), None)


class FastTextScorer:
    """`score(texts)`: for each text, the probability of `label` (None: `default_label`) under the fastText model
    at `path`."""

    def __init__(self, path: str | Path, label: str | None = None):
        self.path = str(path)
        self.label = label
        self._model = None
        self._label: str | None = None  # the label scored, once the model is loaded

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_label": None}

    def __repr__(self) -> str:
        return f"FastTextScorer({self.path!r}, label={self.label!r})"

    @property
    def labels(self) -> list[str]:
        """The model's labels, in its own order (by training frequency)."""
        return list(self._loaded().get_labels())

    @property
    def chosen_label(self) -> str:
        """The label whose probability `score` returns."""
        self._loaded()
        return self._label

    def _loaded(self):
        if self._model is None:
            model = _load(self.path)
            self._label = self._resolve(list(model.get_labels()))
            self._model = model
        return self._model

    def _resolve(self, labels: list[str]) -> str:
        if self.label is None:
            chosen = default_label(labels)
            if chosen is None:
                raise UsageError(f"fastText classifier {self.path}: no label to score among {', '.join(labels)}: "
                                 f"name one with #LABEL")
            return chosen
        for candidate in (self.label, PREFIX + self.label):
            if candidate in labels:
                return candidate
        raise UsageError(f"fastText classifier {self.path} has no label {self.label!r}: its labels are "
                         f"{', '.join(labels)}")

    def score(self, texts: list[str]) -> list[float]:
        """The chosen label's probability for each text, in order."""
        predict = self._loaded().f.predict
        want = self._label
        out = []
        for text in texts:
            line = text.replace("\n", " ").replace("\r", " ") + "\n"
            try:
                pairs = predict(line, -1, 0.0, "strict")
            except (TypeError, UnicodeError):  # a str that is not valid UTF-8 (a lone surrogate)
                pairs = predict(line.encode("utf-8", "replace").decode("utf-8"), -1, 0.0, "strict")
            # fastText adds 1e-5 to every probability (its log guard): 1.0 at most, as a probability
            out.append(min(next((p for p, lab in pairs if lab == want), math.nan if not pairs else 0.0), 1.0))
        return out


def _load(path: str):
    """The fastText model at `path`, as the Python wrapper's object (without the warning `load_model` prints)."""
    try:
        from fasttext import FastText
    except ImportError:
        raise UsageError(MISSING) from None
    if not Path(path).is_file():
        raise UsageError(f"fastText classifier {path}: no such file")
    try:
        loader = getattr(FastText, "_FastText", None)
        model = loader(model_path=path) if loader else FastText.load_model(path)
    except (ValueError, RuntimeError, MemoryError) as e:
        raise UsageError(f"fastText classifier {path} is not a fastText model ({_one_line(e)})") from None
    if model.f.getArgs().model != FastText.model_name.supervised:
        raise UsageError(f"fastText classifier {path} is a word-vector model, not a classifier (supervised)")
    return model
