"""Constrained generation (`--constrain-format`): a template's `[check]` table may carry `grammar`, a GBNF
grammar of a good answer's shape; with the setting on, every request for that template carries it and the
engine samples only text the grammar accepts (and stops where the grammar ends).

How each engine is told:
- llama.cpp (the embedded backend: llama.cpp's server from xllamacpp; also llama-server and llama-cpp-python's
  server behind --backend endpoint): the request field `grammar`;
- vLLM (`--backend vllm`): the request field `structured_outputs: {"grammar": ...}` (vLLM's structured
  outputs, GBNF through xgrammar);
- `--backend endpoint`: whichever of the two the server is, told apart by its tokenize endpoint (llama.cpp's
  `/tokenize` with `content`, llama-cpp-python's `/extras/tokenize`, else vLLM's).

The quality gate still checks every generation: a grammar fixes the shape, not the content.
"""

from __future__ import annotations

STYLES = {"embedded": "llamacpp", "vllm": "vllm", "endpoint": "auto"}


def request_fields(grammar: str | None, style: str | None) -> dict:
    """The extra request fields that carry `grammar` for an engine of `style` (none without a grammar)."""
    if not grammar or not style:
        return {}
    if style == "llamacpp":
        return {"grammar": grammar}
    if style == "vllm":
        return {"structured_outputs": {"grammar": grammar}}
    raise ValueError(f"unknown constraint style {style!r}")


def style_for(backend: str) -> str:
    """How a server of `backend` reads extra request fields; "auto" (asked at run time) for any other server."""
    return STYLES.get(backend, "auto")
