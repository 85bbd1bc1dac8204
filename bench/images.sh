#!/usr/bin/env bash
# bench/images.sh — images: import beside GNU tar, create from a cached image, disk use of
# many containers over one image. Targets of the images issue:
#   1. importing a rootfs tarball in at most 1.25x the time GNU tar takes to extract it
#      (one hyperfine call; both write the same tree with owners and modes kept)
#   2. `berth create IMAGE NAME` from a cached image in at most 50 ms, with at most 1 MiB of
#      new disk per container (LXD on dir storage takes about 11 s, unpacking a tarball)
#   3. 100 containers from one Debian image use less than 2x the image's size on disk
# The rootfs: a Debian 12 tree (DEBIAN_ROOTFS, or the test suite's debootstrap cache
# /var/cache/berth-test/bookworm-systemd); without one, berth's busybox image (small: the
# figures then say little). A benchmark never fails: exit status 0 even when targets miss.
#
# Usage: sudo bash bench/images.sh
# Env:   RUNS (default 10), N (containers for target 3, default 100), BERTH (the binary;
#        built with cargo when unset and missing), TMPDIR (where the temp dir goes: a disk,
#        not a tmpfs, for realistic figures).
set -euo pipefail
export LC_ALL=C

RUNS=${RUNS:-10}
N=${N:-100}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
say() { printf '%s\n' "$*"; }

if ((EUID != 0)); then
    say "SKIP all: bench/images.sh must run as root"
    exit 0
fi
for tool in hyperfine python3 tar du; do
    command -v "$tool" >/dev/null || { say "SKIP all: $tool is not installed"; exit 0; }
done

TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-images.XXXXXX")
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
TARGETS=()
target() { say "$1"; TARGETS+=("$1"); }
ratio_line() { # LABEL VALUE LIMIT UNIT: PASS when VALUE <= LIMIT
    python3 -c 'import sys
label, v, lim, unit = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
verdict = "PASS" if v <= lim else "MISS"
print(f"{label:<62} {v:>9.2f}{unit}  {verdict}")' "$@"
}
median_ms() { # hyperfine JSON, command index → median in ms
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000)' "$1" "$2"
}

say "berth: $BERTH"
say "temp dir: $TMP"

# ---------------------------------------------------------------------------------------------
SRC=${DEBIAN_ROOTFS:-/var/cache/berth-test/bookworm-systemd}
TARBALL=$TMP/rootfs.tar.gz
if [[ -f $SRC/etc/debian_version ]]; then
    say "rootfs: $SRC ($(du -sh "$SRC" | cut -f1))"
    tar --numeric-owner --xattrs -C "$SRC" -czf "$TARBALL" .
else
    say "rootfs: none found at $SRC; using berth's busybox image (small: the figures say little)"
    berth image build busybox >/dev/null
    berth image export busybox "$TARBALL"
fi
say "tarball: $(du -h "$TARBALL" | cut -f1) gzip"

# ---------------------------------------------------------------------------------------------
say ""
say "== 1. import a rootfs tarball (.tar.gz) vs GNU tar extracting it (owners and modes kept)"
mkdir -p "$TMP/x"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$TMP/import.json" \
    --prepare "rm -rf $TMP/x/t" -n "GNU tar -xzpf" "bash -c 'mkdir $TMP/x/t && tar --numeric-owner --xattrs -xzpf $TARBALL -C $TMP/x/t'" \
    --prepare "bash -c '$BERTH --root $STATE image delete bench-import >/dev/null 2>&1 || true'" \
    -n "berth image import" "$BERTH --root $STATE image import $TARBALL --alias bench-import" \
    >/dev/null
TAR_MS=$(median_ms "$TMP/import.json" 0)
IMP_MS=$(median_ms "$TMP/import.json" 1)
say "GNU tar: ${TAR_MS} ms, berth import: ${IMP_MS} ms (medians of $RUNS)"
target "$(ratio_line "target: import <= 1.25x GNU tar" "$(python3 -c "print($IMP_MS/$TAR_MS)")" 1.25 x)"

# ---------------------------------------------------------------------------------------------
say ""
say "== 2. create from a cached image (overlay instance), and its new disk"
berth create bench-import warm >/dev/null && berth delete warm >/dev/null
hyperfine -N --warmup 2 --runs $((RUNS * 5)) --export-json "$TMP/create.json" \
    --prepare "bash -c '$BERTH --root $STATE delete c1 >/dev/null 2>&1 || true'" \
    -n "berth create" "$BERTH --root $STATE create bench-import c1" >/dev/null
CREATE_MS=$(median_ms "$TMP/create.json" 0)
NEW_KB=$(du -sk "$STATE/containers/c1" | cut -f1)
target "$(ratio_line "target: create from a cached image <= 50 ms" "$CREATE_MS" 50 " ms")"
target "$(ratio_line "target: new disk per container <= 1 MiB (1024 KiB)" "$NEW_KB" 1024 " KiB")"
berth delete c1 >/dev/null

# ---------------------------------------------------------------------------------------------
say ""
say "== 3. $N containers from the image: disk use of image + containers vs the image alone"
IMAGE_KB=$(du -sk "$STATE/images" | cut -f1)
t0=$EPOCHREALTIME
for ((i = 0; i < N; i++)); do berth create bench-import "n$i" >/dev/null; done
t1=$EPOCHREALTIME
ALL_KB=$(du -sk "$STATE/images" "$STATE/containers" | awk '{s += $1} END {print s}')
say "image ${IMAGE_KB} KiB; with $N containers ${ALL_KB} KiB; $N creates in $(python3 -c "print(round(($t1-$t0)*1000))") ms"
target "$(ratio_line "target: $N containers < 2x the image's size" "$(python3 -c "print($ALL_KB/$IMAGE_KB)")" 2 x)"
for ((i = 0; i < N; i++)); do berth delete "n$i" >/dev/null; done

say ""
say "== summary of targets"
printf '%s\n' "${TARGETS[@]}"
exit 0
