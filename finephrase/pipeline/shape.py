"""What a rephrasing pipeline is made of, read from its steps: `finephrase.run.run` uses it to check the list,
connect the steps to the output folder, account for every filter, and build the run's fingerprint.

A rephrasing pipeline is a list of datatrove steps:

    ResumableReader  ->  selection (Select, TokenBudget, any datatrove filter)  ->  Rephrase
                     ->  gate (QualityFilter, any datatrove filter)  ->  ChunkWriter

Exactly one reader first, one Rephrase, one ChunkWriter last. A plain datatrove filter anywhere is wrapped in
`Accounted` (marking.py): what it refuses is listed as filtered (before Rephrase) or rejected (after it), by id,
with its reason, so `finephrase verify` still accounts for every document.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from datatrove.pipeline.filters.base_filter import BaseFilter

from finephrase.errors import UsageError
from finephrase.pipeline.filters.behaviour import describe_filter
from finephrase.pipeline.filters.marking import Accounted, MarkingFilter
from finephrase.pipeline.filters.quality import QualityFilter
from finephrase.pipeline.filters.select import Select, TokenBudget
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.pipeline.writers.chunk_writer import ChunkWriter


@dataclass
class Shape:
    steps: list  # the pipeline as it runs (plain filters wrapped in Accounted)
    reader: ResumableReader
    rephrase: Rephrase
    writer: ChunkWriter
    source_filters: list = field(default_factory=list)  # filters before Rephrase (inside Select or on their own)
    token_budget: TokenBudget | None = None
    generation_filters: list = field(default_factory=list)  # filters after Rephrase, the gate aside
    gates: list[QualityFilter] = field(default_factory=list)
    warned: set = field(default_factory=set)  # filters already warned about (once per run)

    @property
    def output(self) -> str:
        return self.writer.output_dir


def _one(steps: list, kind: type, what: str):
    found = [s for s in steps if isinstance(s, kind)]
    if len(found) != 1:
        raise UsageError(f"a rephrasing pipeline has exactly one {what} ({kind.__name__}); this one has "
                         f"{len(found)}")
    return found[0]


def _account(step):
    """A plain datatrove filter drops what it refuses: run it as one that marks instead."""
    if isinstance(step, BaseFilter) and not isinstance(step, MarkingFilter):
        return Accounted(step)
    return step


def inspect_pipeline(pipeline: list) -> Shape:
    """Check the list's order and find its parts; one line (a UsageError) for a list that cannot run."""
    steps = [_account(s) for s in pipeline]
    reader = _one(steps, ResumableReader, "reader")
    rephrase = _one(steps, Rephrase, "rephrasing step")
    writer = _one(steps, ChunkWriter, "writer")
    if steps[0] is not reader or steps[-1] is not writer:
        raise UsageError("a rephrasing pipeline starts with its ResumableReader and ends with its ChunkWriter")
    at = steps.index(rephrase)
    shape = Shape(steps, reader, rephrase, writer)
    for i, step in enumerate(steps[1:-1], start=1):
        if step is rephrase:
            continue
        if isinstance(step, TokenBudget):
            if i > at:
                raise UsageError("TokenBudget selects source documents: put it before Rephrase")
            shape.token_budget = step
        elif i < at:
            if isinstance(step, QualityFilter):
                raise UsageError("QualityFilter checks generations: put it after Rephrase")
            shape.source_filters += step.filters if isinstance(step, Select) else [_inner(step)]
        elif isinstance(step, QualityFilter):
            shape.gates.append(step)
        else:
            shape.generation_filters.append(_inner(step))
    return shape


def _inner(step):
    return step.inner if isinstance(step, Accounted) else step


def connected(shape: Shape) -> Shape:
    """The run's own copy of the list, connected: every step that resumes the output folder (reader, budget,
    Rephrase) is built again with the writer's folder, and Rephrase with the writer's chunk size and (unless its
    Regenerate names its own) the pipeline's gates to judge what it regenerates. The list the user wrote is not
    changed (its steps may hold the same values already: then a plain datatrove executor runs it too)."""
    out, rephrase = shape.output, shape.rephrase
    for step, resume_dir in ((shape.reader, shape.reader.resume_dir), (rephrase, rephrase.settings.resume_dir),
                             (shape.token_budget, getattr(shape.token_budget, "resume_dir", None))):
        if resume_dir is not None and Path(resume_dir).resolve() != Path(out).resolve():
            raise UsageError(f"{type(step).__name__} resumes from {resume_dir}, but the ChunkWriter writes "
                             f"{out}: give both the same folder (or leave resume_dir out)")
    if rephrase.settings.chunk_size not in (None, shape.writer.chunk_size):
        raise UsageError(f"Rephrase has chunk_size={rephrase.settings.chunk_size} and the ChunkWriter "
                         f"{shape.writer.chunk_size}: give it to the ChunkWriter only")
    shape = with_step(shape, shape.reader, shape.reader.resuming(out))
    if shape.token_budget is not None:
        shape = with_step(shape, shape.token_budget, shape.token_budget.resuming(out))
    regenerate = rephrase.settings.regenerate
    if regenerate.gates is None:  # judged by the gates the pipeline has (none: only what Rephrase refuses itself)
        regenerate = replace(regenerate, gates=tuple(g.gate for g in shape.gates))
    return with_step(shape, rephrase, rephrase.for_run(resume_dir=out, chunk_size=shape.writer.chunk_size,
                                                       regenerate=regenerate))


def with_step(shape: Shape, old, new) -> Shape:
    """`shape` with the step `old` replaced by `new` (in its list and in the part that names it)."""
    parts = {k: new for k in ("reader", "rephrase", "writer", "token_budget") if getattr(shape, k) is old}
    return replace(shape, steps=[new if s is old else s for s in shape.steps], **parts)


def filter_name(f) -> str:
    return getattr(f, "name", None) or type(f).__name__


def selection_fingerprint(shape: Shape) -> dict:
    """The source selection as run settings: `where`/`language_is`/`length_between`/`sample` by their settings,
    any other filter by its name, and (`filter_behaviour`, only when there is one) by what it does."""
    sel = {"where": [], "languages": [], "min_chars": None, "max_chars": None, "sample_rate": None,
           "token_budget": shape.token_budget.budget if shape.token_budget else None, "filters": []}
    others = []
    for f in shape.source_filters:
        setting = getattr(f, "setting", None)
        if not setting:
            sel["filters"].append(filter_name(f))
            others.append(f)
        for k, v in (setting or {}).items():
            if isinstance(sel[k], list):
                sel[k] += v
            else:
                sel[k] = v
    if others:  # only then: the fingerprints of runs without such filters (the CLI's) stay as they were
        sel["filter_behaviour"] = filter_behaviour(shape, others)
    return sel


def gate_fingerprint(shape: Shape) -> dict:
    """Only what differs from a pipeline with the default gate (earlier fingerprints stay as they were)."""
    out = {}
    if not shape.gates:
        out["gate"] = "none"
    elif len(shape.gates) > 1 or shape.gates[0].fingerprint():
        out["gate"] = [g.fingerprint() for g in shape.gates]
    if shape.generation_filters:
        out["generation_filters"] = [filter_name(f) for f in shape.generation_filters]
        out["generation_filter_behaviour"] = filter_behaviour(shape, shape.generation_filters)
    return out


def filter_behaviour(shape: Shape, filters: list) -> list[dict]:
    """What each filter does (behaviour.py), with its name; one line on stderr, once per run, for a filter whose
    behaviour cannot be fully known."""
    out = []
    for f in filters:
        desc, missing = describe_filter(f)
        name = filter_name(f)
        if missing and id(f) not in shape.warned:
            shape.warned.add(id(f))
            why = " ".join(missing[0].split())  # one line
            print(f"warning: filter {name} cannot be fingerprinted by its behaviour ({why}): a change to it "
                  f"will not be noticed; give it a name/version (docs/pipelines.md, \"Filters and the "
                  f"fingerprint\")", file=sys.stderr)
        out.append({"filter": name, **desc})
    return out


def without_filter_behaviour(fp: dict) -> dict:
    """The fingerprint `fp` as finephrase wrote it before filters were fingerprinted by what they do (their names
    only): a manifest equal to it was written then, and may resume without noticing a changed filter."""
    out = {k: v for k, v in fp.items() if k != "generation_filter_behaviour"}
    if isinstance(fp.get("selection"), dict):
        out["selection"] = {k: v for k, v in fp["selection"].items() if k != "filter_behaviour"}
    return out
