#!/usr/bin/env bash
# Runs the whole test suite: installs liblmdb-dev when missing, checks the formatting (`.swift-format`), then
# one `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
if ! swift format lint --strict --recursive Package.swift Sources Tests; then
    echo "formatting differs from .swift-format: run 'swift format -i -r Package.swift Sources Tests'" >&2
    exit 1
fi
exec swift test "$@"
