#!/usr/bin/env bash
# Runs the product: installs liblmdb-dev when missing, builds, installs the bundled local model on first run
# (unless AI_BASE_URL names a provider or AI_PROVIDER=offline), and starts the agent with every role
# (AGENT_ROLE=all by default), its log under ./data and the web chat on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
swift build -c release --product agent >&2
if [ -z "${AI_BASE_URL:-}" ] && [ "${AI_PROVIDER:-local}" = "local" ]; then
    if ! .build/release/agent model status >/dev/null 2>&1; then
        # The agent starts anyway: with the offline assistant when the model cannot be installed.
        .build/release/agent model install >&2 ||
            echo "[run] the local model could not be installed (see above); the offline assistant will answer" >&2
    fi
fi
exec .build/release/agent "$@"
