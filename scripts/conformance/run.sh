#!/usr/bin/env bash
# GraphQL-over-HTTP conformance (graphql-http's auditServer), GraphiQL and the example
# petition page (its live thermometer too) in a real browser (headless Chromium via
# playwright-core), and live progress over WebSocket with the graphql-ws client, all against
# `actionkit-graphql serve --sandbox`. Works from a fresh clone on a fresh Debian
# machine: installs Chromium (apt) if missing, the node tools (npm ci, local to this
# folder), builds the gateway, starts it on a free port, runs both checks, stops it.
#
# Exit status: 0 when every audit is ok, the APQ check (real Apollo Client link) and
# the browser and subscription tests pass, 1 otherwise.
#
# Environment:
#   CONFORMANCE_PROFILE=release  build and run the release binary (default: the debug
#                                binary, built by `cargo test --no-run`, so that it
#                                reuses what CI's `cargo test` already built)
#   CHROMIUM=/path/to/chromium   another Chromium (default /usr/bin/chromium)
#   ARTIFACTS_DIR=DIR            where the screenshot and server log go
#                                (default: artifacts/ at the repo root)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
profile="${CONFORMANCE_PROFILE:-debug}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export ARTIFACTS_DIR="${ARTIFACTS_DIR:-$root/artifacts}"
mkdir -p "$ARTIFACTS_DIR"

step() { printf '\n== conformance: %s\n' "$*"; }

# --- tools -----------------------------------------------------------------------
command -v node >/dev/null || { echo "node (>= 18) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }

if [ ! -x "$CHROMIUM" ]; then
  if [ "$CHROMIUM" != /usr/bin/chromium ]; then
    echo "CHROMIUM=$CHROMIUM is not an executable" >&2
    exit 1
  fi
  step "installing Debian's chromium (not found at /usr/bin/chromium)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to apt-get install chromium" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
step "browser: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

step "npm ci in scripts/conformance (graphql-http, graphql, @apollo/client, graphql-ws, ws, playwright-core; no browser download)"
(
  cd "$here"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
)

# --- the gateway -----------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [ "$profile" = release ]; then
  step "cargo build --release --locked"
  (cd "$root" && cargo build --release --locked --bin actionkit-graphql)
  bin="$target_dir/release/actionkit-graphql"
else
  # `cargo test --no-run` rather than `cargo build`: the binary comes out with the
  # feature set of the test build, so after CI's `cargo test` nothing is rebuilt
  # (a plain `cargo build` unifies features without dev-dependencies and would
  # recompile much of the dependency tree).
  step "cargo test --locked --no-run (debug build of the gateway, shared with cargo test)"
  (cd "$root" && cargo test --locked --no-run)
  bin="$target_dir/debug/actionkit-graphql"
fi
[ -x "$bin" ] || { echo "no gateway binary at $bin" >&2; exit 1; }

port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
base="http://127.0.0.1:$port"
server_log="$ARTIFACTS_DIR/conformance-server.log"
step "starting: actionkit-graphql serve --sandbox --mode development --listen 127.0.0.1:$port (log: $server_log)"
# Settings from the caller's environment must not change what is tested; the
# submission store is a fresh directory, so a run neither needs nor leaves state.
data_dir="$(mktemp -d)"
env -u GATEWAY_CONFIG -u GATEWAY_API_KEYS -u GATEWAY_MODE -u GATEWAY_LISTEN -u GATEWAY_DATA_DIR NO_COLOR=1 \
  "$bin" serve --sandbox --mode development --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$server_log" 2>&1 &
server_pid=$!

stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}
trap stop_server EXIT
trap 'exit 130' INT TERM

ready=""
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the gateway exited before answering /healthz; its log:" >&2
    cat "$server_log" >&2
    exit 1
  fi
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$base/healthz"; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "the gateway did not answer $base/healthz within 60 s; its log:" >&2
  cat "$server_log" >&2
  exit 1
fi
echo "gateway up at $base"

# --- the checks ------------------------------------------------------------------
status=0

step "GraphQL-over-HTTP audit (graphql-http auditServer) on $base/graphql"
if URL="$base/graphql" node "$here/audit.mjs"; then audit=passed; else audit=FAILED; status=1; fi

step "automatic persisted queries through Apollo Client's PersistedQueryLink on $base/graphql"
if URL="$base/graphql" node "$here/apq.mjs"; then apq=passed; else apq=FAILED; status=1; fi

step "GraphiQL in headless Chromium on $base/"
if BASE_URL="$base" node "$here/browser.mjs"; then browser=passed; else browser=FAILED; status=1; fi

# The gateway logs the embedded sandbox's address at start.
sandbox_url="$(grep -o 'embedded sandbox at http://[0-9.:]*' "$server_log" | head -n 1 | sed 's/^embedded sandbox at //')"
step "the example petition page in headless Chromium on $base/examples/petition (sandbox ${sandbox_url:-not found})"
if [ -n "$sandbox_url" ] && BASE_URL="$base" SANDBOX_URL="$sandbox_url" node "$here/petition.mjs"; then
  petition=passed
else
  petition=FAILED
  status=1
fi

# The demo `submit` key the gateway printed at start (development mode only).
demo_key="$(sed -n 's/.*its demo `submit` key (this process only, page [^)]*): \([A-Za-z0-9_-]*\).*/\1/p' "$server_log" | head -n 1)"
step "live progress over WebSocket with the graphql-ws client on ${base/http/ws}/graphql"
if [ -n "$sandbox_url" ] && [ -n "$demo_key" ] && BASE_URL="$base" SANDBOX_URL="$sandbox_url" DEMO_KEY="$demo_key" node "$here/subscription.mjs"; then
  subscription=passed
else
  subscription=FAILED
  status=1
fi

step "summary: audit $audit, APQ $apq, browser test $browser, petition test $petition, subscription test $subscription (screenshots: $ARTIFACTS_DIR/graphiql.png, $ARTIFACTS_DIR/petition.png)"
if [ "$status" -ne 0 ]; then
  echo "gateway log (tail):"
  tail -n 40 "$server_log" || true
fi
exit "$status"
