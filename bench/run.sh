#!/usr/bin/env bash
# bench/run.sh — time /bin/true in a fresh container: berth against the anchors.
#
# One `hyperfine -N` call (warmup 5, $RUNS runs) over the same busybox rootfs, then a table of
# medians, ratios to plain chroot, and the targets from the issue. The anchors are invoked as
# /work/shared/ANCHORS.md describes for this host (cgroup v1 hybrid, no systemd as PID 1).
# Every variant is run once before hyperfine; one that fails is reported as SKIP and left out.
# A benchmark never fails: the exit status is 0 even when targets are missed.
#
# Usage: sudo bash bench/run.sh
# Env:   RUNS (default 100), BERTH (default $CARGO_TARGET_DIR or $REPO/target, + /x86_64-unknown-linux-gnu/release/berth;
#        built with `cargo build --release -p berth` when BERTH is unset and it is missing),
#        CARGO (cargo binary to use for that build), TMPDIR (where the temp dir goes).
# shellcheck disable=SC2317 # cleanup() and its helpers run from the EXIT trap
set -euo pipefail

RUNS=${RUNS:-100}
WARMUP=5
PREFLIGHT_TIMEOUT=60
PAYLOAD=/bin/true
# Sentinel payload for the pre-flight check: proves the payload really ran in the rootfs and
# that its exit status comes back (a stub that exits 0 without running anything fails it).
SENTINEL_TOKEN=berth-bench-payload-ran
SENTINEL=(/bin/sh -c "echo $SENTINEL_TOKEN; exit 7")

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
TAG=berth-bench-$$          # prefix of every name we create (cgroups, container IDs, lxc name)

say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS < 2)); then
    say "RUNS must be an integer >= 2 (got '$RUNS')" >&2
    exit 2
fi
if ((EUID != 0)); then
    say "SKIP all: bench/run.sh must run as root (sudo bash bench/run.sh)"
    exit 0
fi
for tool in hyperfine python3; do
    if ! command -v "$tool" >/dev/null; then
        say "SKIP all: $tool is not installed"
        exit 0
    fi
done

# ---------------------------------------------------------------------------------------------
# State that cleanup() undoes.
TMP=""
NSFILE=""            # pinned mount namespace for crun (bind mount of nsfs on a file)
NSDIR=""             # private bind mount holding NSFILE
CG_MOVED=()          # "dir-we-created|dir-to-move-back-to" for each hierarchy the shell left
CRUN_ROOT="" RUNC_ROOT=""
CRUN_ID=$TAG-crun RUNC_ID=$TAG-runc LXC_NAME=$TAG-lxc
NSPAWN_RUN=/run/systemd/nspawn
NSPAWN_RUN_EXISTED=0
[[ -e $NSPAWN_RUN ]] && NSPAWN_RUN_EXISTED=1
LXC_LOCK_DIRS=()     # lock dirs LXC makes for our lxcpath that did not exist before (deepest last)
MOUNTS_BEFORE=$(awk '{print $5}' /proc/self/mountinfo | sort -u)

cgroup_mounts() { # every cgroup v1/v2 mount point of this mount namespace
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5; break } }' \
        /proc/self/mountinfo
}

rmdir_tree() { # remove a cgroup directory and its children, deepest first
    find "$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

cleanup() {
    local rc=$? i entry dir mp left
    set +e
    trap - EXIT INT TERM HUP

    # Containers that an interrupted run may have left (a normal `run` deletes its own state).
    if [[ -n $RUNC_ROOT && -d $RUNC_ROOT/$RUNC_ID ]]; then
        runc --root "$RUNC_ROOT" delete -f "$RUNC_ID" >/dev/null 2>&1
    fi
    if [[ -n $CRUN_ROOT && -d $CRUN_ROOT/$CRUN_ID && -n $NSFILE ]]; then
        nsenter --mount="$NSFILE" crun --root "$CRUN_ROOT" delete -f "$CRUN_ID" >/dev/null 2>&1
    fi
    if [[ -n $TMP && -d $TMP/lxc/$LXC_NAME ]] && command -v lxc-stop >/dev/null; then
        lxc-stop -P "$TMP/lxc" -n "$LXC_NAME" -k >/dev/null 2>&1
    fi

    # Move the shell back where it was, then remove every cgroup named after $TAG (ours,
    # nspawn's payload/ and supervisor/ below it, lxc.cgroup.dir, crun's and runc's).
    for ((i = ${#CG_MOVED[@]} - 1; i >= 0; i--)); do
        entry=${CG_MOVED[i]}
        echo $$ >"${entry#*|}/cgroup.procs" || warn "could not move the shell back to ${entry#*|}"
    done
    for i in 1 2 3 4 5; do
        left=""
        while IFS= read -r mp; do
            while IFS= read -r dir; do
                rmdir_tree "$dir"
                [[ -d $dir ]] && left+=" $dir"
            done < <(find "$mp" -mindepth 1 -maxdepth 6 -type d -name "$TAG*" -prune 2>/dev/null)
        done < <(cgroup_mounts)
        [[ -z $left ]] && break
        sleep 0.2
    done
    [[ -n $left ]] && warn "cgroups left behind:$left"

    # The pinned mount namespace, then anything else mounted under the temp dir.
    [[ -n $NSFILE ]] && umount "$NSFILE" 2>/dev/null
    [[ -n $NSDIR ]] && umount "$NSDIR" 2>/dev/null
    if [[ -n $TMP ]]; then
        while IFS= read -r mp; do
            umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || warn "could not unmount $mp"
        done < <(awk -v p="$TMP" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
        if awk -v p="$TMP" '$5 == p || index($5, p "/") == 1 {f = 1} END {exit !f}' /proc/self/mountinfo; then
            warn "mounts remain under $TMP; leaving it in place"
        else
            rm -rf --one-file-system "$TMP"
        fi
    fi

    # Runtime directories the anchors create.
    if ((NSPAWN_RUN_EXISTED == 0)); then
        rm -rf "$NSPAWN_RUN"
    elif [[ -d $NSPAWN_RUN ]]; then
        warn "$NSPAWN_RUN existed before this run (another nspawn?); left in place"
    fi
    for ((i = ${#LXC_LOCK_DIRS[@]} - 1; i >= 0; i--)); do
        rmdir "${LXC_LOCK_DIRS[i]}" 2>/dev/null
    done

    # Report what berth (or anything else) mounted on the host during the run; not ours to undo.
    left=$(comm -13 <(printf '%s\n' "$MOUNTS_BEFORE") <(awk '{print $5}' /proc/self/mountinfo | sort -u) |
        grep -i -e berth -e bench || true)
    [[ -n $left ]] && warn "new mounts since the start of the run: $(echo "$left" | tr '\n' ' ')"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TMP=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
chmod 755 "$TMP"
# The rootfs sits in a directory closed to other users, as berth requires of an
# unprivileged container's rootfs (every anchor runs as root, so none is hindered).
mkdir -m 700 "$TMP/private"
ROOTFS=$TMP/private/rootfs
STATE=$TMP/berth-state
JSON=$TMP/hyperfine.json

# ---------------------------------------------------------------------------------------------
# busybox rootfs
BUSYBOX=/bin/busybox
if [[ ! -x $BUSYBOX ]]; then
    say "SKIP all: $BUSYBOX is missing (apt-get install -y busybox-static)"
    exit 0
fi
mkdir -p "$ROOTFS/bin" "$ROOTFS"/{proc,sys,dev,tmp,etc,run}
chmod 1777 "$ROOTFS/tmp"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
while IFS= read -r applet; do
    [[ $applet == bin/busybox || -z $applet ]] && continue
    mkdir -p "$ROOTFS/$(dirname "$applet")"
    ln -sf /bin/busybox "$ROOTFS/$applet"
done < <("$BUSYBOX" --list-full)
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"
mkdir -m 700 "$STATE"

# ---------------------------------------------------------------------------------------------
# Variants. MODE "argv": the command ends with the payload (checked with the sentinel);
# MODE "bundle": the payload is in an OCI bundle (checked by its exit status only).
NAMES=() MODES=() PREFIXES=() SKIPS=()
quote() {
    local out="" a
    for a in "$@"; do out+="${out:+ }$(printf '%q' "$a")"; done
    printf '%s' "$out"
}
add() { # NAME MODE SKIP-REASON COMMAND...
    NAMES+=("$1") MODES+=("$2") SKIPS+=("$3")
    shift 3
    PREFIXES+=("$(quote "$@")")
}
missing() { command -v "$1" >/dev/null || printf '%s is not installed' "$1"; }
first_line() { local l; l=$(grep -m1 -v '^[[:space:]]*$' "$1" || true); printf '%s' "${l:-no stderr}"; }

# berth binary
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
find_berth

# crun: pin a private mount namespace whose /sys/fs/cgroup holds only the v1 hierarchies.
CRUN_SKIP=$(missing crun; missing nsenter; missing unshare)
make_bundle() { # TOOL DIR
    local tool=$1 dir=$2
    mkdir -p "$dir"
    (cd "$dir" && "$tool" spec) || return 1
    python3 - "$dir/config.json" "$ROOTFS" "$PAYLOAD" <<'EOF'
import json, sys
path, rootfs, payload = sys.argv[1:]
with open(path) as f:
    c = json.load(f)
c["root"]["path"] = rootfs
c["process"]["terminal"] = False
c["process"]["args"] = [payload]
with open(path, "w") as f:
    json.dump(c, f, indent=2)
EOF
}
pin_mount_namespace() {
    NSDIR=$TMP/ns
    mkdir "$NSDIR" "$TMP/cgstage"
    mount --bind "$NSDIR" "$NSDIR" || { NSDIR=""; return 1; }
    mount --make-private "$NSDIR" || return 1
    touch "$NSDIR/mnt"
    NSFILE=$NSDIR/mnt
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount="$NSFILE" --propagation private bash -euc '
        stage=$1
        mount -t tmpfs -o mode=755 berth-bench-cgroup "$stage"
        for d in /sys/fs/cgroup/*; do
            n=${d##*/}
            if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$stage/$n"; continue; fi
            [ "$(stat -f -c %T "$d")" = cgroupfs ] || continue   # v1 only; not the cgroup2 mount
            mkdir "$stage/$n"
            mount --bind "$d" "$stage/$n"
        done
        mount --move "$stage" /sys/fs/cgroup
    ' pin "$TMP/cgstage" || { umount "$NSFILE" 2>/dev/null; NSFILE=""; return 1; }
    rmdir "$TMP/cgstage"
}
if [[ -z $CRUN_SKIP ]]; then
    CRUN_ROOT=$TMP/crun-state
    mkdir -m 700 "$CRUN_ROOT"
    # Not in a command substitution: NSDIR and NSFILE must reach cleanup().
    if ! pin_mount_namespace 2>"$TMP/pin.err"; then
        CRUN_SKIP="could not pin the mount namespace ($(first_line "$TMP/pin.err"))"
    elif ! err=$(make_bundle crun "$TMP/crun-bundle" 2>&1); then
        CRUN_SKIP="crun spec failed (${err%%$'\n'*})"
    fi
fi

RUNC_SKIP=$(missing runc)
if [[ -z $RUNC_SKIP ]]; then
    RUNC_ROOT=$TMP/runc-state
    mkdir -m 700 "$RUNC_ROOT"
    if ! err=$(make_bundle runc "$TMP/runc-bundle" 2>&1); then
        RUNC_SKIP="runc spec failed (${err%%$'\n'*})"
    fi
fi

LXC_SKIP=$(missing lxc-execute)
LXC_CONF=$TMP/lxc.conf
if [[ -z $LXC_SKIP ]]; then
    mkdir "$TMP/lxc"
    cat >"$LXC_CONF" <<EOF
lxc.rootfs.path = dir:$ROOTFS
lxc.net.0.type = empty
lxc.mount.auto = proc:mixed sys:ro
lxc.autodev = 1
lxc.pty.max = 0
lxc.tty.max = 0
lxc.apparmor.profile = unconfined
lxc.cgroup.dir = $LXC_NAME
EOF
    # LXC makes /run/lxc/lock/<lxcpath>; remember which of those directories are new.
    d=/run/lxc/lock$TMP/lxc
    while [[ $d == /run/lxc* ]]; do
        [[ -e $d ]] || LXC_LOCK_DIRS=("$d" "${LXC_LOCK_DIRS[@]}")
        d=$(dirname "$d")
    done
fi

# systemd-nspawn makes payload/ and supervisor/ cgroups below the caller's own cgroup (in the
# cgroup2 and the name=systemd hierarchies): give the shell, hence hyperfine, a cgroup of its own.
NSPAWN_SKIP=$(missing systemd-nspawn)
move_shell() {
    local line hid ctrl path mp root
    while IFS= read -r line; do
        mp="" root=""
        hid=${line%%:*} line=${line#*:}
        ctrl=${line%%:*} path=${line#*:}
        if [[ $hid == 0 && -z $ctrl ]]; then
            read -r mp root < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") {
                if ($(i+1) == "cgroup2") { print $5, $4; exit } break } }' /proc/self/mountinfo)
        elif [[ $ctrl == name=systemd ]]; then
            read -r mp root < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") {
                if ($(i+1) == "cgroup" && ("," $(i+3) ",") ~ /,name=systemd,/) { print $5, $4; exit }
                break } }' /proc/self/mountinfo)
        else
            continue
        fi
        [[ -n ${mp:-} ]] || continue
        [[ $root == / ]] || { echo "cgroup mount $mp has root $root"; return 1; }
        local from=$mp${path%/} to
        to=$from/$TAG
        mkdir "$to" || return 1
        echo $$ >"$to/cgroup.procs" || { rmdir "$to"; return 1; }
        CG_MOVED+=("$to|${from:-$mp}")
    done </proc/self/cgroup
}
if [[ -z $NSPAWN_SKIP ]]; then
    # Not in a command substitution: CG_MOVED must survive, and $$ must be this shell.
    if ! move_shell 2>"$TMP/move.err"; then
        NSPAWN_SKIP="could not move the shell into a cgroup of its own ($(head -n1 "$TMP/move.err"))"
    fi
fi

BWRAP_SKIP=$(missing bwrap)

add "chroot" argv "$(missing chroot)" chroot "$ROOTFS"
add "berth chroot" argv "$BERTH_SKIP" "$BERTH" chroot "$ROOTFS"
add "berth run" argv "$BERTH_SKIP" "$BERTH" --root "$STATE" run "$ROOTFS" --
# Every cgroup limit and an rlimit (the issue's "applying all limits"); the I/O throttles on
# the whole disk under the rootfs when one is found.
root_disk() { # the /dev path of the whole disk holding $ROOTFS, or nothing
    local devno sys
    devno=$(stat -c '%d' "$ROOTFS" 2>/dev/null) || return 0
    sys=/sys/dev/block/$((devno >> 8)):$((devno & 255))
    [[ -e $sys ]] || return 0
    [[ -e $sys/partition ]] && sys=$sys/..
    local name
    name=$(basename "$(readlink -f "$sys")")
    [[ -b /dev/$name ]] && printf '/dev/%s\n' "$name"
}
LIMIT_FLAGS=(--memory 256MiB --memory-high 200MiB --swap 0 --cpus 1.5 --cpu-weight 200
    --cpuset 0 --pids 200 --io-weight 200 --rlimit nofile=1024)
DISK=$(root_disk)
if [[ -n $DISK ]]; then
    LIMIT_FLAGS+=(--io-read-bps "$DISK:100MiB" --io-write-bps "$DISK:100MiB" --io-read-iops "$DISK:10000")
fi
add "berth run + all limits" argv "$BERTH_SKIP" "$BERTH" --root "$STATE" run "${LIMIT_FLAGS[@]}" "$ROOTFS" --
add "crun" bundle "$CRUN_SKIP" nsenter --mount="$NSFILE" crun --root "$CRUN_ROOT" run \
    --bundle "$TMP/crun-bundle" "$CRUN_ID"
add "nsenter (crun wrapper)" argv "$CRUN_SKIP" nsenter --mount="$NSFILE"
add "runc" bundle "$RUNC_SKIP" runc --root "$RUNC_ROOT" run --bundle "$TMP/runc-bundle" "$RUNC_ID"
add "lxc-execute" argv "$LXC_SKIP" lxc-execute -P "$TMP/lxc" -n "$LXC_NAME" -f "$LXC_CONF" --
add "bwrap" argv "$BWRAP_SKIP" bwrap --unshare-all --bind "$ROOTFS" / --proc /proc --dev /dev
add "systemd-nspawn" argv "$NSPAWN_SKIP" systemd-nspawn -q --register=no --keep-unit -D "$ROOTFS"

# ---------------------------------------------------------------------------------------------
# Pre-flight: run each variant once; keep only those that work.
preflight() { # PREFIX MODE -> prints a reason and returns 1 on failure
    local prefix=$1 mode=$2 rc=0 argv
    eval "argv=($prefix)"
    if [[ $mode == argv ]]; then
        timeout -k 5 "$PREFLIGHT_TIMEOUT" "${argv[@]}" "$PAYLOAD" </dev/null >/dev/null 2>"$TMP/pf.err" || rc=$?
    else
        timeout -k 5 "$PREFLIGHT_TIMEOUT" "${argv[@]}" </dev/null >/dev/null 2>"$TMP/pf.err" || rc=$?
    fi
    if ((rc == 124 || rc == 137)); then
        echo "timed out after ${PREFLIGHT_TIMEOUT}s ($(first_line "$TMP/pf.err"))"
        return 1
    elif ((rc != 0)); then
        echo "exit status $rc ($(first_line "$TMP/pf.err"))"
        return 1
    fi
    [[ $mode == argv ]] || return 0
    rc=0
    timeout -k 5 "$PREFLIGHT_TIMEOUT" "${argv[@]}" "${SENTINEL[@]}" </dev/null >"$TMP/pf.out" 2>"$TMP/pf.err" || rc=$?
    # Strip CRs: systemd-nspawn relays the payload's output through a pty.
    tr -d '\r' <"$TMP/pf.out" >"$TMP/pf.txt"
    if ((rc != 7)) || ! grep -qx "$SENTINEL_TOKEN" "$TMP/pf.txt"; then
        echo "the payload did not run: \`sh -c 'echo TOKEN; exit 7'\` gave exit status $rc" \
            "and $(grep -c -x "$SENTINEL_TOKEN" "$TMP/pf.txt" || true) TOKEN lines ($(first_line "$TMP/pf.err"))"
        return 1
    fi
}

HF_ARGS=()
KEPT=()
for i in "${!NAMES[@]}"; do
    name=${NAMES[i]}
    reason=${SKIPS[i]}
    if [[ -z $reason ]]; then
        reason=$(preflight "${PREFIXES[i]}" "${MODES[i]}") && reason=""
    fi
    if [[ -n $reason ]]; then
        say "SKIP $name: $reason"
        continue
    fi
    cmd=${PREFIXES[i]}
    [[ ${MODES[i]} == argv ]] && cmd+=" $PAYLOAD"
    HF_ARGS+=(-n "$name" "$cmd")
    KEPT+=("$name")
done

if ((${#KEPT[@]} == 0)); then
    say "nothing left to benchmark"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
say "hyperfine: ${#KEPT[@]} variants, warmup $WARMUP, $RUNS runs each"
if ! hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --ignore-failure --export-json "$JSON" "${HF_ARGS[@]}"; then
    say "hyperfine failed; no results"
    exit 0
fi

python3 - "$JSON" <<'EOF'
import json, sys

with open(sys.argv[1]) as f:
    results = json.load(f)["results"]
rows = {}
for r in results:
    codes = r.get("exit_codes") or []
    failed = sum(1 for c in codes if c != 0)
    rows[r["command"]] = (r["median"] * 1000.0, failed, len(codes) or len(r["times"]))

base = rows.get("chroot")
print()
print(f"{'name':<24} {'median ms':>10} {'x chroot':>9}")
for name, (ms, failed, n) in rows.items():
    ratio = f"{ms / base[0]:.2f}" if base else "-"
    note = f"  ({failed}/{n} runs failed)" if failed else ""
    print(f"{name:<24} {ms:>10.2f} {ratio:>9}{note}")
if "crun" in rows and "nsenter (crun wrapper)" in rows:
    net = rows["crun"][0] - rows["nsenter (crun wrapper)"][0]
    print(f"(crun without its nsenter wrapper: {net:.2f} ms; the targets use the crun row as measured)")

print()
def target(label, a, b, limit):
    if a not in rows or b not in rows:
        missing = " and ".join(x for x in (a, b) if x not in rows)
        print(f"{label:<37} {'':>7}  n/a ({missing} skipped)")
        return
    ratio = rows[a][0] / rows[b][0]
    failed = [x for x in (a, b) if rows[x][1]]
    if failed:
        verdict = "MISS (runs failed: " + ", ".join(failed) + ")"
    else:
        verdict = "PASS" if ratio <= limit else "MISS"
    print(f"{label:<37} {ratio:>6.2f}x  {verdict}")

def added(label, a, b, limit_ms):
    if a not in rows or b not in rows:
        print(f"{label:<37} {'':>7}  n/a")
        return
    extra = rows[a][0] - rows[b][0]
    verdict = "PASS" if extra <= limit_ms else "MISS"
    print(f"{label:<37} {extra:>+6.2f}ms {verdict}")

target("target: berth run <= 0.5x crun", "berth run", "crun", 0.5)
added("target: all limits add <= 1 ms to run", "berth run + all limits", "berth run", 1.0)
target("target: berth run <= 1.2x bwrap", "berth run", "bwrap", 1.2)
target("target: berth chroot <= 2.5x chroot", "berth chroot", "chroot", 2.5)
EOF
exit 0
