#!/usr/bin/env bash
# bench/limits.sh — resource quotas: the CPU one `berth top` refresh costs with N running
# containers (target: at most 100 ms with 100). The cost of applying every limit to `berth
# run` is the "berth run + all limits" row of bench/run.sh (one hyperfine call beside the
# anchors). A benchmark never fails: exit status 0 even when targets miss.
#
# Usage: sudo bash bench/limits.sh
# Env:   N (running containers, default 100), ROUNDS (measured refreshes, default 5),
#        BERTH (the binary; built with cargo when unset and missing), TMPDIR.
set -euo pipefail
export LC_ALL=C

N=${N:-100}
ROUNDS=${ROUNDS:-5}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
say() { printf '%s\n' "$*"; }

if ((EUID != 0)); then
    say "SKIP all: bench/limits.sh must run as root"
    exit 0
fi
command -v python3 >/dev/null || { say "SKIP all: python3 is not installed"; exit 0; }

TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-limits.XXXXXX")
chmod 700 "$TMP"
STATE=$TMP/state
cleanup() {
    set +e
    # Defined once bench/lib.sh is sourced (this trap may fire before).
    declare -F clear_state >/dev/null && clear_state "$STATE"
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

say "== berth top with $N running containers (each with memory, cpus and pids limits)"
for i in $(seq 1 "$N"); do
    berth launch busybox "top-$i" --net none --memory 64MiB --cpus 0.5 --pids 100 >/dev/null
done
# CPU (user + system) of one `top -n R` process, for R = 1 and R = 1 + ROUNDS: the difference
# is what ROUNDS refreshes cost, start-up and the first sample left out.
python3 - "$BERTH" "$STATE" "$ROUNDS" <<'PY'
import resource, subprocess, sys
berth, state, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def cpu(n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([berth, "--root", state, "top", "-n", str(n), "-d", "0.05"],
                   stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
base = min(cpu(1) for _ in range(3))
full = min(cpu(1 + rounds) for _ in range(3))
per = (full - base) / rounds * 1000
print(f"one refresh: {per:.1f} ms of CPU (top -n 1: {base*1000:.1f} ms, -n {1+rounds}: {full*1000:.1f} ms)")
verdict = "PASS" if per <= 100 else "MISS"
print(f"{'target: top refresh with the containers <= 100 ms CPU':<62} {per:>9.2f}ms  {verdict}")
PY
