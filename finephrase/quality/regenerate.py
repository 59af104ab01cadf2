"""Validate and regenerate: a generation the gate refuses for a reason a new sample can fix is asked for again,
with a new seed and a higher temperature, up to `max_attempts` times, before it becomes a reject.

The request loop (finephrase/pipeline/inference/request_loop.py) judges each generation with the gate as soon as it
arrives, on the request slot it already holds; the pipeline's own gate step judges the last attempt again
downstream (same gate, same verdict). Retries happen before the chunk is committed, so a task killed during a
retry redoes the whole (document, prompt) from attempt 1: nothing is published twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from finephrase.errors import UsageError
from finephrase.quality.gate import QualityGate
from finephrase.serving.client import Sampling

# reasons a new sample can fix (a prefix before ":" stands for all its kinds); a refusal by the server
# (context_overflow, http_*, timeout) or an unreadable source is not here: the same request would fail the same way
RETRYABLE = ("length", "repetition", "empty", "too_short", "copy", "format", "non_answer", "language", "off_topic",
             "missing_output_tag")
EMBEDDED_ATTEMPTS = 3  # the embedded CPU model: small and cheap per request, often out of format
SERVER_ATTEMPTS = 2  # vLLM and endpoints: GPU time per retry
UNSET_TEMPERATURE = 0.7  # what a retry starts from when the run leaves the temperature to the model


def default_attempts(backend: str) -> int:
    return EMBEDDED_ATTEMPTS if backend == "embedded" else SERVER_ATTEMPTS


@dataclass(frozen=True)
class Regenerate:
    """How rejected generations are asked for again. `max_attempts` 1 turns it off. Attempt k > 1 samples at
    min(max_temperature, t + temperature_step x (k - 1)), t the run's temperature (UNSET_TEMPERATURE when the run
    leaves it to the model), with a seed of its own. `gates`: the gates that judge (None: the pipeline's
    QualityFilter gates, which `finephrase.run.run` gives it; the default gate under a plain executor)."""

    max_attempts: int = EMBEDDED_ATTEMPTS
    reasons: tuple[str, ...] = RETRYABLE
    temperature_step: float = 0.2
    max_temperature: float = 1.0
    gates: tuple[QualityGate, ...] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts {self.max_attempts}: must be at least 1 (1: no regeneration)")
        if self.temperature_step < 0 or self.max_temperature < 0:
            raise UsageError("Regenerate: temperature_step and max_temperature must be 0 or more")
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.gates is not None:
            object.__setattr__(self, "gates", tuple(self.gates))

    @property
    def on(self) -> bool:
        return self.max_attempts > 1

    def retryable(self, reason: str) -> bool:
        return reason in self.reasons or reason.split(":", 1)[0] in self.reasons

    def judge(self, text: str, finish_reason: str | None, prompt, source: str | None) -> str | None:
        """The first gate's reject reason, or None (published)."""
        for gate in self.gates if self.gates is not None else (QualityGate(),):
            if reason := gate.check(text, finish_reason, prompt=prompt, source=source):
                return reason
        return None

    def sampling(self, base: Sampling, attempt: int) -> Sampling:
        """The sampling of attempt `attempt` (1: the run's own)."""
        if attempt == 1:
            return base
        start = base.temperature if base.temperature is not None else UNSET_TEMPERATURE
        return replace(base, temperature=round(min(self.max_temperature,
                                                   start + self.temperature_step * (attempt - 1)), 6))

    def fingerprint(self) -> dict:
        return {"max_attempts": self.max_attempts, "reasons": list(self.reasons),
                "temperature_step": self.temperature_step, "max_temperature": self.max_temperature}


def prompt_yield(counts: dict, prompt: str) -> tuple[int, int, float | None]:
    """From a run's counts (manifest `counts`, `finephrase status` totals: `rows`, `rejects` by `prompt/reason`,
    `published_attempts`): the prompt's published rows, its (document, prompt) pairs (rows and rejects), and the
    attempts a published row took (None: none published, or attempts not counted)."""
    rows = (counts.get("rows") or {}).get(prompt, 0)
    pairs = rows + sum(v for k, v in (counts.get("rejects") or {}).items() if k.startswith(f"{prompt}/"))
    attempts = (counts.get("published_attempts") or {}).get(prompt)
    return rows, pairs, attempts / rows if rows and attempts else None


def attempt_seed(seed: int | None, attempt: int) -> int | None:
    """Attempt 1 keeps the request's seed; a later one gets its own (derived, so a rerun asks the same)."""
    if seed is None or attempt == 1:
        return seed
    h = hashlib.blake2b(f"{seed}\x00attempt\x00{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF
