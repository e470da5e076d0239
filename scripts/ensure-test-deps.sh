#!/usr/bin/env bash
# Installs what the tests need beyond the build (Debian), when missing: PostgreSQL's server programs, for the
# PostgreSQL backend's tests (each test process starts a throwaway cluster in a temporary directory; nothing is
# left running). Used by scripts/test.sh and .ci/run.
set -euo pipefail
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "installing postgresql (the PostgreSQL backend's tests start a throwaway server) ..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
