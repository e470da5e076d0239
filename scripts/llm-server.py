#!/usr/bin/env python3
"""Serves a GGUF model over llama.cpp's OpenAI-compatible HTTP API (xllamacpp), on loopback only.

Started and supervised by `agent` (AI_PROVIDER=local); it stays up until SIGTERM/SIGINT. The agent talks to it
only over HTTP (/health, /v1/chat/completions), as it would to Ollama or a remote provider.
"""
import argparse
import os
import signal
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--threads", type=int, default=0, help="0: llama.cpp's default")
    parser.add_argument("--alias", default="", help="the model name the API reports")
    parser.add_argument("--parent", type=int, default=0, help="exit when this process (the agent) is gone")
    args = parser.parse_args()
    if not os.path.isfile(args.model):
        print(f"llm-server: no model file at {args.model}", file=sys.stderr)
        return 66
    import xllamacpp  # imported late: a missing package is reported by the agent's install step

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.ctx
    params.port = args.port
    params.hostnames = [args.host]
    params.use_jinja = True
    if args.alias:
        params.model_alias = args.alias
    if args.threads > 0:
        params.cpuparams.n_threads = args.threads
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.parent:
        # The agent may be killed without a chance to stop us: follow it.
        def watch_parent() -> None:
            while not stop.wait(1.0):
                if os.getppid() != args.parent:
                    stop.set()

        threading.Thread(target=watch_parent, daemon=True).start()
    server = xllamacpp.Server(params)
    print(f"llm-server: listening on {args.host}:{args.port} model={args.model}", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
