"""The scatter pass: each unit's records read again beside their counts, and every selected row (each copy of a
repeated one) appended to the bucket its order key names."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson

from finephrase.errors import UsageError
from finephrase.mix.compute import multiplicity
from finephrase.mix.counting import read_spill
from finephrase.mix.keys import bucket_of, keys, order_stream, select_stream
from finephrase.mix.sources import MixInput, Unit
from finephrase.mix.write import _Buckets
from finephrase.store import metadata as meta
from finephrase.store.layout import durable_write

_MAX32 = 2**31 - 1


def scatter_stage(work: Path, units: list[Unit], inputs: list[MixInput], plan: dict, seed: int, rank: int,
                  tasks: int, labels: list[str], flush_bytes: int, spill) -> None:
    """This task's units (units[rank::tasks]) into the buckets; committed by OUT/.mix-tmp/scatter_RRRRR.json."""
    marker = work / f"scatter_{rank:05d}.json"
    if marker.exists():
        return
    t0 = time.time()
    for old in (work / "buckets").glob(f"*/{rank:05d}.jsonl"):  # an interrupted try of this task: start over
        old.unlink()
    buckets = _Buckets(work / "buckets", rank, 1 << plan["bits"], flush_bytes)
    stats = {label: {"rows": 0, "tokens": 0} for label in labels}
    for u in units[rank::tasks]:
        sel = plan["selections"][u.input]
        st = stats[u.part.label]
        rows, toks = scatter_unit(u, inputs[u.input], sel, seed, spill(u), buckets, bits=plan["bits"],
                                  label=labels.index(u.part.label))
        st["rows"] += rows
        st["tokens"] += toks
    buckets.flush()
    np.save(work / f"scatter_{rank:05d}.npy", buckets.counts)
    durable_write(marker, orjson.dumps({"parts": stats, "seconds": round(time.time() - t0, 3)}))


def scatter_unit(unit: Unit, inp: MixInput, sel: dict, seed: int, spill: Path, buckets: _Buckets, bits: int,
                 label: int) -> tuple[int, int]:
    """One file's selected rows into the buckets, each record checked against what was counted; returns the
    rows and tokens written."""
    part = sel["partial"]
    stream = select_stream(seed, inp.tag, part["pass"], unit.tag) if part else None
    passes = sel["full"] + (1 if part else 0)
    ostreams = [order_stream(seed, unit.tag, e) for e in range(passes)]
    docs = unit.documents()
    n_rows = n_tokens = 0
    for start, a in read_spill(spill):
        mult = multiplicity(sel, unit, stream, start, a[:, 0])
        top = int(mult.max()) if len(mult) else 0
        rows = np.arange(start, start + len(a), dtype=np.int64)
        hs = [keys(ostreams[e], rows) for e in range(top)]
        bs = [bucket_of(h, bits).tolist() for h in hs]
        hs = [h.tolist() for h in hs]
        for j, (tok, chars, m) in enumerate(zip(a[:, 0].tolist(), a[:, 1].tolist(), mult.tolist())):
            doc = next(docs, None)
            if doc is None:
                raise UsageError(f"{unit.file.relpath} ({unit.part.label}) changed while mixing (fewer records "
                                 f"than when counted): rerun")
            reject = doc.metadata.get(meta.REJECTED)
            if bool(reject) != (tok < 0) or (not reject and min(len(doc.text), _MAX32) != chars):
                raise UsageError(f"{unit.file.relpath} ({unit.part.label}) changed while mixing (record "
                                 f"{start + j + 1} differs): rerun")
            for e in range(m):
                buckets.add(bs[e][j], orjson.dumps([hs[e][j], label, doc.id, tok, doc.text, unit.index,
                                                    start + j, e]) + b"\n")
            n_rows += m
            n_tokens += m * tok
    if next(docs, None) is not None:
        raise UsageError(f"{unit.file.relpath} ({unit.part.label}) changed while mixing (more records than when "
                         f"counted): rerun")
    return n_rows, n_tokens
