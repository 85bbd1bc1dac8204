#!/usr/bin/env bash
# berth's whole test suite, as root: unit tests, privileged end-to-end tests on this host
# (cgroup v1 or hybrid here), then the cgroup tests again inside a VM with pure cgroup v2.
#
#   bash tests/run.sh            everything
#   BERTH_SKIP_VM=1 bash ...     without the v2 VM (say so in your report)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "tests/run.sh: the tests need root (real namespaces, cgroups, mounts)" >&2; exit 1; }

# What the tests use besides the build's own packages (installed when missing).
missing=""
for p in busybox-static debootstrap python3 util-linux uidmap attr acl squashfs-tools-ng e2fsprogs lxcfs dnsmasq-base nftables iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing; }
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

echo "== build"
cargo build --workspace --all-targets

echo "== unit and end-to-end tests (this host)"
cargo nextest run --workspace --no-fail-fast

if [ "${BERTH_SKIP_VM:-0}" = 1 ]; then
  echo "== cgroup v2 VM: SKIPPED (BERTH_SKIP_VM=1)"
  exit 0
fi
vm=${BERTH_CGROUP2_VM:-}
for c in "$vm" "$PWD/../shared/tools/cgroup2-vm" /work/shared/tools/cgroup2-vm; do
  if [ -n "$c" ] && [ -x "$c" ]; then vm=$c; break; fi
done
if [ -z "$vm" ] || [ ! -x "$vm" ]; then
  # Not a failure of berth: say loudly that v2 went untested.
  echo "== cgroup v2 VM: WARNING: tool not found (set BERTH_CGROUP2_VM); cgroup v2 NOT tested" >&2
  exit 0
fi

# The test binaries that exercise cgroups, run in one VM boot (about 10 s each boot).
exes=$(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] in ("cgroup_v2", "host"):
        print(m["executable"])
')
[ -n "$exes" ] || { echo "tests/run.sh: cannot find the cgroup test binaries" >&2; exit 1; }
wrapper=$PWD/target/vm-tests.sh
{
  echo '#!/bin/sh'
  echo 'rc=0'
  for e in $exes; do echo "echo \"== [v2 VM] $e\"; $e --test-threads=1 || rc=1"; done
  echo 'exit $rc'
} > "$wrapper"
chmod +x "$wrapper"
echo "== cgroup v2 tests inside a VM ($vm)"
BERTH_VM_MEM=${BERTH_VM_MEM:-2G} BERTH_VM_ENV="BERTH_E2E_TMP=/tmp" "$vm" "$wrapper"
