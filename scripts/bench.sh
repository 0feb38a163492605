#!/usr/bin/env bash
# The benchmark: `scripts/bench.sh [--seconds N] [--out FILE] ...`
#
# Builds convgroups and the benchmark in release, installs etcd (Debian's
# etcd-server) if it is missing, and runs bench/ — which starts convgroups,
# an empty tonic server and etcd on 127.0.0.1, measures them in one run and
# prints a markdown report with the ratios and targets. Every server is
# stopped by pid when it ends. Takes about 5-8 minutes on 2 cores. Its last
# phase is the cluster phase (3 replicas over a 3-member etcd cluster next to
# raw etcd requests of the same shape, docs/cluster.md); `scripts/bench.sh
# cluster` runs that phase alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
    echo "==> installing etcd (apt-get install etcd-server)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends etcd-server >&2
    # The package may start a system etcd on 127.0.0.1:2379; the benchmark
    # uses its own instances on free ports, so stop it if it runs.
    (systemctl stop etcd 2>/dev/null || service etcd stop 2>/dev/null || pkill -x etcd 2>/dev/null) || true
fi

# BENCH_PROFILE picks the cargo profile (CI uses the cheaper ci-bench).
PROFILE="${BENCH_PROFILE:-release}"
echo "==> cargo build --profile $PROFILE (convgroups, convgroups-bench)" >&2
cargo build --profile "$PROFILE" -q --bin convgroups -p convgroups
cargo build --profile "$PROFILE" -q -p convgroups-bench
exec "${CARGO_TARGET_DIR:-target}/$PROFILE/convgroups-bench" "$@"
