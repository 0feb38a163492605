#!/usr/bin/env bash
# A 3-member etcd cluster on loopback, for the contract tests on the etcd
# backend (scripts/test.sh) and for trying cluster mode (scripts/cluster.sh).
#
#   scripts/etcd.sh start DIR [PORTS]       start members m0..m2; prints the
#                                           client endpoints, comma-separated
#   scripts/etcd.sh stop DIR                stop them (TERM, then KILL after 5 s)
#   scripts/etcd.sh status DIR              pids and etcd's own status table
#
# PORTS are the three client ports, comma-separated (default
# 2379,22379,32379, the ports of etcd's own local-cluster Procfile); each
# member listens for peers on its client port + 1.
# Data, logs and pid files live in DIR. The limits are raised to what one
# convgroups mutation may need (docs/cluster.md); heartbeat and election
# timings suit a busy 2-core machine. Installs Debian's etcd-server with
# apt-get when etcd is missing and this runs as root.
set -euo pipefail

die() { printf 'scripts/etcd.sh: error: %s\n' "$*" >&2; exit 1; }

ensure_etcd() {
    command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 && return
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1 \
        || die "etcd is not installed: apt-get install etcd-server etcd-client (as root)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends etcd-server etcd-client >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends etcd-server etcd-client >&2; } \
        || die "apt-get install etcd-server etcd-client failed"
    (systemctl stop etcd 2>/dev/null || service etcd stop 2>/dev/null || true) >/dev/null 2>&1
}

start() {
    local dir=$1 ports
    IFS=, read -r -a ports <<<"${2:-2379,22379,32379}"
    [[ ${#ports[@]} -eq 3 ]] || die "PORTS must be three client ports, comma-separated (got ${2:-})"
    ensure_etcd
    mkdir -p "$dir"
    local cluster="" eps="" i
    for i in 0 1 2; do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ports[i] + 1))"
        eps+="${eps:+,}127.0.0.1:${ports[i]}"
    done
    local token
    token="convgroups-$(date +%s)-$$"
    for i in 0 1 2; do
        local client="http://127.0.0.1:${ports[i]}" peer="http://127.0.0.1:$((ports[i] + 1))"
        [[ -f "$dir/m$i.pid" ]] && kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null && die "m$i already runs (pid $(cat "$dir/m$i.pid"))"
        local state=new
        [[ -d "$dir/m$i/member" ]] && state=existing
        etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token "$token" \
            --max-txn-ops 8192 --max-request-bytes 33554432 \
            --heartbeat-interval 100 --election-timeout 1000 \
            --logger zap --log-level warn \
            </dev/null >"$dir/m$i.log" 2>&1 &
        echo $! >"$dir/m$i.pid"
    done
    local deadline=$((SECONDS + 30))
    until ETCDCTL_API=3 etcdctl --endpoints "$eps" --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1; do
        if [[ $SECONDS -ge $deadline ]]; then
            tail -n 20 "$dir"/m*.log >&2 || true
            stop "$dir"
            die "the etcd cluster did not become healthy within 30 s"
        fi
        sleep 0.2
    done
    echo "$eps" >"$dir/endpoints"
    echo "$eps"
}

stop() {
    local dir=$1 pidfile pid
    for pidfile in "$dir"/m*.pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    rm -f "$dir/endpoints"
}

status() {
    local dir=$1 pidfile
    for pidfile in "$dir"/m*.pid; do
        [[ -f "$pidfile" ]] || continue
        if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$(basename "$pidfile" .pid): running, pid $(cat "$pidfile")"
        else
            echo "$(basename "$pidfile" .pid): not running"
        fi
    done
    [[ -f "$dir/endpoints" ]] && ETCDCTL_API=3 etcdctl --endpoints "$(cat "$dir/endpoints")" \
        --dial-timeout 1s endpoint status -w table || true
}

case "${1:-}" in
    start) [[ $# -ge 2 ]] || die "usage: scripts/etcd.sh start DIR [PORTS]"; start "$2" "${3:-}" ;;
    stop) [[ $# -eq 2 ]] || die "usage: scripts/etcd.sh stop DIR"; stop "$2" ;;
    status) [[ $# -eq 2 ]] || die "usage: scripts/etcd.sh status DIR"; status "$2" ;;
    *) die "usage: scripts/etcd.sh start DIR [PORTS] | stop DIR | status DIR" ;;
esac
