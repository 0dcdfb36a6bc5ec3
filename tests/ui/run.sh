#!/usr/bin/env bash
# The web view in a real browser: starts a release server on a fleet of two fixture runtimes
# (`editorial`: the trio, `studio`: twelve agents; observing every second), stores editorial's
# observed team as desired with `jhf-warp ctl`, then drives headless Chromium through
# tests/ui/check.mjs. Screenshots go to ${UI_ARTIFACTS:-target/ui-artifacts}.
# Needs: JHF_WARP_BIN, CHROMIUM (a chromium binary), NODE (Node >= 22).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${JHF_WARP_BIN:?the jhf-warp binary}" "${CHROMIUM:?a chromium binary}" "${NODE:?node >= 22}"
ARTIFACTS="${UI_ARTIFACTS:-$PWD/target/ui-artifacts}"
WORK="$(mktemp -d)"
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
READER="ui-reader-token-0123456789abcdef"
OPERATOR="ui-operator-token-0123456789abcdef"
cat > "$WORK/runtimes.yaml" <<'YAML'
runtimes:
  - name: editorial
    address: fixture:trio
    labels: { env: prod, team: editorial }
  - name: studio
    address: fixture:studio12
    labels: { env: staging, team: studio }
YAML
JHF_WARP_TOKENS="viewer:reader:$READER,ops:operator:$OPERATOR" JHF_WARP_LOG=warn "$JHF_WARP_BIN" serve \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --fixtures-dir fixtures/openclaw \
  --runtimes-file "$WORK/runtimes.yaml" \
  --observe-interval 1 --drift-confirm-secs 1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  "$JHF_WARP_BIN" healthcheck --url "http://127.0.0.1:$PORT/ready" 2>/dev/null && break
  sleep 0.2
done
export JHF_WARP_SERVER="http://127.0.0.1:$PORT" JHF_WARP_TOKEN="$OPERATOR"
export JHF_WARP_CTL_RUNTIME=editorial
"$JHF_WARP_BIN" ctl topology show --format json > "$WORK/team.json"
"$JHF_WARP_BIN" ctl desired apply -f "$WORK/team.json" --yes
"$NODE" tests/ui/check.mjs "$CHROMIUM" "http://127.0.0.1:$PORT" "$READER" \
  "$WORK/data/runtimes/editorial/runtime/trio/state/openclaw.json" "$ARTIFACTS"
