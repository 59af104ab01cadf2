"""The table `finephrase mix` prints: rows, tokens, requested and achieved shares per input, part and side."""

from __future__ import annotations


def format_report(report: dict) -> str:
    tot = report["totals"]["tokens"]
    rows = [("", "rows", "tokens", "requested", "achieved")]
    for e in report["inputs"]:
        rows.append((f"{e['kind']} {e['name']}", f"{e['selected']['rows']:,}", f"{e['selected']['tokens']:,}",
                     f"{e['requested_share']:.2%}", f"{e['achieved_share']:.2%}"))
        if len(e["parts"]) > 1:
            for label, d in e["parts"].items():
                rows.append((f"  {label}", f"{d['selected']['rows']:,}", f"{d['selected']['tokens']:,}", "",
                             f"{d['selected']['tokens'] / tot:.2%}"))
    for kind, s in report["shares"].items():
        n = sum(e["selected"]["tokens"] for e in report["inputs"] if e["kind"] == kind)
        r = sum(e["selected"]["rows"] for e in report["inputs"] if e["kind"] == kind)
        rows.append((f"{kind} (total)", f"{r:,}", f"{n:,}", f"{s['requested']:.2%}", f"{s['achieved']:.2%}"))
    rows.append(("mix", f"{report['totals']['rows']:,}", f"{tot:,}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    tok = report["tokenizer"]["name"]
    lines.append(f"{len(report['files'])} files in train/, tokens of {tok}, seed {report['seed']}; "
                 f"shares {'within' if report['within_tolerance'] else 'NOT within'} {report['tolerance']:.0%} "
                 f"of the request")
    return "\n".join(lines)
