#!/usr/bin/env bash
# A 3-member etcd cluster on loopback, for the contract tests on the etcd
# backend (scripts/test.sh) and for trying cluster mode (scripts/cluster.sh).
#
#   scripts/etcd.sh start DIR [PORTS]       start members m0..m2; prints the
#                                           client endpoints, comma-separated
#   scripts/etcd.sh stop DIR                stop them (TERM, then KILL after 5 s)
#   scripts/etcd.sh status DIR              pids and etcd's own status table
#
# PORTS is either
#   * three client ports, comma-separated (default 2379,22379,32379, the
#     ports of etcd's own local-cluster Procfile); each member listens for
#     peers on its client port + 1; or
#   * one BASE port: client ports BASE, BASE+1, BASE+2 and peer ports
#     BASE+100, BASE+101, BASE+102 (e.g. 42379 -> 42379-42381, 42479-42481).
# All of them must be free: start refuses to run next to anything already
# listening there (for example the etcd that Debian's package starts on 2379).
#
# Data (DIR/m0..m2), logs (DIR/m0.log..) and pid files (DIR/m0.pid..) live in
# DIR; DIR/endpoints holds the printed endpoints while the cluster runs. A
# second start on the same DIR leaves running members alone and restarts the
# others on their data (state "existing"), e.g. one killed by hand; use the
# same PORTS as the first start. stop kills only the pids in the pid files,
# and only while they still are etcd on DIR's data (a pid may be reused).
# The limits are raised to what one convgroups mutation may need
# (docs/cluster.md); heartbeat and election timings (etcd's defaults, 100 ms
# and 1 s) suit a busy 2-core machine, where shorter ones risk spurious
# leader changes. Installs Debian's etcd-server with
# apt-get when etcd is missing and this runs as root.
set -euo pipefail

die() { printf 'scripts/etcd.sh: error: %s\n' "$*" >&2; exit 1; }

# etcd reads every flag from ETCD_<FLAG> too and refuses a flag that is also
# in the environment; etcdctl likewise with ETCDCTL_*. The cluster is defined
# by this script alone.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^ETCD(CTL)?_' || true)
export ETCDCTL_API=3

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

# Whether pid $1 is an etcd whose --data-dir is DIR/m<i> for DIR $2 (guards
# against a pid file whose process is gone and whose pid was reused). A
# killed member that is not yet reaped (a zombie) has no cmdline: gone.
is_our_etcd() {
    local pid=$1 dir=$2 args=() data="" i
    alive "$pid" || return 1
    mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
    [[ ${#args[@]} -gt 0 && $(basename "${args[0]}") == etcd ]] || return 1
    for ((i = 1; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            --data-dir) data=${args[i + 1]:-} ;;
            --data-dir=*) data=${args[i]#--data-dir=} ;;
        esac
    done
    [[ -n $data ]] || return 1
    [[ $data == /* ]] || data="$(readlink "/proc/$pid/cwd")/$data"
    [[ "$(dirname "$(realpath -m "$data")")" == "$(realpath -m "$dir")" ]]
}

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
    local dir=$1 spec=${2:-2379,22379,32379} ports peers=() p
    if [[ $spec =~ ^[0-9]+$ ]]; then
        ports=("$spec" $((spec + 1)) $((spec + 2)))
        peers=($((spec + 100)) $((spec + 101)) $((spec + 102)))
    else
        IFS=, read -r -a ports <<<"$spec"
        [[ ${#ports[@]} -eq 3 ]] || die "PORTS must be one BASE port or three client ports, comma-separated (got $spec)"
        for p in "${ports[@]}"; do peers+=($((p + 1))); done
    fi
    for p in "${ports[@]}" "${peers[@]}"; do
        [[ $p =~ ^[0-9]+$ && $p -ge 1024 && $p -le 65535 ]] || die "bad port $p (from $spec)"
    done
    ensure_etcd
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local cluster="" eps="" i
    for i in 0 1 2; do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:${peers[i]}"
        eps+="${eps:+,}127.0.0.1:${ports[i]}"
    done
    local running=()
    for i in 0 1 2; do
        running[i]=0
        if [[ -f "$dir/m$i.pid" ]] && is_our_etcd "$(cat "$dir/m$i.pid")" "$dir"; then
            running[i]=1
            echo "m$i already runs (pid $(cat "$dir/m$i.pid"))" >&2
            continue
        fi
        for p in "${ports[i]}" "${peers[i]}"; do
            listening "$p" && die "127.0.0.1:$p is already in use (another etcd? Debian's package starts one on 2379: systemctl stop etcd)"
        done
    done
    local token
    token="convgroups-$(date +%s)-$$"
    for i in 0 1 2; do
        [[ ${running[i]} -eq 1 ]] && continue
        local client="http://127.0.0.1:${ports[i]}" peer="http://127.0.0.1:${peers[i]}"
        local state=new
        [[ -d "$dir/m$i/member" ]] && state=existing
        etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token "$token" \
            --max-txn-ops 8192 --max-request-bytes 33554432 \
            --heartbeat-interval 100 --election-timeout 1000 \
            --logger zap --log-level warn \
            </dev/null >>"$dir/m$i.log" 2>&1 &
        echo $! >"$dir/m$i.pid"
    done
    local deadline=$((SECONDS + 30))
    # endpoint health asks every member for a linearizable read: it passes
    # only when all three are up and agree on a leader.
    until etcdctl --endpoints "$eps" --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1; do
        for i in 0 1 2; do
            if ! alive "$(cat "$dir/m$i.pid")"; then
                tail -n 20 "$dir/m$i.log" >&2 || true
                stop "$dir"
                die "etcd member m$i exited (log above: $dir/m$i.log)"
            fi
        done
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
    [[ -d $dir ]] || return 0
    dir="$(cd "$dir" && pwd)"
    for pidfile in "$dir"/m*.pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        if is_our_etcd "$pid" "$dir"; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    rm -f "$dir/endpoints"
}

status() {
    local dir=$1 pidfile
    [[ -d $dir ]] || die "no such directory: $dir"
    dir="$(cd "$dir" && pwd)"
    for pidfile in "$dir"/m*.pid; do
        [[ -f "$pidfile" ]] || continue
        if is_our_etcd "$(cat "$pidfile")" "$dir"; then
            echo "$(basename "$pidfile" .pid): running, pid $(cat "$pidfile")"
        else
            echo "$(basename "$pidfile" .pid): not running"
        fi
    done
    [[ -f "$dir/endpoints" ]] && etcdctl --endpoints "$(cat "$dir/endpoints")" \
        --dial-timeout 1s endpoint status -w table || true
}

case "${1:-}" in
    start) [[ $# -ge 2 ]] || die "usage: scripts/etcd.sh start DIR [PORTS]"; start "$2" "${3:-}" ;;
    stop) [[ $# -eq 2 ]] || die "usage: scripts/etcd.sh stop DIR"; stop "$2" ;;
    status) [[ $# -eq 2 ]] || die "usage: scripts/etcd.sh status DIR"; status "$2" ;;
    *) die "usage: scripts/etcd.sh start DIR [PORTS] | stop DIR | status DIR" ;;
esac
