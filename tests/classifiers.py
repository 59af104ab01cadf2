"""A real fastText classifier for the tests, trained in a fraction of a second on two vocabularies that do not
overlap (no download): `__label__hq` for texts of HQ_WORDS, `__label__lq` for texts of LQ_WORDS."""

import random
from pathlib import Path

import pytest

HQ_WORDS = "theorem proof lemma derivative integral equation matrix vector hypothesis analysis".split()
LQ_WORDS = "cheap casino click free bonus winner discount offer subscribe viral".split()


def hq_text(rng, n=12):
    return " ".join(rng.choices(HQ_WORDS, k=n))


def lq_text(rng, n=12):
    return " ".join(rng.choices(LQ_WORDS, k=n))


def train(path, lines) -> str:
    fasttext = pytest.importorskip("fasttext")
    data = path.with_suffix(".txt")
    data.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(input=str(data), epoch=20, lr=0.5, dim=16, wordNgrams=2, minCount=1,
                                      bucket=20_000, thread=1, verbose=0)
    model.save_model(str(path))
    return str(path)


def train_hq_lq(folder: Path, seed: int = 0) -> str:
    """A two-label model (`__label__hq`, `__label__lq`), DCLM's shape at toy size (bigrams), in folder/model.bin."""
    rng = random.Random(seed)
    lines = [f"__label__hq {hq_text(rng)}" for _ in range(200)] + [f"__label__lq {lq_text(rng)}" for _ in range(200)]
    rng.shuffle(lines)
    return train(Path(folder) / "model.bin", lines)
