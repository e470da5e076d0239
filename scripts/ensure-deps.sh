#!/usr/bin/env bash
# Installs the system packages the build needs (Debian), when missing. Used by scripts/run.sh, scripts/test.sh
# and .ci/run.
set -euo pipefail
if ! pkg-config --exists lmdb 2>/dev/null || ! command -v pkg-config >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "installing liblmdb-dev (LMDB headers and library) ..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblmdb-dev pkg-config >/dev/null
fi
