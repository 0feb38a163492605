#!/usr/bin/env bash
# Runs every client example against a real server and checks what they get:
#
#   python seed scenario   examples/python/seed_scenario.py   (grpcio)
#   python watch/resume    examples/python/watch_resume.py
#   python group actions   examples/python/group_actions.py
#   python group looks     examples/python/group_looks.py
#   node seed scenario     examples/node/seed-scenario.js     (@grpc/grpc-js)
#   node watch/resume      examples/node/watch-resume.js
#   python smart groups    examples/python/smart_groups.py
#   node smart groups      examples/node/smart-groups.js
#   node group actions     examples/node/group-actions.js
#   node group looks       examples/node/group-looks.js
#   python group order     examples/python/group_order.py     (issue 14 item 3)
#   node group order       examples/node/group-order.js
#   browser page           examples/browser: buf generate + tsc + esbuild, then
#                          headless Chromium (playwright-core) with a screenshot
#                          in target/browser-screenshot.png
#   JS SDK                 clients/js (convgroups-chat): npm run build (buf
#                          generate + tsc + the test page), then npm test:
#                          Tencent's doc samples in Node and headless
#                          Chromium, error codes, events, restarts, token
#                          refresh (it starts servers of its own, with this
#                          binary, on 127.0.0.1:0)
#   buf curl               the README's buf curl commands (reflection, ErrorInfo)
#   README walkthrough     scripts/readme-walkthrough.sh: the README's grpcurl and
#                          buf curl blocks, run exactly as written and compared
#                          with the README's outputs (its own server, on the
#                          README's address 127.0.0.1:50051)
#
# 1. Builds the server (`cargo build`, target/debug/convgroups; set
#    CONVGROUPS_BIN=path to use another binary and skip the build).
# 2. Installs what the examples need, only when missing or changed:
#      - Python: a venv in .tools/py-venv with examples/python/requirements.txt
#      - Node:   `npm ci` in examples/node, examples/browser and clients/js
#      - Chromium: Debian's package (apt-get, needs root) unless
#        /usr/bin/chromium exists or CHROMIUM=path is set
# 3. Starts the server on a free 127.0.0.1 port (not 50051, which the README
#    walkthrough uses) with a temporary data dir and --cors-allow-origin '*',
#    mints one token per example with `convgroups token`, runs each check
#    (each has its own user), and stops the server on exit.
#
# Ends with `clients: N passed, M failed`; exits 1 if any check failed.
# Needs the Rust toolchain, python3 (with venv/pip) and node 20+ with npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
PYTHON="${PYTHON:-python3}"
CHECK_TIMEOUT="${CHECK_TIMEOUT:-180}" # seconds per check
SCREENSHOT="${SCREENSHOT:-$ROOT/target/browser-screenshot.png}"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/clients.sh: error: %s\n' "$*" >&2; exit 1; }
quiet() { # runs a command, showing its output only if it fails
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}
sha() { sha256sum "$@" | sha256sum | cut -c1-16; }

# --- 1. server binary -------------------------------------------------------
if [[ -n "${CONVGROUPS_BIN:-}" ]]; then
    BIN="$CONVGROUPS_BIN"
else
    step "cargo build (server)"
    cargo build --quiet --bin convgroups
    BIN="$ROOT/target/debug/convgroups"
fi
[[ -x "$BIN" ]] || die "no server binary at $BIN"
BIN="$(realpath "$BIN")" # the checks run in other directories

# --- 2. dependencies --------------------------------------------------------
step "dependencies"
VENV="$TOOLS_DIR/py-venv"
req="$ROOT/examples/python/requirements.txt"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.clients-stamp" 2>/dev/null)" != "$(sha "$req")" ]]; then
    echo "python: venv $VENV, pip install -r examples/python/requirements.txt"
    mkdir -p "$TOOLS_DIR"
    quiet "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed"
    PIP_ROOT_USER_ACTION=ignore quiet "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
        -r "$req" || die "pip install failed"
    sha "$req" >"$VENV/.clients-stamp"
fi
echo "python: $("$VENV/bin/python" --version) with $("$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | awk '$1 ~ /^(grpcio|grpcio-status|protobuf)$/ {printf "%s %s  ", $1, $2}')"

for dir in examples/node examples/browser clients/js; do
    lock="$ROOT/$dir/package-lock.json"
    if [[ "$(cat "$ROOT/$dir/node_modules/.clients-stamp" 2>/dev/null)" != "$(sha "$lock")" ]]; then
        echo "node: npm ci in $dir"
        (cd "$dir" && quiet npm ci --no-audit --no-fund) || die "npm ci in $dir failed"
        sha "$lock" >"$ROOT/$dir/node_modules/.clients-stamp"
    fi
done
echo "node: $(node --version), npm $(npm --version 2>/dev/null)"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    [[ "$(id -u)" == 0 ]] || die "$CHROMIUM is missing: apt-get install chromium (as root), or set CHROMIUM=path"
    echo "chromium: apt-get install chromium"
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-get update -qq || die "apt-get update failed"
    quiet apt-get install -y -qq --no-install-recommends chromium || die "apt-get install chromium failed"
fi
echo "chromium: $("$CHROMIUM" --version 2>/dev/null)"
BUF="${BUF:-$ROOT/examples/browser/node_modules/.bin/buf}" # @bufbuild/buf, a devDependency of the page
echo "buf: $("$BUF" --version)"

# --- 3. server ----------------------------------------------------------------
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$VENV/bin/python" -c 'import socket
while True:  # any free port but 50051, which the README walkthrough uses
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if port != 50051: print(port); break')"
ADDR="127.0.0.1:$PORT"
step "server on $ADDR (data in $WORK/data, log $WORK/server.log)"
"$BIN" serve --listen "$ADDR" --data-dir "$WORK/data" --cors-allow-origin '*' \
    --shutdown-grace 2s --log-level warn >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Ready when the health service says SERVING (asked through reflection).
ready=""
for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
    if "$BUF" curl --protocol grpc --http2-prior-knowledge --timeout 2s \
        "http://$ADDR/grpc.health.v1.Health/Check" 2>/dev/null | grep -q '"SERVING"'; then
        ready=1
        break
    fi
    sleep 0.2
done
[[ -n "$ready" ]] || { cat "$WORK/server.log" >&2; die "the server did not become SERVING"; }
echo "health: SERVING"

token() { "$BIN" token --user "$1" --data-dir "$WORK/data"; }

# --- 4. checks ----------------------------------------------------------------
PASSED=0
FAILED=0
FAILURES=()
check() { # check NAME USER DIR COMMAND...
    local name="$1" user="$2" dir="$3"
    shift 3
    step "$name"
    local started=$SECONDS rc=0
    # bash -c runs commands and the exported check functions alike.
    (cd "$dir" && CONVGROUPS_ADDR="$ADDR" CONVGROUPS_TOKEN="$(token "$user")" \
        timeout "$CHECK_TIMEOUT" bash -c '"$@"' check "$@") || rc=$?
    if [[ $rc -eq 0 ]]; then
        PASSED=$((PASSED + 1))
        printf -- '--- PASS %s (%ds)\n' "$name" "$((SECONDS - started))"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$name")
        printf -- '--- FAIL %s (exit %d after %ds)\n' "$name" "$rc" "$((SECONDS - started))"
    fi
}

browser_check() {
    npm run --silent build && SCREENSHOT="$SCREENSHOT" CHROMIUM="$CHROMIUM" node test/browser.test.js
}

# The README's buf curl commands, against this server (reflection supplies
# the schema; JSON in and out).
buf_curl() { # buf_curl METHOD [JSON]: prints the command (token elided), runs it
    local url="http://$CONVGROUPS_ADDR/convgroups.v1.ConversationGroupService/$1"
    printf '$ buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN"%s %s\n' \
        "${2:+ -d '$2'}" "$url" >&2
    "$BUF" curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $CONVGROUPS_TOKEN" \
        ${2:+-d "$2"} "$url"
}
buf_curl_check() {
    local out rc=0
    buf_curl CreateConversationGroup '{"groupName": "Suppliers", "conversationIds": ["GROUPtest", "C2Cexample"]}'
    out="$(buf_curl GetConversationGroupList)"
    echo "$out"
    grep -q '"groupNames": \[' <<<"$out" && grep -q '"Suppliers"' <<<"$out" || { echo "FAIL: Suppliers not listed"; return 1; }
    out="$(buf_curl CreateConversationGroup '{"groupName": "Suppliers", "conversationIds": ["C2Cexample"]}' 2>&1)" || rc=$?
    echo "$out"
    [[ $rc -ne 0 ]] || { echo "FAIL: creating the group twice succeeded"; return 1; }
    grep -q '"code": "already_exists"' <<<"$out" && grep -q '"type": "google.rpc.ErrorInfo"' <<<"$out" \
        || { echo "FAIL: no already_exists with an ErrorInfo detail"; return 1; }
    echo "buf curl: OK (exit code $rc for the failed call)"
}

# The SDK's tests start their own servers (they restart them), with $BIN.
sdk_check() {
    npm run --silent build && CONVGROUPS_BIN="$BIN" CHROMIUM="$CHROMIUM" npm test --silent
}

export -f browser_check buf_curl buf_curl_check sdk_check
export BUF CHROMIUM SCREENSHOT BIN
PY="$VENV/bin/python"
check "python seed scenario" example-python examples/python "$PY" seed_scenario.py
check "python watch/resume" py-watcher examples/python "$PY" watch_resume.py
check "python group actions" example-python-actions examples/python "$PY" group_actions.py
check "node seed scenario" example-node examples/node node seed-scenario.js
check "node watch/resume" node-watcher examples/node node watch-resume.js
check "python smart groups" example-python examples/python "$PY" smart_groups.py
check "node smart groups" example-node examples/node node smart-groups.js
check "node group actions" example-node-actions examples/node node group-actions.js
check "python group looks" example-python-looks examples/python "$PY" group_looks.py
check "node group looks" example-node-looks examples/node node group-looks.js
check "python group order" example-python-order examples/python "$PY" group_order.py
check "node group order" example-node-order examples/node node group-order.js
check "browser page (grpc-web, headless Chromium)" example-browser examples/browser browser_check
check "JS SDK convgroups-chat (Node, headless Chromium)" sdk-js clients/js sdk_check
check "buf curl" curl-alice . buf_curl_check
# Runs its own server on 127.0.0.1:50051 (the README's address), with this binary.
check "README grpcurl walkthrough" readme-alice . env CONVGROUPS_BIN="$BIN" scripts/readme-walkthrough.sh

if [[ $FAILED -gt 0 ]]; then
    printf '\nfailed: %s\n--- server log (last 40 lines)\n' "${FAILURES[*]}"
    tail -n 40 "$WORK/server.log"
fi
printf '\nclients: %d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
