#!/usr/bin/env bash
# bench/net.sh — networking, in one run:
#   1. `berth start` of a busybox container with a bridged veth on berth0 (address, route,
#      lease, dnsmasq up) against one without a network (--net none): target at most 2x.
#   2. TCP throughput container to container over berth0 (iperf3, run in each container's
#      network namespace) against the same transfer between two plain network namespaces on
#      a bridge made by hand (the kernel's floor): target at least 0.9x.
# A benchmark never fails: exit status 0 even when targets miss.
#
# Usage: sudo bash bench/net.sh
# Env:   RUNS (starts timed, default 40), SECS (iperf3 seconds per transfer, default 5),
#        ROUNDS (transfers each side, interleaved, default 6), BERTH, TMPDIR.
set -euo pipefail
export LC_ALL=C

RUNS=${RUNS:-40}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-6}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
say() { printf '%s\n' "$*"; }

if ((EUID != 0)); then
    say "SKIP all: bench/net.sh must run as root"
    exit 0
fi
for tool in hyperfine python3 iperf3 nsenter ip; do
    command -v "$tool" >/dev/null || { say "SKIP all: $tool is not installed"; exit 0; }
done

TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-net.XXXXXX")
chmod 700 "$TMP"
STATE=$TMP/state
TAG=bn$$
NS1=berth-bench-$TAG-1 NS2=berth-bench-$TAG-2 BR=bb$TAG
IPERF_PIDS=()
cleanup() {
    set +e
    for p in "${IPERF_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    # Defined once bench/lib.sh is sourced (this trap may fire before).
    declare -F clear_state >/dev/null && clear_state "$STATE"
    ip netns del "$NS1" 2>/dev/null
    ip netns del "$NS2" 2>/dev/null
    ip link del "$BR" 2>/dev/null
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
find_berth
if [[ -n $BERTH_SKIP ]]; then
    say "SKIP all: $BERTH_SKIP"
    exit 0
fi
berth() { "$BERTH" --root "$STATE" "$@"; }
say "berth: $BERTH"

say "== 1. berth start: bridged veth on berth0 vs no network (RUNS=$RUNS)"
berth create busybox "$TAG-none" --net none >/dev/null
berth create busybox "$TAG-br" >/dev/null
# The network is made once, at the first start (not timed: it happens once per host).
berth start "$TAG-br" && berth stop --force "$TAG-br"
# A stopped container's veth goes in the background: the prepare waits a moment so that
# the timed start does not wait for it.
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$TMP/start.json" \
    --prepare "sh -c '$BERTH --root $STATE stop --force $TAG-none >/dev/null 2>&1; sleep 0.05'" \
    -n "berth start (--net none)" "$BERTH --root $STATE start $TAG-none" \
    --prepare "sh -c '$BERTH --root $STATE stop --force $TAG-br >/dev/null 2>&1; sleep 0.05'" \
    -n "berth start (bridged, berth0)" "$BERTH --root $STATE start $TAG-br" >/dev/null
python3 - "$TMP/start.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
none = r["berth start (--net none)"]["median"] * 1000
br = r["berth start (bridged, berth0)"]["median"] * 1000
for name, v in (("berth start (--net none)", none), ("berth start (bridged, berth0)", br)):
    print(f"{name:<40} median {v:8.2f} ms")
ratio = br / none
print(f"{'target: bridged start <= 2x no-network start':<62} {ratio:>8.2f}x  {'PASS' if ratio <= 2 else 'MISS'}")
PY
berth stop --force "$TAG-none" >/dev/null 2>&1 || true
berth stop --force "$TAG-br" >/dev/null 2>&1 || true

say "== 2. iperf3 TCP throughput: two containers on berth0 vs two namespaces on a bridge (${SECS}s x $ROUNDS each)"
# The floor: two network namespaces with veths on a bridge made by hand, no firewall table.
ip netns add "$NS1"
ip netns add "$NS2"
ip link add "$BR" type bridge
ip link set "$BR" up
for i in 1 2; do
    ip link add "v$TAG$i" type veth peer name "p$TAG$i"
    ip link set "p$TAG$i" netns "berth-bench-$TAG-$i"
    ip link set "v$TAG$i" master "$BR" up
    ip -n "berth-bench-$TAG-$i" addr add "198.51.100.$((100 + i))/24" dev "p$TAG$i"
    ip -n "berth-bench-$TAG-$i" link set "p$TAG$i" up
    ip -n "berth-bench-$TAG-$i" link set lo up
done
# The containers: two on berth0, iperf3 from the host run in their network namespaces.
berth launch busybox "$TAG-s" >/dev/null
berth launch busybox "$TAG-c" >/dev/null
pid_of() { berth info "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
ip_of() { berth info "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ipv4"][0])'; }
SPID=$(pid_of "$TAG-s") CPID=$(pid_of "$TAG-c") SIP=$(ip_of "$TAG-s")

# One transfer: a one-shot server in the first namespace (its pid kept for the cleanup),
# the client in the second; prints the bits per second received.
transfer() {
    local srv=$1 cli=$2 addr=$3
    $srv iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    IPERF_PIDS+=($!)
    sleep 0.3
    $cli iperf3 -c "$addr" -p 5201 -t "$SECS" -J |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
    wait "${IPERF_PIDS[-1]}" 2>/dev/null || true
}
: >"$TMP/floor.txt"
: >"$TMP/ours.txt"
# Interleaved, so that a busy moment of the host hits both sides alike.
for _ in $(seq 1 "$ROUNDS"); do
    transfer "ip netns exec $NS1" "ip netns exec $NS2" 198.51.100.101 >>"$TMP/floor.txt"
    transfer "nsenter -t $SPID -n" "nsenter -t $CPID -n" "$SIP" >>"$TMP/ours.txt"
done
python3 - "$TMP/floor.txt" "$TMP/ours.txt" <<'PY'
import statistics, sys
floor = [float(x) for x in open(sys.argv[1]) if x.strip()]
ours = [float(x) for x in open(sys.argv[2]) if x.strip()]
f, o = statistics.median(floor), statistics.median(ours)
print(f"{'two namespaces on a bridge (floor)':<40} median {f/1e9:8.2f} Gbit/s  {[round(x/1e9, 2) for x in floor]}")
print(f"{'two berth containers on berth0':<40} median {o/1e9:8.2f} Gbit/s  {[round(x/1e9, 2) for x in ours]}")
ratio = o / f
print(f"{'target: berth0 throughput >= 0.9x the floor':<62} {ratio:>8.2f}x  {'PASS' if ratio >= 0.9 else 'MISS'}")
PY
