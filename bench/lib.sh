# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run).

# Sets BERTH (the binary to time; built with cargo when unset and missing) and BERTH_SKIP
# (why berth's rows must be skipped, or empty). Needs REPO, TMP and a `say` function.
# shellcheck disable=SC2034 # BERTH_SKIP is read by the scripts that source this.
find_berth() {
    BERTH_SKIP=""
    if [[ -z ${BERTH:-} ]]; then
        BERTH=${CARGO_TARGET_DIR:-$REPO/target}/x86_64-unknown-linux-gnu/release/berth
        if [[ ! -x $BERTH ]]; then
            cargo_bin=${CARGO:-$(command -v cargo || true)}
            [[ -z $cargo_bin && -x $HOME/.cargo/bin/cargo ]] && cargo_bin=$HOME/.cargo/bin/cargo
            if [[ -z $cargo_bin && -n ${SUDO_USER:-} ]]; then
                user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
                [[ -x $user_home/.cargo/bin/cargo ]] && cargo_bin=$user_home/.cargo/bin/cargo
            fi
            if [[ -z $cargo_bin ]]; then
                BERTH_SKIP="$BERTH is missing and cargo was not found to build it"
            else
                say "building berth: cargo build --release -p berth (log: cargo.log in the temp dir)"
                if ! (cd "$REPO" && "$cargo_bin" build --release -p berth) >"$TMP/cargo.log" 2>&1; then
                    BERTH_SKIP="cargo build --release -p berth failed ($(grep -m1 -E '^error' "$TMP/cargo.log" ||
                        tail -n1 "$TMP/cargo.log"))"
                elif [[ ! -x $BERTH ]]; then
                    BERTH_SKIP="cargo build succeeded but $BERTH is still missing"
                fi
            fi
        fi
    elif [[ ! -x $BERTH ]]; then
        BERTH_SKIP="BERTH=$BERTH is not an executable file"
    fi
}

# stop_lxcfs STATE: ends the lxcfs berth started for state root STATE (a system container's
# start starts one when lxcfs is installed): its mount first, which usually ends it, then
# the process by the pid berth recorded, once its command line shows it is that lxcfs (the
# pid may have been reused).
stop_lxcfs() {
    local state=$1 pid
    mountpoint -q "$state/run/lxcfs" 2>/dev/null || return 0
    umount -l "$state/run/lxcfs"
    sleep 0.1
    [[ -f $state/run/lxcfs.pid ]] || return 0
    pid=$(cat "$state/run/lxcfs.pid")
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state/run/lxcfs"; then
        kill "$pid" 2>/dev/null
    fi
    return 0
}

# delete_networks STATE: removes the networks berth made for state root STATE (bridge,
# dnsmasq, firewall table), after its containers are gone.
delete_networks() {
    local state=$1 n
    [[ -n ${BERTH:-} && -x ${BERTH:-} && -d $state/networks ]] || return 0
    for n in "$state"/networks/*.toml; do
        [[ -f $n ]] && "$BERTH" --root "$state" network delete "$(basename "$n" .toml)" >/dev/null 2>&1
    done
    return 0
}

# clear_state STATE: everything berth made for state root STATE: its containers (deleted
# with --force), its networks, its lxcfs.
clear_state() {
    local state=$1 d
    if [[ -n ${BERTH:-} && -x ${BERTH:-} && -d $state/containers ]]; then
        for d in "$state"/containers/*/; do
            [[ -d $d ]] && "$BERTH" --root "$state" delete --force "$(basename "$d")" >/dev/null 2>&1
        done
    fi
    delete_networks "$state"
    stop_lxcfs "$state"
}
