"""How numbers are written for people, one helper per kind (durations here; progress, status, plan, card and
report all use it)."""

from __future__ import annotations

import math


def duration(seconds: float | None, sep: str = "") -> str:
    """`45s`, `3m07s`, `2h05m`, `6d02h` (rounded to the second; `?` when unknown). `sep=" "` spaces the two parts
    (`6d 02h`), for tables."""
    if seconds is None or seconds != seconds or seconds == math.inf:
        return "?"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{sep}{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{sep}{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{sep}{s % 60:02d}s"
    return f"{s}s"


def plural(n: int, word: str) -> str:
    """`1 request`, `2,048 requests`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def duration_decimal(seconds: float) -> str:
    """`56.0 s`, `7.3 min`, `2.50 h`: one unit with decimals, for prose where a short run's tenths matter."""
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def human_bytes(n: float) -> str:
    """`512 B`, `9.7 KB`, `41.3 GB` (powers of 1,000, one decimal)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
