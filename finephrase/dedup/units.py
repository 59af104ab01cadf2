"""The pieces a dedup is made of: datatrove's configs of the exact and near stages, a unit (one chain of stages:
a prompt, or the whole run) and a stage (one step list run as an array of tasks). Light to import: no datatrove at
import time."""

from __future__ import annotations

from typing import NamedTuple

from finephrase.run.stage import Stage, slug  # noqa: F401 (Stage: a dedup stage, as dedup named it)


def minhash_config(n_grams: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8, seed: int = 1):
    """datatrove's MinhashConfig, with 64-bit SHA-1 shingle hashes: its default, xxhash, fails on str shingles with
    xxhash >= 4 ("Strings must be encoded before hashing")."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket, seed=seed,
                         hash_config=HashConfig(precision=64, hash_fc="sha1"))


def exact_config():
    """datatrove's ExactDedupConfig of the exact stages: rows are equal when their text is, after case folding and
    whitespace collapsing (`exact_text`, EXACT_NORMALIZATION)."""
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig

    from finephrase.pipeline.dedup import exact_text

    return ExactDedupConfig(content_getter=exact_text)


def approx_threshold(num_buckets: int, hashes_per_bucket: int) -> float:
    """Similarity at which a pair has a 50/50 chance to share a bucket: about (1/b)^(1/r) for LSH with b bands of
    r rows. Pairs well above it are nearly always found, pairs well below nearly never."""
    return (1 / num_buckets) ** (1 / hashes_per_bucket)


def job_name(stage_name: str) -> str:
    """A stage's name as a SLURM job name: "faq: exact 1/3 signatures" -> "dedup-faq-exact-1of3-signatures"."""
    return "dedup-" + slug(stage_name)


class Unit(NamedTuple):
    """One chain of stages: `name`, its work folder's name under OUTPUT/.dedup ("prompt/<prompt>" with scope
    prompt, "run" with scope run); `prompts`, whose rows it compares with each other; `folder`, that work folder
    (OUTPUT/.dedup/<name>: datatrove's files, the removed rows before finalize, the stages' logs)."""

    name: str
    prompts: list[str]
    folder: str

    @property
    def label(self) -> str:
        """The prompt ("faq"), or "run": the start of its stages' names."""
        return self.name.split("/", 1)[-1]
