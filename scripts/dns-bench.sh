#!/usr/bin/env bash
# DNS benchmark: dnsperf against `aksnet dns` and against unbound serving the
# same N A records as local data, on this machine, in the same run.
#
#   scripts/dns-bench.sh [--services N] [--runs R] [--seconds S] [--aksnet PATH]
#
# N Services (default 10,000) are applied with `aksnet apply` to a fresh
# SQLite store; unbound gets the very same names and ClusterIPs as
# `local-data` of a static `cluster.local.` zone. Each run measures both
# servers back to back, alternating which goes first:
#   - throughput: dnsperf for S seconds, 100 queries outstanding (its
#     default), every name in turn; queries per second as dnsperf reports;
#   - latency: dnsperf -v at a fixed 10,000 queries per second for S
#     seconds; p50 and p99 of the per-query latencies it prints.
# The medians over R runs (default 5) are printed as a Markdown table.
# Needs dnsperf and unbound (Debian packages; installed when missing and
# this runs as root). Listens on 127.0.0.1 only; leaves nothing behind.
set -euo pipefail

SERVICES=10000
RUNS=5
SECONDS_PER=10
AKSNET=""
while [ $# -gt 0 ]; do
    case "$1" in
    --services) SERVICES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --aksnet) AKSNET=$2; shift 2 ;;
    *) echo "usage: $0 [--services N] [--runs R] [--seconds S] [--aksnet PATH]" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$AKSNET" ]; then
    (cd "$ROOT" && cargo build --release -p aksnet >&2)
    AKSNET="$ROOT/target/release/aksnet"
fi

missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v unbound >/dev/null || [ -x /usr/sbin/unbound ] || missing+=(unbound)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "dns-bench: needs ${missing[*]} (Debian packages); run as root to install them" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)

WORK=$(mktemp -d /tmp/ak4-dns-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

STORE="sqlite:$WORK/cluster.db"
"$AKSNET" cluster init --store "$STORE" >/dev/null
echo "dns-bench: applying $SERVICES Services with aksnet apply..." >&2
t0=$(date +%s.%N)
# 60 Services per apply: each is 2 keys (object + ClusterIP), under the
# store's 128 writes per transaction.
i=0
while [ $i -lt "$SERVICES" ]; do
    f="$WORK/batch.yaml"
    : >"$f"
    j=0
    while [ $j -lt 60 ] && [ $i -lt "$SERVICES" ]; do
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%05d}\nspec: {ports: [{port: 80}]}\n' "$i" >>"$f"
        i=$((i + 1)); j=$((j + 1))
    done
    "$AKSNET" apply --store "$STORE" -f "$f" >/dev/null
done
t1=$(date +%s.%N)
echo "dns-bench: applied in $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s" >&2

# The same names and addresses for unbound, and the query file.
"$AKSNET" get --store "$STORE" svc -n default | awk 'NR > 1 && $1 ~ /^svc-/ { print $1, $3 }' >"$WORK/svcs"
n=$(wc -l <"$WORK/svcs")
[ "$n" -eq "$SERVICES" ] || { echo "dns-bench: expected $SERVICES Services, got $n" >&2; exit 1; }
awk '{ print $1 ".default.svc.cluster.local A" }' "$WORK/svcs" >"$WORK/queries"

P_AKSNET=$(free_port)
P_UNBOUND=$(free_port)
while [ "$P_UNBOUND" = "$P_AKSNET" ]; do P_UNBOUND=$(free_port); done
THREADS=$(nproc)
{
    cat <<EOF
server:
    interface: 127.0.0.1
    port: $P_UNBOUND
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: $THREADS
    so-reuseport: yes
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    local-zone: "cluster.local." static
EOF
    awk '{ printf "    local-data: \"%s.default.svc.cluster.local. 5 IN A %s\"\n", $1, $2 }' "$WORK/svcs"
    printf 'remote-control:\n    control-enable: no\n'
} >"$WORK/unbound.conf"
"$UNBOUND" -c "$WORK/unbound.conf" 2>"$WORK/unbound.log" &
PIDS+=($!)
"$AKSNET" dns --store "$STORE" --listen "127.0.0.1:$P_AKSNET" >"$WORK/aksnet-dns.out" &
PIDS+=($!)

# Both answer the first and the last name.
check() {
    local port=$1 name=$2 got=""
    for _ in $(seq 50); do
        got=$(printf '%s A\n' "$name" | dnsperf -s 127.0.0.1 -p "$port" -n 1 -v 2>/dev/null | awk '/^> /{print $2}')
        [ "$got" = NOERROR ] && return 0
        sleep 0.2
    done
    echo "dns-bench: 127.0.0.1:$port does not answer $name ($got)" >&2
    exit 1
}
first=$(head -1 "$WORK/svcs" | awk '{print $1}')
last=$(tail -1 "$WORK/svcs" | awk '{print $1}')
for p in "$P_AKSNET" "$P_UNBOUND"; do
    check "$p" "$first.default.svc.cluster.local"
    check "$p" "$last.default.svc.cluster.local"
done

qps() { # port -> queries per second at saturation
    dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries" -l "$SECONDS_PER" -c 4 2>/dev/null |
        awk '/Queries per second/ { print $4 }'
}
lat() { # port -> "p50 p99" in ms at 10,000 q/s
    dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries" -l "$SECONDS_PER" -c 4 -Q 10000 -v 2>/dev/null |
        awk '/^> / { print $NF * 1000 }' | sort -n |
        awk '{ v[NR] = $1 } END { printf "%.3f %.3f\n", v[int(NR * 0.50)], v[int(NR * 0.99)] }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$WORK/aksnet.res"
: >"$WORK/unbound.res"
for r in $(seq "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then order="aksnet unbound"; else order="unbound aksnet"; fi
    for s in $order; do
        port=$P_AKSNET
        [ "$s" = unbound ] && port=$P_UNBOUND
        q=$(qps "$port")
        l=$(lat "$port")
        echo "$q $l" >>"$WORK/$s.res"
        echo "dns-bench: run $r $s: $q q/s, p50/p99 ${l// / / } ms" >&2
    done
done

echo
echo "| server | queries/s (median of $RUNS) | p50 latency at 10k q/s, ms | p99 latency at 10k q/s, ms |"
echo "|---|---|---|---|"
for s in aksnet unbound; do
    q=$(awk '{print $1}' "$WORK/$s.res" | median)
    p50=$(awk '{print $2}' "$WORK/$s.res" | median)
    p99=$(awk '{print $3}' "$WORK/$s.res" | median)
    label="aksnet dns"
    [ "$s" = unbound ] && label="unbound $("$UNBOUND" -V | awk 'NR==1{print $2}')"
    printf '| %s | %.0f | %s | %s |\n' "$label" "$q" "$p50" "$p99"
done
echo
echo "$SERVICES A records, $RUNS runs of ${SECONDS_PER} s per server and measure, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/{print $2}')"
echo "every run: $(paste -sd ' ' "$WORK/aksnet.res" | sed 's/^/aksnet [/; s/$/]/'); $(paste -sd ' ' "$WORK/unbound.res" | sed 's/^/unbound [/; s/$/]/')"
