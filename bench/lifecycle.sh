#!/usr/bin/env bash
# bench/lifecycle.sh — system-container lifecycle: berth side by side with LXC 5.0 on busybox.
#
# Sections (each prints medians, ratios and PASS/MISS against the targets of the issue; a
# summary of every target comes last):
#   1. start → first successful `exec … true` (one hyperfine call: berth, LXC, the sh wrapper)
#   2. `exec … true` into a running container: berth exec, lxc-attach, nsenter (one call)
#   3. stop: berth stop (--force), lxc-stop (-k) (one call)
#   4. host memory per idle running container: berth supervisor PSS vs LXC monitor PSS
#   5. $SEQ_N containers started one after another: is the last start as fast as the first?
#   6. Debian 12 with systemd: start to `running` and a clean stop, beside LXC and nspawn
#      (the rootfs: DEBIAN_ROOTFS, or the test suite's debootstrap cache, built when missing)
# The anchors are invoked as /work/shared/ANCHORS.md describes for this host (cgroup v1 hybrid,
# no systemd as PID 1). Every variant is run once before hyperfine; one that fails is reported
# as SKIP and left out. A benchmark never fails: the exit status is 0 even when targets are missed.
#
# Usage: sudo bash bench/lifecycle.sh
# Env:   RUNS (default 100), STOP_RUNS (default min(RUNS, 20): lxc-stop takes 2 s a run),
#        MEM_N (default 20), SEQ_N (default 100),
#        BERTH (default $CARGO_TARGET_DIR or $REPO/target, + /x86_64-unknown-linux-gnu/release/berth;
#        built with `cargo build --release -p berth` when BERTH is unset and it is missing),
#        CARGO (cargo binary to use for that build), TMPDIR (where the temp dir goes),
#        SECTIONS (default "1 2 3 4 5 6": the sections to run), DEB_RUNS (default 5),
#        DEBIAN_ROOTFS (a Debian rootfs with systemd; default: /var/cache/berth-test/bookworm-systemd).
# shellcheck disable=SC2317 # cleanup() and its helpers run from the EXIT trap
set -euo pipefail
export LC_ALL=C         # EPOCHREALTIME and the tools' figures with a decimal point

RUNS=${RUNS:-100}
SECTIONS=${SECTIONS:-1 2 3 4 5 6}   # which sections to run (space-separated numbers)
STOP_RUNS=${STOP_RUNS:-$((RUNS < 20 ? RUNS : 20))}
MEM_N=${MEM_N:-20}
SEQ_N=${SEQ_N:-100}
WARMUP=5
PREFLIGHT_TIMEOUT=60
MAX_TRIES=2000     # exec/attach attempts before an "up" run counts as failed
IDLE_SECS=2        # settle time before reading PSS
SENTINEL_TOKEN=berth-bench-payload-ran

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
TAG=berth-bench-$$          # prefix of every name we create (containers, hence cgroups)

say() { printf '%s\n' "$*"; }
want_section() { [[ " $SECTIONS " == *" $1 "* ]]; }
warn() { printf 'warning: %s\n' "$*" >&2; }

for var in RUNS STOP_RUNS MEM_N SEQ_N; do
    if ! [[ ${!var} =~ ^[0-9]+$ ]] || ((${!var} < 2)); then
        say "$var must be an integer >= 2 (got '${!var}')" >&2
        exit 2
    fi
done
if ((EUID != 0)); then
    say "SKIP all: bench/lifecycle.sh must run as root (sudo bash bench/lifecycle.sh)"
    exit 0
fi
for tool in hyperfine python3; do
    if ! command -v "$tool" >/dev/null; then
        say "SKIP all: $tool is not installed"
        exit 0
    fi
done
if [[ ! -x /bin/busybox ]]; then
    say "SKIP all: /bin/busybox is missing (apt-get install -y busybox-static): berth's busybox image and LXC's busybox template need it"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# State that cleanup() undoes.
TMP="" STATE="" LXCPATH="" BERTH_OK=0
LXC_LOCK_DIRS=()     # lock dirs LXC makes for our lxcpath that did not exist before (deepest last)
MOUNTS_BEFORE=$(awk '{print $5}' /proc/self/mountinfo | sort -u)

cgroup_mounts() { # every cgroup v1/v2 mount point of this mount namespace
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5; break } }' \
        /proc/self/mountinfo
}

rmdir_tree() { # remove a cgroup directory and its children, deepest first
    find "$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

our_cgroups() { # every cgroup directory named after $TAG (LXC's NAME, berth's berth-NAME)
    local mp
    while IFS= read -r mp; do
        find "$mp" -mindepth 1 -maxdepth 6 -type d -name "*$TAG-*" -prune 2>/dev/null
    done < <(cgroup_mounts)
}

berth_names() { # the containers in our berth state directory
    "$BERTH" --root "$STATE" list --format json 2>/dev/null |
        python3 -c 'import json, sys; [print(c["name"]) for c in json.load(sys.stdin)]' 2>/dev/null ||
        find "$STATE/containers" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null
}

cleanup() {
    local rc=$? i d n dir left berth_left
    set +e
    trap - EXIT INT TERM HUP

    # A systemd-nspawn of section 6 still running (the run was cut short): it goes first.
    if [[ -n ${NSPAWN_PID:-} ]]; then
        kill -KILL "$NSPAWN_PID" 2>/dev/null
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    # Every berth container of our own --root, then every LXC container of our own lxcpath.
    if ((BERTH_OK)) && [[ -n $STATE && -d $STATE/containers ]]; then
        while IFS= read -r n; do
            [[ -n $n ]] || continue
            "$BERTH" --root "$STATE" delete --force "$n" >/dev/null 2>"$TMP/delete.err" ||
                warn "berth delete --force $n failed: $(head -n1 "$TMP/delete.err")"
        done < <(berth_names)
    fi
    [[ -n $STATE ]] && declare -F delete_networks >/dev/null && delete_networks "$STATE"
    [[ -n $STATE ]] && declare -F stop_lxcfs >/dev/null && stop_lxcfs "$STATE"
    if [[ -n $LXCPATH && -d $LXCPATH ]] && command -v lxc-destroy >/dev/null; then
        for d in "$LXCPATH"/*/; do
            [[ -f $d/config ]] || continue
            n=$(basename "$d")
            lxc-destroy -P "$LXCPATH" -n "$n" -f >/dev/null 2>&1 || warn "lxc-destroy -f $n failed"
        done
    fi

    # Cgroups: berth removes its own (one left over is a berth bug: reported, then removed);
    # LXC leaves NAME/ and NAME/lxc.pivot behind in every hierarchy: removed, deepest first.
    berth_left=$(our_cgroups | grep "/berth-$TAG-" || true)
    [[ -n $berth_left ]] && warn "berth left cgroups behind: $(echo "$berth_left" | tr '\n' ' ')"
    for i in 1 2 3 4 5; do
        left=""
        while IFS= read -r dir; do
            rmdir_tree "$dir"
            [[ -d $dir ]] && left+=" $dir"
        done < <(our_cgroups)
        [[ -z $left ]] && break
        sleep 0.2
    done
    [[ -n $left ]] && warn "cgroups left behind:$left"

    # LXC's lock files (/run/lxc/lock/LXCPATH/.NAME) and the lock directories it made for us.
    if ((${#LXC_LOCK_DIRS[@]})) && [[ ${LXC_LOCK_DIRS[-1]} == "/run/lxc/lock$LXCPATH" ]]; then
        find "${LXC_LOCK_DIRS[-1]}" -mindepth 1 -maxdepth 1 -type f -name ".$TAG-*" -delete 2>/dev/null
    fi
    for ((i = ${#LXC_LOCK_DIRS[@]} - 1; i >= 0; i--)); do
        rmdir "${LXC_LOCK_DIRS[i]}" 2>/dev/null
    done

    # Anything still mounted under the temp dir, then the temp dir.
    if [[ -n $TMP ]]; then
        while IFS= read -r d; do
            umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || warn "could not unmount $d"
        done < <(awk -v p="$TMP" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
        if awk -v p="$TMP" '$5 == p || index($5, p "/") == 1 {f = 1} END {exit !f}' /proc/self/mountinfo; then
            warn "mounts remain under $TMP; leaving it in place"
        else
            rm -rf --one-file-system "$TMP"
        fi
    fi

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
# berth's state (images, container rootfs copies) in a directory closed to other users, as
# berth requires of an unprivileged container's rootfs.
mkdir -m 700 "$TMP/private"
STATE=$TMP/private/berth-state
mkdir -m 700 "$STATE"
TARGETS=$TMP/targets.txt
: >"$TARGETS"

first_line() { local l; l=$(grep -m1 -v '^[[:space:]]*$' "$1" || true); printf '%s' "${l:-no stderr}"; }
quote() {
    local out="" a
    for a in "$@"; do out+="${out:+ }$(printf '%q' "$a")"; done
    printf '%s' "$out"
}
target_line() { # LINE: print it and keep it for the summary
    say "$1"
    say "$1" >>"$TARGETS"
}

# ---------------------------------------------------------------------------------------------
# berth binary
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
find_berth
if [[ -n $BERTH_SKIP ]]; then
    say "SKIP all: $BERTH_SKIP"
    exit 0
fi
BERTH_OK=1
berth() { "$BERTH" --root "$STATE" "$@"; }
berth_info() { # NAME KEY: one field of `berth info NAME --format json` (empty when null)
    berth info "$1" --format json |
        python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$2"
}

# LXC
LXC_SKIP=""
for tool in lxc-create lxc-start lxc-attach lxc-stop lxc-destroy lxc-info; do
    command -v "$tool" >/dev/null || { LXC_SKIP="$tool is not installed"; break; }
done
if [[ -z $LXC_SKIP ]]; then
    LXCPATH=$TMP/lxc
    mkdir "$LXCPATH"
    # LXC makes /run/lxc/lock/<lxcpath>; remember which of those directories are new.
    d=/run/lxc/lock$LXCPATH
    while [[ $d == /run/lxc* ]]; do
        [[ -e $d ]] || LXC_LOCK_DIRS=("$d" "${LXC_LOCK_DIRS[@]}")
        d=$(dirname "$d")
    done
fi
lxc_make() { # NAME: a busybox container with the keys of ANCHORS.md (net empty, unconfined, cgroup dir)
    printf 'lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\nlxc.cgroup.dir = %s\n' "$1" \
        >"$TMP/lxc-$1.conf"
    lxc-create -P "$LXCPATH" -t busybox -n "$1" -f "$TMP/lxc-$1.conf" </dev/null >"$TMP/lxc-create.log" 2>&1
}
lxc_monitor_pid() { # NAME: the container's `[lxc monitor]` process, checked by its command line
    local init ppid stat cmd
    init=$(lxc-info -P "$LXCPATH" -n "$1" -p -H 2>/dev/null) || return 1
    [[ $init =~ ^[0-9]+$ ]] || return 1
    stat=$(<"/proc/$init/stat") || return 1
    stat=${stat##*) }               # the fields after "(comm) ": state ppid ...
    ppid=${stat#* } ppid=${ppid%% *}
    cmd=$(tr '\0' ' ' <"/proc/$ppid/cmdline") || return 1
    [[ $cmd == "[lxc monitor] $LXCPATH $1 " || $cmd == "[lxc monitor] $LXCPATH $1" ]] || return 1
    printf '%s\n' "$ppid"
}

NSENTER_SKIP=""
command -v nsenter >/dev/null || NSENTER_SKIP="nsenter is not installed"

# "Up" scripts (start, then retry `exec true` until it succeeds; print the retries) and "down"
# scripts (kill; never fail). Run by `sh FILE NAME` from hyperfine, so both sides pay the same sh.
cat >"$TMP/up-berth.sh" <<EOF
B=$(quote "$BERTH") S=$(quote "$STATE") N=\$1 i=0
"\$B" --root "\$S" start "\$N" </dev/null >/dev/null || exit 1
until "\$B" --root "\$S" exec "\$N" -- true </dev/null >/dev/null 2>&1; do
    i=\$((i + 1)); [ "\$i" -lt $MAX_TRIES ] || exit 1
done
echo "\$i"
EOF
cat >"$TMP/down-berth.sh" <<EOF
$(quote "$BERTH") --root $(quote "$STATE") stop --force "\$1" </dev/null >/dev/null 2>&1
exit 0
EOF
cat >"$TMP/up-lxc.sh" <<EOF
L=$(quote "$LXCPATH") N=\$1 i=0
lxc-start -P "\$L" -n "\$N" -d </dev/null >/dev/null 2>&1 || exit 1
until lxc-attach -P "\$L" -n "\$N" -- true </dev/null >/dev/null 2>&1; do
    i=\$((i + 1)); [ "\$i" -lt $MAX_TRIES ] || exit 1
done
echo "\$i"
EOF
cat >"$TMP/down-lxc.sh" <<EOF
lxc-stop -P $(quote "$LXCPATH") -n "\$1" -k </dev/null >/dev/null 2>&1
exit 0
EOF
UP_BERTH=(sh "$TMP/up-berth.sh") DOWN_BERTH=(sh "$TMP/down-berth.sh")
UP_LXC=(sh "$TMP/up-lxc.sh") DOWN_LXC=(sh "$TMP/down-lxc.sh")

# report.py JSON BASELINE [SPEC]...: a table of medians and ratios to BASELINE, then targets.
# SPEC: "ratio|LABEL|A|B|LIMIT" (median A / median B <= LIMIT) or "abs|LABEL|A|LIMIT_MS".
cat >"$TMP/report.py" <<'EOF'
import json, os, sys

path, base_name, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path) as f:
    results = json.load(f)["results"]
rows = {}
for r in results:
    codes = r.get("exit_codes") or []
    failed = sum(1 for c in codes if c != 0)
    rows[r["command"]] = (r["median"] * 1000.0, failed, len(codes) or len(r["times"]))
base = rows.get(base_name)
width = max(24, *(len(n) for n in rows))
print()
print(f"{'name':<{width}} {'median ms':>10} {'x ' + base_name if base else '':>{max(9, len(base_name) + 2)}}")
for name, (ms, failed, n) in rows.items():
    ratio = f"{ms / base[0]:.2f}" if base else "-"
    note = f"  ({failed}/{n} runs failed)" if failed else ""
    print(f"{name:<{width}} {ms:>10.2f} {ratio:>{max(9, len(base_name) + 2)}}{note}")
print()
out = open(os.environ["TARGETS"], "a")
def emit(line):
    print(line)
    out.write(line + "\n")
for spec in specs:
    kind, label, *args = spec.split("|")
    names = args[:2] if kind == "ratio" else args[:1]
    absent = [x for x in names if x not in rows]
    if absent:
        emit(f"{label:<58} {'':>10}  n/a ({' and '.join(absent)} skipped)")
        continue
    failed = [x for x in names if rows[x][1]]
    if kind == "ratio":
        value = rows[names[0]][0] / rows[names[1]][0]
        shown = f"{value:.2f}x"
    else:
        value = rows[names[0]][0]
        shown = f"{value:.1f} ms"
    limit = float(args[-1])
    if failed:
        verdict = "MISS (runs failed: " + ", ".join(failed) + ")"
    else:
        verdict = "PASS" if value <= limit else "MISS"
    emit(f"{label:<58} {shown:>10}  {verdict}")
EOF
export TARGETS

# hf JSON RUNS ARGS...: one hyperfine call; 1 when it failed (the section then prints nothing).
hf() {
    local json=$1 runs=$2
    shift 2
    if ! hyperfine -N --warmup "$WARMUP" --runs "$runs" --ignore-failure --export-json "$json" "$@"; then
        say "hyperfine failed; no results for this section"
        return 1
    fi
}

# pf NAME CMD...: run CMD once (pre-flight, with a timeout); on failure print the reason, return 1.
pf() {
    local rc=0
    timeout -k 5 "$PREFLIGHT_TIMEOUT" "${@:2}" </dev/null >"$TMP/pf.out" 2>"$TMP/pf.err" || rc=$?
    if ((rc == 124 || rc == 137)); then
        say "SKIP $1: timed out after ${PREFLIGHT_TIMEOUT}s ($(first_line "$TMP/pf.err"))"
        return 1
    elif ((rc != 0)); then
        say "SKIP $1: exit status $rc ($(first_line "$TMP/pf.err"))"
        return 1
    fi
}

# pf_exec NAME CMD...: CMD followed by a sentinel command must run it inside and pass its status.
pf_exec() {
    local rc=0
    timeout -k 5 "$PREFLIGHT_TIMEOUT" "${@:2}" sh -c "echo $SENTINEL_TOKEN; exit 7" </dev/null \
        >"$TMP/pf.out" 2>"$TMP/pf.err" || rc=$?
    if ((rc != 7)) || ! grep -qx "$SENTINEL_TOKEN" "$TMP/pf.out"; then
        say "SKIP $1: \`sh -c 'echo TOKEN; exit 7'\` gave exit status $rc and" \
            "$(grep -c -x "$SENTINEL_TOKEN" "$TMP/pf.out" || true) TOKEN lines ($(first_line "$TMP/pf.err"))"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
say "berth: $BERTH"
say "state: $STATE; lxcpath: ${LXCPATH:-(LXC skipped)}; runs: $RUNS (stop: $STOP_RUNS), warmup $WARMUP"
[[ -n $LXC_SKIP ]] && say "SKIP LXC: $LXC_SKIP"

BN=$TAG-b0 LN=$TAG-l0    # the containers of sections 1–3
BERTH_READY=0 LXC_READY=0
# Without a network, as the LXC containers here (lxc.net.0.type = empty): bench/net.sh
# times a start with a bridged veth.
if berth create busybox "$BN" --net none </dev/null >/dev/null 2>"$TMP/create.err"; then
    if pf "berth start → exec" "${UP_BERTH[@]}" "$BN"; then
        BERTH_READY=1
        say "pre-flight: berth start → first exec true: $(head -n1 "$TMP/pf.out") retries"
    fi
else
    say "SKIP berth: berth create busybox $BN failed ($(first_line "$TMP/create.err"))"
fi
if [[ -z $LXC_SKIP ]]; then
    if lxc_make "$LN"; then
        if pf "lxc-start → attach" "${UP_LXC[@]}" "$LN"; then
            LXC_READY=1
            say "pre-flight: lxc-start -d → first lxc-attach true: $(head -n1 "$TMP/pf.out") retries"
        fi
    else
        say "SKIP LXC: lxc-create -t busybox failed ($(first_line "$TMP/lxc-create.log"))"
    fi
fi
((BERTH_READY)) && "${DOWN_BERTH[@]}" "$BN"
((LXC_READY)) && "${DOWN_LXC[@]}" "$LN"

# ---------------------------------------------------------------------------------------------
if want_section 1; then
say ""
say "== 1. start → first successful exec true (hyperfine; the command starts the container and"
say "==    retries exec/attach until \`true\` succeeds; --prepare kills it before every run)"
HF=(--prepare true -n "sh wrapper (sh -c true)" "sh -c true")
if ((BERTH_READY)); then
    HF+=(--prepare "$(quote "${DOWN_BERTH[@]}" "$BN")" -n "berth start → exec" "$(quote "${UP_BERTH[@]}" "$BN")")
fi
if ((LXC_READY)); then
    HF+=(--prepare "$(quote "${DOWN_LXC[@]}" "$LN")" -n "lxc-start -d → attach" "$(quote "${UP_LXC[@]}" "$LN")")
fi
if ((BERTH_READY + LXC_READY == 0)); then
    say "nothing to benchmark"
elif hf "$TMP/start.json" "$RUNS" "${HF[@]}"; then
    python3 "$TMP/report.py" "$TMP/start.json" "lxc-start -d → attach" \
        "ratio|target: start → first exec <= 0.5x LXC|berth start → exec|lxc-start -d → attach|0.5"
fi

fi # section 1
# ---------------------------------------------------------------------------------------------
if want_section 2; then
say ""
say "== 2. exec true into a running container (hyperfine)"
BPID=""
if ((BERTH_READY)); then
    [[ $(berth_info "$BN" state 2>/dev/null) == running ]] || "${UP_BERTH[@]}" "$BN" >/dev/null || true
    BPID=$(berth_info "$BN" pid 2>/dev/null || true)
fi
if ((LXC_READY)); then
    [[ $(lxc-info -P "$LXCPATH" -n "$LN" -s -H 2>/dev/null) == RUNNING ]] || "${UP_LXC[@]}" "$LN" >/dev/null || true
fi
HF=()
if ((BERTH_READY)) && pf_exec "berth exec" "$BERTH" --root "$STATE" exec "$BN" --; then
    HF+=(-n "berth exec" "$(quote "$BERTH" --root "$STATE" exec "$BN" -- true)")
fi
if ((LXC_READY)) && pf_exec "lxc-attach" lxc-attach -P "$LXCPATH" -n "$LN" --; then
    HF+=(-n "lxc-attach" "$(quote lxc-attach -P "$LXCPATH" -n "$LN" -- true)")
fi
if [[ -n $NSENTER_SKIP ]]; then
    say "SKIP nsenter: $NSENTER_SKIP"
elif [[ ! $BPID =~ ^[0-9]+$ ]]; then
    say "SKIP nsenter: no pid for $BN from berth info --format json"
elif pf_exec "nsenter" nsenter -t "$BPID" -a; then
    HF+=(-n "nsenter -a (berth's)" "$(quote nsenter -t "$BPID" -a /bin/true)")
fi
if ((${#HF[@]} == 0)); then
    say "nothing to benchmark"
elif hf "$TMP/exec.json" "$RUNS" "${HF[@]}"; then
    python3 "$TMP/report.py" "$TMP/exec.json" "nsenter -a (berth's)" \
        "ratio|target: berth exec <= 1.0x lxc-attach|berth exec|lxc-attach|1.0" \
        "ratio|target: berth exec <= 1.5x nsenter -a|berth exec|nsenter -a (berth's)|1.5"
fi

fi # section 2
# ---------------------------------------------------------------------------------------------
if want_section 3; then
say ""
say "== 3. stop a running container (hyperfine; --prepare starts it and waits for exec true)"
((BERTH_READY)) && "${DOWN_BERTH[@]}" "$BN"
((LXC_READY)) && "${DOWN_LXC[@]}" "$LN"
HF=()
if ((BERTH_READY)); then
    if pf "berth stop" sh -c "$(quote "${UP_BERTH[@]}" "$BN") && $(quote "$BERTH" --root "$STATE" stop "$BN")"; then
        up=$(quote "${UP_BERTH[@]}" "$BN")
        HF+=(--prepare "$up" -n "berth stop" "$(quote "$BERTH" --root "$STATE" stop "$BN")")
        HF+=(--prepare "$up" -n "berth stop --force" "$(quote "$BERTH" --root "$STATE" stop --force "$BN")")
    fi
    "${DOWN_BERTH[@]}" "$BN"
fi
if ((LXC_READY)); then
    if pf "lxc-stop" sh -c "$(quote "${UP_LXC[@]}" "$LN") && $(quote lxc-stop -P "$LXCPATH" -n "$LN")"; then
        up=$(quote "${UP_LXC[@]}" "$LN")
        HF+=(--prepare "$up" -n "lxc-stop" "$(quote lxc-stop -P "$LXCPATH" -n "$LN")")
        HF+=(--prepare "$up" -n "lxc-stop -k" "$(quote lxc-stop -P "$LXCPATH" -n "$LN" -k)")
    fi
    "${DOWN_LXC[@]}" "$LN"
fi
if ((${#HF[@]} == 0)); then
    say "nothing to benchmark"
elif hf "$TMP/stop.json" "$STOP_RUNS" "${HF[@]}"; then
    python3 "$TMP/report.py" "$TMP/stop.json" "lxc-stop" \
        "abs|target: berth stop <= 100 ms|berth stop|100"
fi
((BERTH_READY)) && "${DOWN_BERTH[@]}" "$BN"
((LXC_READY)) && "${DOWN_LXC[@]}" "$LN"

fi # section 3
# ---------------------------------------------------------------------------------------------
if want_section 4; then
say ""
say "== 4. host memory per idle running container: PSS (/proc/PID/smaps_rollup) of berth's"
say "==    supervisor (supervisor_pid of berth info) and of LXC's monitor (the parent of"
say "==    lxc-info -p's init, checked to be \`[lxc monitor] LXCPATH NAME\`), $MEM_N running containers"
say "==    each, all at once, ${IDLE_SECS}s after the last start; for context, the PSS summed over every"
say "==    process in each container's pid namespace"
: >"$TMP/mem.txt"
mem_berth=() mem_lxc=()
if ((BERTH_READY)); then
    for ((i = 1; i <= MEM_N; i++)); do
        n=$TAG-m$i
        if ! berth launch busybox "$n" --net none </dev/null >/dev/null 2>"$TMP/launch.err"; then
            say "berth launch busybox $n failed: $(first_line "$TMP/launch.err")"
            break
        fi
        mem_berth+=("$n")
    done
fi
if ((LXC_READY)); then
    for ((i = 1; i <= MEM_N; i++)); do
        n=$TAG-n$i
        if ! lxc_make "$n"; then
            say "lxc-create $n failed: $(first_line "$TMP/lxc-create.log")"
            break
        fi
        if ! lxc-start -P "$LXCPATH" -n "$n" -d </dev/null >/dev/null 2>&1; then
            say "lxc-start -d $n failed"
            break
        fi
        mem_lxc+=("$n")
    done
fi
sleep "$IDLE_SECS"
berth_exe=$(readlink -f "$BERTH")
for n in "${mem_berth[@]}"; do
    sup=$(berth_info "$n" supervisor_pid 2>/dev/null || true)
    pid=$(berth_info "$n" pid 2>/dev/null || true)
    if [[ ! $sup =~ ^[0-9]+$ ]] || [[ $(readlink "/proc/$sup/exe" 2>/dev/null) != "$berth_exe" ]] ||
        [[ $(cat "/proc/$sup/comm" 2>/dev/null) != "berth: "* ]]; then
        say "berth $n: supervisor_pid '$sup' is not a running berth supervisor; left out"
        continue
    fi
    printf 'berth %s %s %s\n' "$n" "$sup" "${pid:--}" >>"$TMP/mem.txt"
done
for n in "${mem_lxc[@]}"; do
    if ! mon=$(lxc_monitor_pid "$n"); then
        say "LXC $n: no [lxc monitor] process found; left out"
        continue
    fi
    pid=$(lxc-info -P "$LXCPATH" -n "$n" -p -H 2>/dev/null || true)
    printf 'lxc %s %s %s\n' "$n" "$mon" "${pid:--}" >>"$TMP/mem.txt"
done
python3 - "$TMP/mem.txt" <<'EOF'
import os, statistics, sys

def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None

def pid_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None

procs = [p for p in os.listdir("/proc") if p.isdigit()]
ns_of = {p: pid_ns(p) for p in procs}
data = {k: ([], [], []) for k in ("berth", "lxc")}   # helper, container, helper + container
for line in open(sys.argv[1]):
    kind, _, helper, init = line.split()
    h = pss(helper)
    c = None
    ns = pid_ns(init) if init != "-" else None
    if ns and ns != pid_ns("self"):          # never sum the host's own namespace
        parts = [pss(p) for p, n in ns_of.items() if n == ns]
        c = sum(x for x in parts if x is not None)
    if h is not None:
        data[kind][0].append(h)
    if c is not None:
        data[kind][1].append(c)
    if h is not None and c is not None:
        data[kind][2].append(h + c)
labels = {"berth": ("berth supervisor", "berth container procs", "berth total"),
          "lxc": ("LXC monitor", "LXC container procs", "LXC total")}
print()
print(f"{'PSS kB':<24} {'n':>4} {'median':>8} {'mean':>8} {'min':>8} {'max':>8}")
for kind in ("berth", "lxc"):
    for values, label in zip(data[kind], labels[kind]):
        if values:
            print(f"{label:<24} {len(values):>4} {statistics.median(values):>8.0f} "
                  f"{statistics.mean(values):>8.0f} {min(values):>8} {max(values):>8}")
        else:
            print(f"{label:<24} {0:>4}  (none measured)")
print()
label = "target: supervisor PSS <= 0.5x LXC monitor (medians)"
b, l = data["berth"][0], data["lxc"][0]
if b and l:
    ratio = statistics.median(b) / statistics.median(l)
    line = f"{label:<58} {ratio:>9.2f}x  {'PASS' if ratio <= 0.5 else 'MISS'}"
else:
    line = f"{label:<58} {'':>10}  n/a (no {'berth' if not b else 'LXC'} figures)"
print(line)
with open(os.environ["TARGETS"], "a") as out:
    out.write(line + "\n")
EOF
for n in "${mem_berth[@]}"; do
    berth delete --force "$n" </dev/null >/dev/null 2>"$TMP/delete.err" ||
        say "berth delete --force $n failed: $(first_line "$TMP/delete.err")"
done
for n in "${mem_lxc[@]}"; do
    lxc-destroy -P "$LXCPATH" -n "$n" -f </dev/null >/dev/null 2>&1 || say "lxc-destroy -f $n failed"
done

fi # section 4
# ---------------------------------------------------------------------------------------------
if want_section 5; then
say ""
say "== 5. $SEQ_N berth busybox containers started one after another (each \`berth start\` timed"
say "==    with bash's EPOCHREALTIME; all created first, untimed)"
ms_since() { # START (EPOCHREALTIME) -> milliseconds until now
    local now=$EPOCHREALTIME
    python3 -c 'import sys; print(f"{(float(sys.argv[2]) - float(sys.argv[1])) * 1000:.3f}")' "$1" "$now"
}
if ((BERTH_READY)); then
    seq_names=()
    t0=$EPOCHREALTIME
    for ((i = 1; i <= SEQ_N; i++)); do
        n=$TAG-s$i
        if ! berth create busybox "$n" --net none </dev/null >/dev/null 2>"$TMP/create.err"; then
            say "berth create busybox $n failed: $(first_line "$TMP/create.err")"
            break
        fi
        seq_names+=("$n")
    done
    say "created ${#seq_names[@]} containers in $(ms_since "$t0") ms"
    : >"$TMP/seq.txt"
    failed=0
    for n in "${seq_names[@]}"; do
        t0=$EPOCHREALTIME
        if berth start "$n" </dev/null >/dev/null 2>"$TMP/start.err"; then
            t1=$EPOCHREALTIME
            printf '%s %s\n' "$t0" "$t1" >>"$TMP/seq.txt"
        else
            ((failed += 1))
            say "berth start $n failed: $(first_line "$TMP/start.err")"
            printf '%s -\n' "$t0" >>"$TMP/seq.txt"
        fi
    done
    running=$(berth list --format json | python3 -c \
        'import json, sys; print(sum(c["state"] == "running" for c in json.load(sys.stdin)))')
    say "running after the starts: $running (failed starts: $failed)"
    python3 - "$TMP/seq.txt" <<'EOF'
import os, statistics, sys

rows = [line.split() for line in open(sys.argv[1])]
ms = [(float(b) - float(a)) * 1000 for a, b in rows if b != "-"]
print()
if len(ms) < 2 or rows[0][1] == "-" or rows[-1][1] == "-":
    line = f"{'target: last start <= first start':<58} {'':>10}  n/a (first or last start failed)"
else:
    k = max(1, min(10, len(ms) // 10))
    first, last = ms[0], ms[-1]
    print(f"start ms: first {first:.2f}  median {statistics.median(ms):.2f}  last {last:.2f}"
          f"  (min {min(ms):.2f}, max {max(ms):.2f})")
    print(f"median of the first {k}: {statistics.median(ms[:k]):.2f} ms, of the last {k}:"
          f" {statistics.median(ms[-k:]):.2f} ms (ratio {statistics.median(ms[-k:]) / statistics.median(ms[:k]):.2f})")
    ratio = last / first
    line = f"{'target: last start <= first start (last/first)':<58} {ratio:>9.2f}x  {'PASS' if ratio <= 1.0 else 'MISS'}"
print(line)
with open(os.environ["TARGETS"], "a") as out:
    out.write(line + "\n")
EOF
    t0=$EPOCHREALTIME
    for n in "${seq_names[@]}"; do
        berth stop "$n" </dev/null >/dev/null 2>"$TMP/stop.err" || say "berth stop $n failed: $(first_line "$TMP/stop.err")"
    done
    say "stopped them in $(ms_since "$t0") ms"
    t0=$EPOCHREALTIME
    for n in "${seq_names[@]}"; do
        berth delete "$n" </dev/null >/dev/null 2>"$TMP/delete.err" ||
            say "berth delete $n failed: $(first_line "$TMP/delete.err")"
    done
    say "deleted them in $(ms_since "$t0") ms"
else
    say "SKIP sequential starts: berth is not usable (see above)"
fi

fi # section 5
# ---------------------------------------------------------------------------------------------
if want_section 6; then
say ""
say "== 6. Debian 12 with systemd: \`start\` until \`systemctl is-system-running\` says \`running\`,"
say "==    then a clean \`stop\`: berth (unprivileged), LXC, systemd-nspawn -b, one rootfs, runs interleaved"
DEB_DONE=0
DEB_CACHE=${DEBIAN_CACHE:-/var/cache/berth-test}
DEB_SRC=${DEBIAN_ROOTFS:-$DEB_CACHE/bookworm-systemd}
if [[ ! -f $DEB_SRC/etc/debian_version && -z ${DEBIAN_ROOTFS:-} ]] && command -v debootstrap >/dev/null; then
    # The same cached rootfs as the test suite's (tests/e2e: debian_rootfs), built the same way.
    say "building $DEB_SRC with debootstrap (once; cached for the tests too)"
    mkdir -p "$DEB_CACHE" && chmod 700 "$DEB_CACHE"
    (
        flock 9
        if [[ ! -f $DEB_SRC/etc/debian_version ]]; then
            rm -rf "$DEB_CACHE/.bookworm-systemd.tmp"
            debootstrap --variant=minbase --include=systemd-sysv,iproute2,ifupdown,dbus bookworm \
                "$DEB_CACHE/.bookworm-systemd.tmp" "${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
                >"$TMP/debootstrap.log" 2>&1 && mv "$DEB_CACHE/.bookworm-systemd.tmp" "$DEB_SRC"
        fi
    ) 9>"$DEB_CACHE/.bookworm-systemd.lock" || true
fi
if ((!BERTH_READY)); then
    say "SKIP Debian: berth is not usable (see above)"
elif [[ ! -f $DEB_SRC/etc/debian_version ]]; then
    say "SKIP Debian: no Debian rootfs at $DEB_SRC (set DEBIAN_ROOTFS, or install debootstrap)"
else
    DEB_ROOT=$TMP/private/debian          # private: berth's unprivileged rootfs rule
    cp -a "$DEB_SRC" "$DEB_ROOT"
    DEB_BERTH=$TAG-deb DEB_LXC=$TAG-deblxc DEB_NSPAWN_CG=$TAG-nspawn
    berth create "$DEB_ROOT" "$DEB_BERTH" --net none </dev/null >/dev/null
    DEB_HAVE_LXC=0 DEB_HAVE_NSPAWN=0
    if [[ -z $LXC_SKIP ]]; then
        mkdir -p "$LXCPATH/$DEB_LXC"
        {
            [[ -f /usr/share/lxc/config/debian.common.conf ]] &&
                echo "lxc.include = /usr/share/lxc/config/debian.common.conf"
            printf 'lxc.arch = linux64\nlxc.uts.name = %s\nlxc.rootfs.path = dir:%s\n' "$DEB_LXC" "$DEB_ROOT"
            printf 'lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\nlxc.cgroup.dir = %s\n' "$DEB_LXC"
        } >"$LXCPATH/$DEB_LXC/config"
        DEB_HAVE_LXC=1
    fi
    NSPAWN_RUN_EXISTED=0
    [[ -e /run/systemd/nspawn ]] && NSPAWN_RUN_EXISTED=1
    if command -v systemd-nspawn >/dev/null; then DEB_HAVE_NSPAWN=1; fi

    # Each "up" prints seconds from start to `running` (or fails: `degraded`, timeout).
    deb_wait() { # CMD...: run CMD (systemctl is-system-running inside) until it says running
        local i st
        for ((i = 0; i < 3000; i++)); do
            st=$("$@" systemctl is-system-running </dev/null 2>/dev/null || true)
            [[ $st == running ]] && return 0
            [[ $st == degraded ]] && { warn "degraded: $("$@" systemctl --failed --no-legend </dev/null 2>&1 | tr '\n' ' ')"; return 1; }
            sleep 0.01
        done
        return 1
    }
    since() { # EPOCHREALTIME at the start → seconds since, with 3 decimals (no bc needed)
        local now=${EPOCHREALTIME/./} then=${1/./}
        local us=$((10#$now - 10#$then))
        printf '%d.%03d' $((us / 1000000)) $((us % 1000000 / 1000))
    }
    berth_up() {
        local t0=$EPOCHREALTIME
        berth start "$DEB_BERTH" </dev/null >/dev/null && deb_wait "$BERTH" --root "$STATE" exec "$DEB_BERTH" -- &&
            since "$t0"
    }
    berth_down() { local t0=$EPOCHREALTIME; berth stop "$DEB_BERTH" </dev/null >/dev/null && since "$t0"; }
    lxc_up() {
        local t0=$EPOCHREALTIME
        lxc-start -P "$LXCPATH" -n "$DEB_LXC" -d </dev/null >/dev/null 2>&1 &&
            deb_wait lxc-attach -P "$LXCPATH" -n "$DEB_LXC" -- && since "$t0"
    }
    lxc_down() { local t0=$EPOCHREALTIME; lxc-stop -P "$LXCPATH" -n "$DEB_LXC" </dev/null >/dev/null 2>&1 && since "$t0"; }
    NSPAWN_PID=""
    nspawn_init() { # the container's systemd: a descendant of nspawn named systemd
        local p c
        for p in $(pgrep -P "$NSPAWN_PID") ; do
            for c in "$p" $(pgrep -P "$p"); do
                [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]] && { echo "$c"; return 0; }
            done
        done
        return 1
    }
    nspawn_up() {
        local t0=$EPOCHREALTIME pid i
        # In a cgroup of its own (ANCHORS.md): nspawn makes payload/ and supervisor/ under it.
        (
            for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
                [[ -d $h ]] && mkdir -p "$h/$DEB_NSPAWN_CG" && echo "$BASHPID" >"$h/$DEB_NSPAWN_CG/cgroup.procs"
            done
            exec systemd-nspawn -q --register=no --keep-unit -b --console=passive -D "$DEB_ROOT"
        ) </dev/null >"$TMP/nspawn.log" 2>&1 &
        NSPAWN_PID=$!
        for ((i = 0; i < 3000; i++)); do pid=$(nspawn_init) && break; sleep 0.01; done
        [[ -n ${pid:-} ]] && deb_wait nsenter -t "$pid" -a && since "$t0"
    }
    nspawn_down() {
        local t0=$EPOCHREALTIME
        # SIGTERM: nspawn sends the container's systemd SIGRTMIN+3 (poweroff) and waits.
        [[ -n $NSPAWN_PID ]] && kill -TERM "$NSPAWN_PID" && wait "$NSPAWN_PID" && NSPAWN_PID="" &&
            since "$t0"
    }
    DEB_RUNS=${DEB_RUNS:-5}
    : >"$TMP/deb.txt"
    # Round 0 is a warm-up, not counted: the first boot of the rootfs does one-time work
    # (machine-id, journal), which would fall on whoever boots first.
    for ((r = 0; r <= DEB_RUNS; r++)); do
        for who in berth lxc nspawn; do
            case $who in
                lxc) ((DEB_HAVE_LXC)) || continue ;;
                nspawn) ((DEB_HAVE_NSPAWN)) || continue ;;
            esac
            # Not in $(...): nspawn_up sets NSPAWN_PID for nspawn_down.
            up=fail down=fail
            if "${who}_up" >"$TMP/deb.out"; then
                up=$(<"$TMP/deb.out")
                "${who}_down" >"$TMP/deb.out" && down=$(<"$TMP/deb.out")
            else
                "${who}_down" >/dev/null 2>&1 || true
            fi
            if [[ $who == nspawn && -n $NSPAWN_PID ]]; then # still there: end it
                kill -KILL "$NSPAWN_PID" 2>/dev/null || true
                wait "$NSPAWN_PID" 2>/dev/null || true
                NSPAWN_PID=""
            fi
            say "  run $r: $who up $up s, stop $down s$( ((r)) || echo ' (warm-up, not counted)')"
            ((r)) && echo "$who $up $down" >>"$TMP/deb.txt"
        done
    done
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do rmdir_tree "$h/$DEB_NSPAWN_CG"; done
    ((NSPAWN_RUN_EXISTED)) || rm -rf /run/systemd/nspawn
    python3 - "$TMP/deb.txt" <<'EOF' | tee -a "$TARGETS"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    who, up, down = line.split()
    rows.setdefault(who, ([], []))
    if up != "fail": rows[who][0].append(float(up))
    if down != "fail": rows[who][1].append(float(down))
med = {w: (statistics.median(u) if u else None, statistics.median(d) if d else None) for w, (u, d) in rows.items()}
for w, (u, d) in med.items():
    print(f"median {w:<8} start → running {u if u is None else f'{u:.3f} s'}   clean stop {d if d is None else f'{d:.3f} s'}", file=sys.stderr)
def target(label, mine, theirs):
    if mine is None or theirs is None:
        print(f"{label:<58} {'':>10}  n/a (runs failed or anchor skipped)")
    else:
        print(f"{label:<58} {mine / theirs:>9.2f}x  {'PASS' if mine <= theirs else 'MISS'}")
b, l, n = med.get("berth", (None, None)), med.get("lxc", (None, None)), med.get("nspawn", (None, None))
target("target: Debian start to running <= LXC", b[0], l[0])
target("target: Debian clean stop <= nspawn", b[1], n[1])
EOF
    DEB_DONE=1
fi
((DEB_DONE)) || {
    say "target: Debian start to running <= LXC                         n/a (skipped)" >>"$TARGETS"
    say "target: Debian clean stop <= nspawn                            n/a (skipped)" >>"$TARGETS"
}

fi # section 6
# ---------------------------------------------------------------------------------------------
say ""
say "== summary of targets"
cat "$TARGETS"
exit 0
