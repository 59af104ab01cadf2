"""Generator model presets: the models the FinePhrase paper compared, by short name, with serving settings.

    finephrase rephrase IN --prompt faq --output OUT --backend vllm --model gemma3-1b
    RunConfig.for_backend("vllm", model="smollm2-1.7b", ...)

A short name (`finephrase models` lists them) resolves, for the `vllm` and `endpoint` backends, to:

- the model's Hub id (what vLLM serves under, and what is recorded in the manifest);
- the context length to serve with, unless one is given: 8,192 tokens as in the paper, or the model's own
  maximum where that is lower;
- `vllm` only: the preset's `vllm serve` flags, placed BEFORE the run's own `vllm_args` / `--vllm-arg`, so a flag
  given by the user wins (vLLM keeps the last value of a repeated flag); and the preset's requests in flight per
  task (`max_concurrency`), unless one is given;
- chat-template arguments sent with every request as `chat_template_kwargs` (vLLM applies them to the chat
  template), merged under any the run gives itself. They change the output, so they are part of the run's
  settings (manifest `config.chat_template_kwargs`).

A Hub id, a folder or any other name is used as it is, with none of this: to run a preset's model without its
flags, give its Hub id. No preset needs `--trust-remote-code`.

What comes from the paper and what is a default chosen here is said next to each value below and in
docs/models.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# The paper served every generator with an 8,192-token context (input document + 2,048 output tokens).
PAPER_CONTEXT = 8192

# From the paper (the FinePhrase production run, SmolLM2-1.7B-Instruct on one H100 at ~9,200 output tok/s):
# a full queue of 2,048 sequences, 32,768 batched tokens per step, and suffix speculative decoding with 32 tokens.
# vLLM's "suffix" method needs the `arctic-inference` package next to vLLM.
_SUFFIX_32 = {"method": "suffix", "num_speculative_tokens": 32}
SMOLLM2_PAPER_FLAGS = (
    "--max-num-seqs=2048",
    "--max-num-batched-tokens=32768",
    "--speculative-config=" + json.dumps(_SUFFIX_32, separators=(",", ":")),
)
SMOLLM2_PAPER_CONCURRENCY = 2048  # requests in flight per task: keep vLLM's 2,048 sequence slots busy

# A default chosen here, NOT from the paper, for the models whose tuned settings the paper does not give: no
# speculative decoding (the paper ran Gemma-3 without it), vLLM's own batching defaults, and room for as many
# sequences as finephrase keeps in flight per task on the vllm backend (512). Tune with --vllm-arg.
DEFAULT_FLAGS = ("--max-num-seqs=512",)


@dataclass(frozen=True)
class ModelPreset:
    name: str  # short name: `--model NAME`
    hub_id: str
    family: str
    params: str
    max_context: int  # the model's own maximum context (its config / model card)
    vllm_args: tuple[str, ...] = ()  # `vllm serve` flags, before the run's own
    max_concurrency: int | None = None  # requests in flight per task (vllm backend); None: the backend default
    chat_template_kwargs: dict | None = field(default=None, hash=False)  # sent with every request
    trust_remote_code: bool = False
    flags_from: str = "default"  # "paper": the serving flags are the paper's; "default": chosen here
    notes: str = ""

    @property
    def context_length(self) -> int:
        """The context to serve with: the paper's 8,192, or the model's maximum if lower."""
        return min(PAPER_CONTEXT, self.max_context)

    def serve_args(self) -> list[str]:
        """The preset's `vllm serve` flags."""
        return [*self.vllm_args, *(["--trust-remote-code"] if self.trust_remote_code else [])]

    def to_dict(self) -> dict:
        return {**asdict(self), "vllm_args": list(self.vllm_args), "context_length": self.context_length}


_GATED = "gated on the Hub: accept the license and set HF_TOKEN"

PRESETS: dict[str, ModelPreset] = {p.name: p for p in [
    ModelPreset("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2", "135M", 8192,
                SMOLLM2_PAPER_FLAGS, SMOLLM2_PAPER_CONCURRENCY, flags_from="paper 1.7B recipe, extrapolated",
                notes="the 1.7B recipe applied to the same architecture and tokenizer; the paper did not publish "
                "tuned settings for this size"),
    ModelPreset("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2", "360M", 8192,
                SMOLLM2_PAPER_FLAGS, SMOLLM2_PAPER_CONCURRENCY, flags_from="paper 1.7B recipe, extrapolated",
                notes="the 1.7B recipe applied to the same architecture and tokenizer; the paper did not publish "
                "tuned settings for this size"),
    ModelPreset("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2", "1.7B", 8192,
                SMOLLM2_PAPER_FLAGS, SMOLLM2_PAPER_CONCURRENCY, flags_from="paper",
                notes="the FinePhrase production model and serving recipe (H100, suffix-32 speculative decoding); "
                "suffix decoding on the pinned vLLM 0.32.0 needs arctic-inference==0.1.1 (`make install-gpu`)"),
    ModelPreset("gemma3-270m", "google/gemma-3-270m-it", "Gemma-3", "270M", 32768, DEFAULT_FLAGS,
                notes="no speculative decoding for Gemma-3 (as in the paper); " + _GATED),
    ModelPreset("gemma3-1b", "google/gemma-3-1b-it", "Gemma-3", "1B", 32768, DEFAULT_FLAGS,
                notes="no speculative decoding for Gemma-3 (as in the paper); " + _GATED),
    ModelPreset("gemma3-4b", "google/gemma-3-4b-it", "Gemma-3", "4B", 131072, DEFAULT_FLAGS,
                notes="no speculative decoding for Gemma-3 (as in the paper); multimodal checkpoint served for "
                "text only (--vllm-arg='--limit-mm-per-prompt={\"image\":0}' frees the vision encoder's memory "
                "on recent vLLM); " + _GATED),
    ModelPreset("qwen3-1.7b", "Qwen/Qwen3-1.7B", "Qwen3", "1.7B", 40960, DEFAULT_FLAGS,
                chat_template_kwargs={"enable_thinking": False},
                notes="thinking off (chat_template_kwargs enable_thinking=false, sent per request); sampling comes "
                "from the model's generation config, which Qwen tunes for thinking mode (Qwen suggests "
                "temperature 0.7, top-p 0.8, top-k 20 without thinking: --temperature/--top-p/--top-k)"),
    ModelPreset("llama3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", "Llama-3.2", "1B", 131072, DEFAULT_FLAGS,
                notes=_GATED),
]}


def get_preset(model: str | None) -> ModelPreset | None:
    """The preset named `model` (case-insensitive short name), or None for anything else (Hub ids included)."""
    return PRESETS.get(str(model).lower()) if model else None


def apply_preset(backend: str, kw: dict) -> dict:
    """`RunConfig.for_backend` keywords with the preset named by kw["model"] applied (see the module docstring);
    `kw` unchanged when the model is not a preset name or the backend is `embedded`. Keywords set to None must
    already be dropped (they count as given otherwise)."""
    preset = get_preset(kw.get("model"))
    if preset is None or backend not in ("vllm", "endpoint"):
        return kw
    kw = dict(kw, model=preset.hub_id)
    kw.setdefault("context_length", preset.context_length)
    if preset.chat_template_kwargs is not None:
        kw["chat_template_kwargs"] = {**preset.chat_template_kwargs, **(kw.get("chat_template_kwargs") or {})}
    if backend == "vllm":
        kw["vllm_args"] = [*preset.serve_args(), *(kw.get("vllm_args") or [])]  # the user's own come last: win
        if preset.max_concurrency:
            kw.setdefault("max_concurrency", preset.max_concurrency)
    return kw


# -- `finephrase models` ---------------------------------------------------------------------------------------


def add_parser(sub):
    p = sub.add_parser(
        "models", help="list the generator model presets (short names for --model)",
        description="List the generator models the FinePhrase paper compared, by short name: Hub id, context "
        "length, `vllm serve` flags, chat-template arguments, and where the settings come from. Pass a short name "
        "as --model with --backend vllm (or endpoint); a Hub id is used as it is, without the preset.")
    p.add_argument("name", nargs="?", help="show only this preset")
    p.add_argument("--json", action="store_true", help="print the presets as JSON")
    p.set_defaults(func=main)


def main(args) -> int:
    from finephrase.errors import UsageError

    presets = list(PRESETS.values())
    if args.name:
        one = get_preset(args.name)
        if one is None:
            raise UsageError(f"unknown model preset '{args.name}'. Available: {', '.join(PRESETS)}")
        presets = [one]
    if args.json:
        print(json.dumps({p.name: p.to_dict() for p in presets}, indent=2))
        return 0
    w = max(len(p.name) for p in presets)
    hw = max(len(p.hub_id) for p in presets)
    print(f"{'NAME':<{w}}  {'HUB ID':<{hw}}  CONTEXT  FLAGS FROM")
    for p in presets:
        print(f"{p.name:<{w}}  {p.hub_id:<{hw}}  {p.context_length:>7}  {p.flags_from}")
        print(f"{'':<{w}}    vllm serve: {' '.join(p.serve_args()) or '(none)'}"
              + (f"; {p.max_concurrency} requests in flight per task" if p.max_concurrency else ""))
        if p.chat_template_kwargs:
            print(f"{'':<{w}}    chat_template_kwargs: {json.dumps(p.chat_template_kwargs)}")
        if p.notes:
            print(f"{'':<{w}}    {p.notes}")
    print("\ncontext: the paper's 8192, or the model's maximum if lower. Flags given with --vllm-arg come after "
          "the preset's and win; a Hub id as --model runs without the preset. See docs/models.md.")
    return 0
