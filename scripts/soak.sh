#!/usr/bin/env bash
# Soak test of convgroups (load and leaks): thousands of watch streams
# connect and disconnect under a steady write load against a release-build
# server child process, over loopback only (127.0.0.1), bounded by a stream
# count and a time limit. Checks that open watchers return to zero, that
# the server's RSS stays flat after warm-up and that its file descriptors
# come back, and prints a table of figures (for the README).
#
# The check itself is tests/soak.rs; CI runs it with small defaults as part
# of the normal test run. This script runs a long one:
#
#   scripts/soak.sh                 # the defaults below
#   CONVGROUPS_SOAK_WATCHERS=3000000 CONVGROUPS_SOAK_MAX_SECS=900 scripts/soak.sh
#
# Knobs (environment; defaults of this script, tests/soak.rs has smaller):
#   CONVGROUPS_SOAK_WATCHERS     streams opened and closed in all   (1000000)
#   CONVGROUPS_SOAK_CONCURRENCY  streams open at once, at most      (2000)
#   CONVGROUPS_SOAK_USERS        users they spread over             (200)
#   CONVGROUPS_SOAK_WRITERS      concurrent writers                 (8)
#   CONVGROUPS_SOAK_MAX_SECS     stop opening streams after this    (600)
#   CONVGROUPS_SOAK_RSS_SLACK_MIB  allowed RSS growth after warm-up (64)
#   CONVGROUPS_SOAK_WARMUP_WRITES  writes alone before the streams  (60000)
#                                (sled's memory levels off after some tens of
#                                thousands of writes; see tests/soak.rs)
#   CONVGROUPS_SOAK_SEED         replay a run (printed at its start)
# Extra arguments go to the test binary (after --).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi

export CONVGROUPS_SOAK_WATCHERS="${CONVGROUPS_SOAK_WATCHERS:-1000000}"
export CONVGROUPS_SOAK_CONCURRENCY="${CONVGROUPS_SOAK_CONCURRENCY:-2000}"
export CONVGROUPS_SOAK_USERS="${CONVGROUPS_SOAK_USERS:-200}"
export CONVGROUPS_SOAK_WRITERS="${CONVGROUPS_SOAK_WRITERS:-8}"
export CONVGROUPS_SOAK_MAX_SECS="${CONVGROUPS_SOAK_MAX_SECS:-600}"
export CONVGROUPS_SOAK_RSS_SLACK_MIB="${CONVGROUPS_SOAK_RSS_SLACK_MIB:-64}"
export CONVGROUPS_SOAK_WARMUP_WRITES="${CONVGROUPS_SOAK_WARMUP_WRITES:-60000}"

# Every stream on its own connection costs a socket on each side: raise the
# open-file limit of this shell (inherited by the test and the server).
want=$(( CONVGROUPS_SOAK_CONCURRENCY * 2 + 1024 ))
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt "$want" ]]; then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "soak: open-file limit $(ulimit -n)" >&2

exec cargo test --release --test soak -- --nocapture --test-threads=1 "$@"
