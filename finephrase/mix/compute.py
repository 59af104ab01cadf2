"""Budgets and selection: each input's fraction of the total, the total T, and the seeded choice of rows that
meets each input's token budget."""

from __future__ import annotations

import numpy as np

from finephrase.mix.counting import read_spill
from finephrase.mix.keys import N_BINS, bins, keys, select_stream
from finephrase.mix.sources import MixInput, Unit

FILL_TOLERANCE = 1e-3  # each input's budget is met to within 0.1% (or one row)
FILL_SCAN = 100_000  # rows looked at past the first one that overshoots, to fill the rest of a budget
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


def select(inp: MixInput, units: list[Unit], spill, budget: float, seed: int,
           allow_repeats: bool = False) -> dict:
    """Which rows the input contributes, as a rule a row's selection key decides (no per-row array): `full`
    whole passes over all its usable rows, then (`partial`) the rows of one more pass in selection-key order while
    they fit the rest of the budget, filled near the end as _fill does. `spill(unit)` is a unit's count file.
    Returns the rule plus the selected rows and tokens."""
    avail, n_avail = float(inp.available_tokens), inp.available_rows
    if budget >= avail * (1 - 1e-12):
        if not allow_repeats or budget <= avail * (1 + FILL_TOLERANCE):
            return {"full": 1, "partial": None, "rows": n_avail, "tokens": int(avail), "unique": n_avail}
        full = int(budget // avail)
        rest = budget - full * avail
    else:
        full, rest = 0, budget
    sel = {"full": full, "partial": None, "rows": full * n_avail, "tokens": int(full * avail),
           "unique": n_avail if full else 0}
    if rest <= 0:
        return sel
    streams = {u.index: select_stream(seed, inp.tag, full, u.tag) for u in units}
    hist_t, hist_n = _histograms(units, spill, streams)
    cum = np.cumsum(hist_t)
    kstar = int(np.searchsorted(cum, rest, side="right"))  # the first bin that overshoots the rest
    if kstar >= N_BINS:  # every row fits
        kstar = N_BINS
    got = float(cum[kstar - 1]) if kstar else 0.0
    rows = int(hist_n[:kstar].sum())
    chosen: dict[int, list[int]] = {}
    kend = kstar - 1
    if kstar < N_BINS:
        ncum = np.cumsum(hist_n[kstar:])
        kend = kstar + min(int(np.searchsorted(ncum, hist_n[kstar] + FILL_SCAN, side="left")), N_BINS - 1 - kstar)
        cand_keys, cand_toks, cand_unit, cand_row = _candidates(units, spill, streams, kstar, kend)
        order = np.lexsort((cand_row, cand_unit, cand_keys))
        picked = _fill(order, cand_toks[order], rest - got)
        if picked:
            idx = np.concatenate(picked)
            for u, r in sorted(zip(cand_unit[idx].tolist(), cand_row[idx].tolist())):
                chosen.setdefault(u, []).append(r)
            got += float(cand_toks[idx].sum())
            rows += len(idx)
    sel["partial"] = {"pass": full, "kstar": kstar, "kend": kend, "chosen": {str(u): r for u, r in chosen.items()}}
    sel["rows"] += rows
    sel["tokens"] += int(got)
    sel["unique"] = n_avail if full else rows
    return sel


def _histograms(units: list[Unit], spill, streams: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and usable rows per selection-key bin, over all the input's units."""
    hist_t = np.zeros(N_BINS, dtype=np.float64)
    hist_n = np.zeros(N_BINS, dtype=np.int64)
    for u in units:
        for start, a in read_spill(spill(u)):
            ok = np.flatnonzero(a[:, 0] >= 0)
            b = bins(keys(streams[u.index], ok + start))
            hist_t += np.bincount(b, weights=a[ok, 0], minlength=N_BINS)
            hist_n += np.bincount(b, minlength=N_BINS)
    return hist_t, hist_n


def _candidates(units: list[Unit], spill, streams: dict[int, int], lo: int, hi: int):
    """(key, tokens, unit, row) of the usable rows whose selection-key bin is in [lo, hi]."""
    out: list[tuple] = []
    for u in units:
        for start, a in read_spill(spill(u)):
            ok = np.flatnonzero(a[:, 0] >= 0)
            k = keys(streams[u.index], ok + start)
            b = bins(k)
            m = (b >= lo) & (b <= hi)
            if m.any():
                out.append((k[m], a[ok[m], 0].astype(np.int64), np.full(int(m.sum()), u.index, dtype=np.int64),
                            ok[m] + start))
    if not out:
        z = np.zeros(0, dtype=np.int64)
        return z.astype(np.uint64), z, z, z
    return tuple(np.concatenate(c) for c in zip(*out))


def multiplicity(sel: dict, unit: Unit, stream: int | None, start: int, toks: np.ndarray) -> np.ndarray:
    """How many times each row of a spill chunk (first row `start`, tokens `toks`) is in the mix."""
    usable = toks >= 0
    m = np.where(usable, sel["full"], 0).astype(np.int64)
    part = sel["partial"]
    if part is None:
        return m
    rows = np.arange(start, start + len(toks), dtype=np.int64)
    b = bins(keys(stream, rows))
    take = usable & (b < part["kstar"])
    chosen = part["chosen"].get(str(unit.index))
    if chosen:
        c = np.asarray(chosen, dtype=np.int64)
        take |= usable & np.isin(rows, c[(c >= start) & (c < start + len(toks))])
    return m + take
