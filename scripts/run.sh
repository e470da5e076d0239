#!/usr/bin/env bash
# Runs the product: installs liblmdb-dev when missing, builds, and starts the agent with every role that
# exists so far (AGENT_ROLE=all by default), its log under ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
swift build -c release --product agent >&2
exec .build/release/agent "$@"
