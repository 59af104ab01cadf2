"""argparse value types shared by the commands: one clear message for a bad number."""

from __future__ import annotations

import argparse
import math

from finephrase.errors import UsageError


def int_at_least(minimum: int):
    def parse(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {v}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {v}")
        return n

    return parse


def _finite_float(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {v}") from None
    if math.isnan(x) or x == math.inf:
        raise argparse.ArgumentTypeError(f"not a finite number: {v}")
    return x


def positive_float(v: str) -> float:
    x = _finite_float(v)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {v}")
    return x


def non_negative_float(v: str) -> float:
    x = _finite_float(v)
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return x


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def json_object(text: str) -> dict:
    """A JSON object given on the command line, e.g. '{"enable_thinking": false}'."""
    import json

    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object ({{...}}), got {text!r}")
    return value


def parse_size(text: str) -> int:
    """'500MB', '2GB', '750M', '1.5G', or a byte count."""
    t = str(text).strip().upper().removesuffix("B")
    scale = {"K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
    try:
        if t and t[-1] in scale:
            return int(float(t[:-1]) * scale[t[-1]])
        return int(t)
    except ValueError:
        raise UsageError(f"cannot read size '{text}': use e.g. 500MB, 2GB or a number of bytes") from None


def repeated_names(names: list[str]) -> list[str]:
    """The names given more than once, sorted (a command refuses two classifiers or benchmarks of one name)."""
    return sorted({n for n in names if names.count(n) > 1})
