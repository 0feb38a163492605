#!/usr/bin/env bash
# Cluster mode on one machine, for a person to try (docs/cluster.md):
#
#   scripts/cluster.sh up       build, then start 3 etcd members (client ports
#                               2379, 22379, 32379) and 3 convgroups replicas
#                               (127.0.0.1:50051-50053, metrics on 9091-9093)
#                               sharing one token secret, all in ./cluster/
#   scripts/cluster.sh status   what runs, and etcd's own view
#   scripts/cluster.sh down     stop the replicas, then etcd
#
# Everything listens on loopback only. CLUSTER_PROFILE=debug builds faster
# and runs slower. Data stays in ./cluster/ (git-ignored) between runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DIR="$ROOT/cluster"
ENDPOINTS="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
PROFILE="${CLUSTER_PROFILE:-release}"
BIN="$ROOT/target/$PROFILE/convgroups"

die() { printf 'scripts/cluster.sh: error: %s\n' "$*" >&2; exit 1; }

up() {
    mkdir -p "$DIR"
    echo "==> cargo build --$PROFILE --bin convgroups" >&2
    if [[ $PROFILE == release ]]; then cargo build --release -q --bin convgroups; else cargo build -q --bin convgroups; fi
    echo "==> etcd: 3 members on $ENDPOINTS (data in cluster/etcd)" >&2
    scripts/etcd.sh start "$DIR/etcd" 2379,22379,32379 >/dev/null
    if [[ ! -s "$DIR/secret" ]]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/secret")
    fi
    local i
    for i in 1 2 3; do
        local pidfile="$DIR/replica$i.pid"
        if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "replica $i already runs (pid $(cat "$pidfile"))" >&2
            continue
        fi
        "$BIN" serve --backend etcd --etcd-endpoints "$ENDPOINTS" \
            --listen "127.0.0.1:5005$i" --data-dir "$DIR/replica$i" \
            --auth-secret-file "$DIR/secret" --metrics-listen "127.0.0.1:909$i" \
            </dev/null >"$DIR/replica$i.log" 2>&1 &
        echo $! >"$pidfile"
    done
    for i in 1 2 3; do
        local deadline=$((SECONDS + 30))
        until grep -q "serving" "$DIR/replica$i.log" 2>/dev/null; do
            kill -0 "$(cat "$DIR/replica$i.pid")" 2>/dev/null || { cat "$DIR/replica$i.log" >&2; die "replica $i exited"; }
            [[ $SECONDS -lt $deadline ]] || die "replica $i did not start within 30 s (cluster/replica$i.log)"
            sleep 0.2
        done
    done
    cat <<TRY
Up: etcd on $ENDPOINTS, replicas on 127.0.0.1:50051, :50052, :50053.

  TOKEN=\$($BIN token --user alice --auth-secret-file cluster/secret)
  grpcurl -plaintext -H "authorization: Bearer \$TOKEN" -d '{"start_revision": 0}' \\
    127.0.0.1:50052 convgroups.v1.ConversationGroupService/WatchGroupEvents &
  grpcurl -plaintext -H "authorization: Bearer \$TOKEN" \\
    -d '{"group_name": "Suppliers", "conversation_ids": ["C2Cbob"]}' \\
    127.0.0.1:50051 convgroups.v1.ConversationGroupService/CreateConversationGroup

More in docs/cluster.md. Stop with: scripts/cluster.sh down
TRY
}

down() {
    local i pid
    for i in 1 2 3; do
        [[ -f "$DIR/replica$i.pid" ]] || continue
        pid="$(cat "$DIR/replica$i.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$DIR/replica$i.pid"
    done
    [[ -d "$DIR/etcd" ]] && scripts/etcd.sh stop "$DIR/etcd"
    echo "down (data kept in cluster/)"
}

status() {
    local i
    for i in 1 2 3; do
        if [[ -f "$DIR/replica$i.pid" ]] && kill -0 "$(cat "$DIR/replica$i.pid")" 2>/dev/null; then
            echo "replica $i: running, pid $(cat "$DIR/replica$i.pid"), 127.0.0.1:5005$i"
        else
            echo "replica $i: not running"
        fi
    done
    [[ -d "$DIR/etcd" ]] && scripts/etcd.sh status "$DIR/etcd"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: scripts/cluster.sh up|status|down" ;;
esac
