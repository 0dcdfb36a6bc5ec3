#!/usr/bin/env bash
# Generates Python stubs from proto/ with grpcio-tools and runs tests/python/client.py against
# a release server on a free port (fixture runtime, SQLite in a scratch dir).
# Needs: JHF_WARP_BIN (the server binary) and PYTHON (a Python with grpcio-tools, grpcio-status).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${JHF_WARP_BIN:?the jhf-warp binary}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/stubs"
"$PYTHON" -m grpc_tools.protoc -I proto --python_out="$WORK/stubs" --grpc_python_out="$WORK/stubs" \
  proto/jhf/warp/v1/*.proto
# Generated modules import each other as packages: give every directory an __init__.py.
find "$WORK/stubs/jhf" -type d -exec touch {}/__init__.py \;

PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
READER="python-reader-token-0123456789"
JHF_WARP_TOKENS="py:reader:$READER" JHF_WARP_LOG=warn "$JHF_WARP_BIN" serve \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --fixtures-dir fixtures/openclaw &
SERVER_PID=$!
for _ in $(seq 1 100); do
  "$JHF_WARP_BIN" healthcheck --url "http://127.0.0.1:$PORT/ready" 2>/dev/null && break
  sleep 0.2
done
PYTHONPATH="$WORK/stubs" "$PYTHON" tests/python/client.py "127.0.0.1:$PORT" "$READER"
