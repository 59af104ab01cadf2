"""What a re-check found, as a mergeable tally: per prompt the rows seen, the reject reasons counted and the first
examples of each reason. Tallies of disjoint parts of a folder add up to the tally of the whole, in any order.

Order: a row's key is (file name, row number in the file): the order in which the one-process check of old read
the rows (each prompt folder's files sorted by name, i.e. by task then chunk, then row by row). The examples of a
reason are its rows with the smallest keys; reasons with equal counts are listed by the key of their first row.
"""

from __future__ import annotations

from collections import Counter

EXAMPLES = 2  # examples shown per reject reason


def _blank() -> dict:
    return {"rows": 0, "reasons": Counter(), "first": {}, "examples": {}}


class Tally:
    def __init__(self, prompts: list[str], examples: int = EXAMPLES):
        self.examples = examples
        self.prompts = {n: _blank() for n in prompts}

    def count(self, prompt: str, rows: int):
        """`rows` more rows of `prompt` checked (those that would be rejected included)."""
        self.prompts[prompt]["rows"] += rows

    def reject(self, prompt: str, key: tuple[str, int], text: str | None, reason: str):
        """A checked row that would be rejected, and why; `key`: (file name, row number in the file)."""
        p = self.prompts[prompt]
        p["reasons"][reason] += 1
        key = list(key)
        if reason not in p["first"] or key < p["first"][reason]:
            p["first"][reason] = key
        shown = p["examples"].setdefault(reason, [])
        if self.examples and (len(shown) < self.examples or key < shown[-1][0]):
            shown.append([key, " ".join((text or "").split())[:160]])
            shown.sort()
            del shown[self.examples:]

    def merge(self, other: Tally) -> Tally:
        for name, q in other.prompts.items():
            p = self.prompts.setdefault(name, _blank())
            p["rows"] += q["rows"]
            p["reasons"].update(q["reasons"])
            for reason, key in q["first"].items():
                if reason not in p["first"] or key < p["first"][reason]:
                    p["first"][reason] = key
            for reason, shown in q["examples"].items():
                p["examples"][reason] = sorted(p["examples"].get(reason, []) + shown)[:self.examples]
        return self

    # -- as JSON (the parts of an array) -----------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"examples": self.examples,
                "prompts": {n: {"rows": p["rows"], "reasons": dict(p["reasons"]), "first": p["first"],
                                "examples": p["examples"]} for n, p in self.prompts.items()}}

    @classmethod
    def from_json(cls, data: dict) -> Tally:
        t = cls(list(data["prompts"]), int(data["examples"]))
        for n, p in data["prompts"].items():
            t.prompts[n] = {"rows": int(p["rows"]), "reasons": Counter(p["reasons"]), "first": dict(p["first"]),
                            "examples": {r: [[list(k), s] for k, s in ex] for r, ex in p["examples"].items()}}
        return t

    # -- the report ----------------------------------------------------------------------------------------------

    def report(self) -> dict:
        """Per prompt: rows, would_reject, reasons (most frequent first), examples (texts, in row order)."""
        out = {}
        for n, p in self.prompts.items():
            order = sorted(p["reasons"], key=lambda r: (-p["reasons"][r], p["first"][r]))
            shown = sorted(p["examples"], key=lambda r: p["first"][r])
            out[n] = {"rows": p["rows"], "would_reject": sum(p["reasons"].values()),
                      "reasons": {r: p["reasons"][r] for r in order},
                      "examples": {r: [s for _, s in p["examples"][r]] for r in shown}}
        return out
