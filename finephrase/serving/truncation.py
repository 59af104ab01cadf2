"""Token-accurate truncation of documents to the context budget, with the served model's own tokenizer.

budget = context length - max output tokens - template tokens - a small safety margin (chat-template markup).

Cheap first: a byte-level BPE or byte-fallback tokenizer never makes more tokens than the text has UTF-8 bytes,
so a document with at most `budget` bytes fits and is never sent to the tokenizer. Longer documents are
measured; if they do not fit, the cut is searched (binary search, O(log lines) tokenizer calls) for the longest
prefix that ends at a line boundary and fits; if that wastes more than a fifth of the budget, at a word
boundary. Without a tokenizer endpoint the cut is made at `budget` bytes, which is always safe.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CountTokens = Callable[[str], Awaitable[int | None]]

# A token spans at most a few dozen characters in practice; searching beyond this prefix is pointless.
MAX_CHARS_PER_TOKEN = 32
_WORD_BOUNDARY = re.compile(r"\s+")


@dataclass
class Fitted:
    text: str
    truncated: bool
    tokens: int | None  # tokens of the returned text when measured, else None


def _utf8_prefix(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


async def _longest_fitting(text: str, cuts: list[int], budget: int, count: CountTokens) -> tuple[int, int] | None:
    """Largest cut in sorted `cuts` with count(text[:cut]) <= budget, with its count; None if none fits."""
    lo, hi, best = 0, len(cuts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        n = await count(text[: cuts[mid]])
        if n <= budget:
            best = (cuts[mid], n)
            lo = mid + 1
        else:
            hi = mid - 1
    return best


async def fit_to_budget(text: str, budget: int, count: CountTokens | None) -> Fitted:
    if budget <= 0:
        raise ValueError("context budget is not positive: raise the context length or lower --max-tokens")
    if len(text.encode("utf-8")) <= budget:
        return Fitted(text, False, None)
    if count is None or await count("a") is None:
        cut = _utf8_prefix(text, budget)
        nl = cut.rfind("\n")
        if nl > len(cut) * 0.8:
            cut = cut[:nl]
        return Fitted(cut.rstrip(), True, None)

    window = text[: budget * MAX_CHARS_PER_TOKEN]
    n = await count(window)
    if n <= budget:
        return Fitted(window, len(window) < len(text), n)

    line_cuts = [i + 1 for i, ch in enumerate(window) if ch == "\n"]
    best = await _longest_fitting(window, line_cuts, budget, count) if line_cuts else None
    start = best[0] if best else 0
    if best is None or best[1] < 0.8 * budget:
        # lines are too long to cut well: look for a word boundary after the best line cut
        nxt = line_cuts[bisect.bisect_right(line_cuts, start)] if line_cuts and start < line_cuts[-1] else len(window)
        word_cuts = [m.start() for m in _WORD_BOUNDARY.finditer(window, start, nxt) if m.start() > start]
        word_best = await _longest_fitting(window, word_cuts, budget, count) if word_cuts else None
        if word_best and (best is None or word_best[1] > best[1]):
            best = word_best
    if best is None:  # one giant word: cut by characters
        char_cuts = list(range(1, min(len(window), budget * MAX_CHARS_PER_TOKEN) + 1, max(1, budget // 64)))
        best = await _longest_fitting(window, char_cuts, budget, count) or (0, 0)
    out = window[: best[0]].rstrip()
    return Fitted(out, True, await count(out) if out != window[: best[0]] else best[1])


# -- counting -----------------------------------------------------------------------------------------------------

# Per committed chunk (ledger line) and summed in the manifest's counts: documents given to the model, those cut to
# fit, and the characters those had and kept (characters, not tokens: a long document is never tokenized whole, so
# its own token count is not known). Ledgers and manifests written before these counts have none of the keys.
TRUNCATION_KEYS = ("fitted_docs", "truncated_docs", "truncated_chars", "truncated_chars_kept")


def add_truncation(total: dict, entry: dict) -> None:
    """Add the truncation counts of `entry` (a ledger line, or counts) to `total`; keys absent stay absent."""
    for k in TRUNCATION_KEYS:
        if k in entry:
            total[k] = total.get(k, 0) + (entry[k] or 0)


def ledger_truncation(ledgers: dict) -> dict:
    """The truncation counts over the committed chunks of `ledgers` ({rank: LedgerState}, ledger.all_ledgers)."""
    out: dict = {}
    for state in ledgers.values():
        for e in state.entries:
            add_truncation(out, e)
    return out


def truncation_text(counts: dict) -> str | None:
    """'N of M documents, K% of their characters kept' (M: documents given to the model), or None when `counts`
    has no truncation counts (an older run) or no document was given to the model."""
    fitted = counts.get("fitted_docs")
    if not fitted:
        return None
    n = counts.get("truncated_docs", 0) or 0
    text = f"{n:,} of {fitted:,} documents"
    chars = counts.get("truncated_chars", 0) or 0
    if n and chars:
        kept = int(100 * (counts.get("truncated_chars_kept", 0) or 0) / chars)  # floor: a cut never shows 100%
        text += f", {min(kept, 99)}% of their characters kept"
    return text
