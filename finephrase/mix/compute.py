"""Budgets and selection: each input's fraction of the total, the total T, and the seeded choice of rows that
meets each input's token budget."""

from __future__ import annotations

import zlib

import numpy as np

from finephrase.mix.sources import MixInput

FILL_TOLERANCE = 1e-3  # each input's budget is met to within 0.1% (or one row)
FILL_SCAN = 100_000  # rows looked at past the first one that overshoots, to fill the rest of a budget
_UNION = 0x6D6978  # seed tag of the final shuffle


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tags])


def _tag(name: str) -> int:
    return zlib.crc32(name.encode())


def fractions(inputs: list[MixInput], share: float) -> list[float]:
    """Each input's requested fraction of the total: its side's share, split by weight (default: its tokens)."""
    out = [0.0] * len(inputs)
    for kind, side in (("synthetic", share), ("source", 1.0 - share)):
        group = [k for k, i in enumerate(inputs) if i.kind == kind]
        weights = {k: inputs[k].weight if inputs[k].weight is not None else float(inputs[k].available_tokens)
                   for k in group}
        total = sum(weights.values())
        for k in group:
            out[k] = side * weights[k] / total
    return out


def plan_total(inputs: list[MixInput], fracs: list[float], max_tokens: int | None,
               allow_repeats: bool) -> tuple[float, int | None]:
    """The total token count T of the mix and the index of the input that limits it (None: --max-tokens)."""
    caps = [i.available_tokens / f for i, f in zip(inputs, fracs)]
    if allow_repeats:
        if max_tokens:
            return float(max_tokens), None
        syn = [(c, k) for k, (c, i) in enumerate(zip(caps, inputs)) if i.kind == "synthetic"]
        c, k = min(syn)
        return c, k
    c, k = min((c, k) for k, c in enumerate(caps))
    if max_tokens and max_tokens < c:
        return float(max_tokens), None
    return c, k


def _fill(order: np.ndarray, toks: np.ndarray, budget: float) -> list[np.ndarray]:
    """Rows of `order` (their tokens: `toks`) in order while they fit `budget`; then rows further on that still
    fit, until within FILL_TOLERANCE; then the smallest passed-over row if overshooting with it is closer."""
    if budget <= 0 or not len(order):
        return []
    cum = np.cumsum(toks)
    n = int(np.searchsorted(cum, budget, side="right"))
    got = float(cum[n - 1]) if n else 0.0
    taken = [order[:n]]
    tol = max(1.0, budget * FILL_TOLERANCE)
    gap = budget - got
    if gap <= tol or n == len(order):
        return taken
    extra: list[int] = []
    smallest = None
    for j in range(n, min(len(order), n + FILL_SCAN)):
        t = int(toks[j])
        if t <= gap:
            extra.append(j)
            gap -= t
            if gap <= tol:
                break
        elif smallest is None or t < toks[smallest]:
            smallest = j
    if gap > tol and smallest is not None and toks[smallest] - gap < gap:
        extra.append(smallest)
    if extra:
        taken.append(order[np.array(extra, dtype=np.int64)])
    return taken


def select(tokens: np.ndarray, budget: float, seed: int, name: str, allow_repeats: bool = False) -> np.ndarray:
    """Indices of the rows an input contributes (shuffled with (seed, name); repeated only with allow_repeats)."""
    usable = np.flatnonzero(tokens >= 0)
    avail = float(tokens[usable].sum())
    tag = _tag(name)
    first = _rng(seed, tag, 0).permutation(usable)
    if budget >= avail * (1 - 1e-12):
        if not allow_repeats or budget <= avail * (1 + FILL_TOLERANCE):
            return first
        passes = int(budget // avail)
        chunks = [first] + [_rng(seed, tag, e).permutation(usable) for e in range(1, passes)]
        last = _rng(seed, tag, passes).permutation(usable)
        chunks += _fill(last, tokens[last], budget - passes * avail)
        return np.concatenate(chunks)
    return np.concatenate(_fill(first, tokens[first], budget) or [np.zeros(0, dtype=np.int64)])
