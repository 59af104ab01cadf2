"""The last stages of `finephrase score`: JoinScores (one task per bucket of source_id: each row's score beside
its source document's, written to OUT/<prompt>/BBBBB.parquet, and the bucket's partial summaries) and
FinalizeScores (one task: every row scored exactly once, the summaries merged into OUT/scores.json, written last:
its presence means the scores are complete)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from finephrase.errors import FinephraseError
from finephrase.pipeline.score.score_files import WORK_DIR
from finephrase.scoring.stats import SCORES_FILE, describe, merge, partial, shared_span
from finephrase.store.datafiles import parquet_files, rows_in
from finephrase.store.layout import StreamedParquet, durable_write


def _read(folder: Path) -> pa.Table | None:
    files = parquet_files(folder)
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def _with_sources(rows: pa.Table, sources: pa.Table | None, names: list[str]) -> pa.Table:
    """Each row with its source document's scores (null where the source was not scored)."""
    if sources is not None:
        return rows.join(sources, "source_id", join_type="left outer")
    for n in names:
        rows = rows.append_column(f"score_{n}_source", pa.nulls(rows.num_rows, pa.float64()))
    return rows


def _prompt_partials(t: pa.Table, names: list[str], with_sources: bool, every: int) -> dict:
    out = {}
    for n in names:
        gen, entry = t.column(f"score_{n}"), {}
        entry["rows"] = partial(gen.to_pylist(), every)
        if with_sources:
            src = t.column(f"score_{n}_source")
            both = pc.and_(pc.is_valid(gen), pc.is_valid(src))
            entry["sources"] = partial(src.filter(both).to_pylist(), every)
            entry["delta"] = partial(pc.subtract(gen.filter(both), src.filter(both)).to_pylist(), every)
        out[n] = entry
    return out


class JoinScores(PipelineStep):
    type = "📊 - STATS"
    name = "🔗 join scores"

    def __init__(self, output: str, prompts: list[str], names: list[str], with_sources: bool, sample_every: int):
        """One task per bucket (world_size = the bucket count). names: the classifiers' names."""
        super().__init__()
        self.output, self.prompts, self.names = str(output), list(prompts), list(names)
        self.with_sources, self.sample_every = with_sources, sample_every

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        out, work = Path(self.output), Path(self.output) / WORK_DIR
        rows = _read(work / "rows" / f"{rank:05d}")
        stats = {}
        if rows is not None:
            if self.with_sources:
                rows = _with_sources(rows, _read(work / "sources" / f"{rank:05d}"), self.names)
            rows = rows.sort_by("id")
            for p in self.prompts:
                t = rows.filter(pc.equal(rows.column("prompt"), p)).drop_columns(["prompt"])
                if t.num_rows:
                    f = StreamedParquet(out / p / f"{rank:05d}.parquet", t.schema)
                    f.write(t)
                    f.commit()
                    stats[p] = _prompt_partials(t, self.names, self.with_sources, self.sample_every)
                    self.stat_update("rows", value=t.num_rows)
        durable_write(work / "stats" / f"{rank:05d}.json", orjson.dumps(stats))


class FinalizeScores(PipelineStep):
    type = "📊 - STATS"
    name = "🧾 scores finalize"

    def __init__(self, source: str, output: str, prompts: list[str], record: dict):
        """record: the settings (source, classifiers, with_sources, tasks) that go into scores.json."""
        super().__init__()
        self.source, self.output, self.prompts, self.record = str(source), str(output), list(prompts), dict(record)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        with self.track_time():
            finalize_scores(Path(self.source), Path(self.output), self.prompts, self.record)


def _describe_classifier(parts: list[dict]) -> dict:
    """rows, sources and delta of one classifier merged and described; rows and sources on one histogram span."""
    merged = {k: merge([x[k] for x in parts]) for k in parts[0]}
    span = shared_span([merged[k] for k in ("rows", "sources") if k in merged])
    return {k: describe(m, span=None if k == "delta" else span) for k, m in merged.items()}


def finalize_scores(source: Path, out: Path, prompts: list[str], record: dict) -> dict:
    counts = {}
    for p in prompts:
        want, got = rows_in(parquet_files(source / p)), rows_in(parquet_files(out / p))
        if want != got:
            raise FinephraseError(f"scores of prompt {p} do not add up: {want} rows in {source / p}, {got} scored; "
                                  f"the output is incomplete (no {SCORES_FILE} written): rerun with --overwrite")
        counts[p] = got
    parts = [orjson.loads(f.read_bytes()) for f in sorted((out / WORK_DIR / "stats").glob("*.json"))]
    summary = {}
    for p in prompts:
        per = [part[p] for part in parts if p in part]
        summary[p] = {n: _describe_classifier([x[n] for x in per]) for n in (per[0] if per else {})}
    result = {**record, "rows": counts, "prompts": summary,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    durable_write(out / SCORES_FILE, orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result
