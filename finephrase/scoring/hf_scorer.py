"""The Hugging Face classifier scorer: a sequence-classification model (the FineWeb-Edu classifier, for one) that
scores a list of texts.

The score is the model's regression output (logits[:, 0]) when it has one output (`num_labels == 1`), else the
softmax probability of `label` (an index; None: the last label). Texts are cut to `max_length` tokens and scored
`batch_size` at a time under `torch.inference_mode()`, on `device` (None: cuda when there is one, else cpu).

torch and transformers are imported on first use, and only then: they are the optional `scores-hf` extra. The
model's own code is never run (`trust_remote_code=False`), and a local folder is read without asking the Hub. The
model loads on first use, and a pickled scorer leaves it behind (datatrove pickles steps for its executors).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from finephrase.errors import UsageError

MISSING = "Hugging Face classifiers need torch and transformers: pip install 'finephrase[scores-hf]'"


def _installed() -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
        return False


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class HfScorer:
    def __init__(self, model: str | Path, label: int | None = None, batch_size: int = 32, device: str | None = None,
                 max_length: int = 512):
        if not _installed():
            raise UsageError(MISSING)
        if label is not None and (isinstance(label, bool) or not isinstance(label, int) or label < 0):
            raise UsageError(f"Hugging Face classifier {model}: the label is an index (0, 1, ...), not {label!r}")
        if batch_size < 1 or max_length < 1:
            raise UsageError(f"Hugging Face classifier {model}: batch_size and max_length must be positive")
        self.model = str(model)
        self.label = label
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._loaded = None  # (torch, tokenizer, model, device, label index or None for regression)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_loaded": None}

    def __repr__(self) -> str:
        return f"HfScorer({self.model!r}, label={self.label!r})"

    @property
    def num_labels(self) -> int:
        return self._load()[2].config.num_labels

    def _load(self):
        if self._loaded is None:
            self._loaded = _load(self.model, self.label, self.device)
        return self._loaded

    def score(self, texts: list[str]) -> list[float]:
        """One score per text, in order."""
        torch, tokenizer, model, device, label = self._load()
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = tokenizer(list(texts[i:i + self.batch_size]), truncation=True, max_length=self.max_length,
                                  padding=True, return_tensors="pt").to(device)
                logits = model(**batch).logits.float()
                scores = logits[:, 0] if label is None else torch.softmax(logits, dim=-1)[:, label]
                out.extend(scores.cpu().tolist())
        return out


def _load(name: str, label: int | None, device: str | None):
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError:
        raise UsageError(MISSING) from None
    local = Path(name).is_dir()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False, local_files_only=local)
        model = AutoModelForSequenceClassification.from_pretrained(name, trust_remote_code=False,
                                                                   local_files_only=local)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"Hugging Face classifier {name} cannot be loaded ({_one_line(e)})") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # batches are padded
        model.config.pad_token_id = tokenizer.eos_token_id
    n = model.config.num_labels
    if n == 1 and label in (None, 0):
        label = None  # one output: the regression score
    elif label is None:
        label = n - 1
    elif label >= n:
        raise UsageError(f"Hugging Face classifier {name} has {n} outputs: label index {label} is not one of them")
    return torch, tokenizer, model.to(device).eval(), device, label
