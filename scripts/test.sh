#!/usr/bin/env bash
# Runs the whole test suite: installs liblmdb-dev when missing, then one `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec swift test "$@"
