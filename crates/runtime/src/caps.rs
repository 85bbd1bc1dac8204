//! The default capability set of a system container, as one table with the source of each
//! decision. The rule: keep what a full Debian system (systemd, sysvinit, sshd, cron, dhcp
//! clients, package builds) uses inside its own namespaces; drop what reaches the shared
//! kernel or the host's hardware.

use caps::{CapSet, Capability, CapsHashSet};

/// Why a capability is kept or dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Keep,
    Drop,
    /// Kept only when the container has a network namespace of its own: with the host's
    /// network it would let container root reconfigure the host's interfaces and firewall.
    KeepWithPrivateNet,
    /// Kept only in a user namespace, where it reaches no further than the container. As
    /// real root (privileged) it would let the container ptrace berth's own non-dumpable init
    /// and reach the berth binary through /proc/1/exe (CVE-2019-5736); Docker drops it too.
    KeepInUserns,
}

/// (capability, decision, source). Sources: LXC's config/common.conf (`lxc.cap.drop = mac_admin
/// mac_override sys_time sys_module sys_rawio`), systemd-nspawn's retained set
/// (nspawn.c, `arg_caps_retain`), capabilities(7).
pub const TABLE: &[(Capability, Decision, &str)] = {
    use Capability::*;
    use Decision::*;
    &[
        (CAP_CHOWN, Keep, "nspawn retains; package managers chown"),
        (CAP_DAC_OVERRIDE, Keep, "nspawn retains"),
        (
            CAP_DAC_READ_SEARCH,
            Keep,
            "nspawn retains; pam unix_chkpwd (LXC gentoo notes)",
        ),
        (CAP_FOWNER, Keep, "nspawn retains"),
        (CAP_FSETID, Keep, "nspawn retains"),
        (CAP_KILL, Keep, "nspawn retains"),
        (CAP_SETGID, Keep, "nspawn retains; login/initgroups"),
        (CAP_SETUID, Keep, "nspawn retains; sshd, su"),
        (
            CAP_SETPCAP,
            Keep,
            "nspawn retains; journald drops its own caps",
        ),
        (CAP_LINUX_IMMUTABLE, Keep, "nspawn retains"),
        (CAP_NET_BIND_SERVICE, Keep, "nspawn retains"),
        (CAP_NET_BROADCAST, Keep, "nspawn retains"),
        (
            CAP_NET_ADMIN,
            KeepWithPrivateNet,
            "nspawn adds it with --private-network only",
        ),
        (CAP_NET_RAW, Keep, "nspawn retains; ping, dhcp clients"),
        (CAP_IPC_LOCK, Keep, "LXC keeps; scoped by the memory cgroup"),
        (
            CAP_IPC_OWNER,
            Keep,
            "nspawn retains; ipc namespace is private",
        ),
        (
            CAP_SYS_MODULE,
            Drop,
            "LXC common.conf drops: kernel modules reach the host",
        ),
        (
            CAP_SYS_RAWIO,
            Drop,
            "LXC common.conf drops: raw port and memory I/O",
        ),
        (CAP_SYS_CHROOT, Keep, "nspawn retains"),
        (
            CAP_SYS_PTRACE,
            KeepInUserns,
            "nspawn retains; Docker drops; see Decision::KeepInUserns",
        ),
        (
            CAP_SYS_PACCT,
            Drop,
            "nspawn drops: process accounting is host-wide",
        ),
        (
            CAP_SYS_ADMIN,
            Keep,
            "LXC and nspawn keep: systemd mounts inside its namespaces",
        ),
        (
            CAP_SYS_BOOT,
            Keep,
            "nspawn retains; reboot(2) in a pid namespace ends only it",
        ),
        (CAP_SYS_NICE, Keep, "nspawn retains"),
        (
            CAP_SYS_RESOURCE,
            Keep,
            "nspawn retains; systemd raises its own rlimits",
        ),
        (
            CAP_SYS_TIME,
            Drop,
            "LXC common.conf drops: the clock is the host's",
        ),
        (CAP_SYS_TTY_CONFIG, Keep, "nspawn retains"),
        (
            CAP_MKNOD,
            Keep,
            "nspawn retains; device access is policed by the devices cgroup / userns",
        ),
        (CAP_LEASE, Keep, "nspawn retains"),
        (
            CAP_AUDIT_WRITE,
            Keep,
            "nspawn retains; sshd and login write audit records",
        ),
        (CAP_AUDIT_CONTROL, Keep, "nspawn retains; sshd set_loginuid"),
        (
            CAP_SETFCAP,
            Keep,
            "nspawn retains; dpkg installs file capabilities",
        ),
        (
            CAP_MAC_OVERRIDE,
            Drop,
            "LXC common.conf drops: the host's MAC policy",
        ),
        (
            CAP_MAC_ADMIN,
            Drop,
            "LXC common.conf drops: the host's MAC policy",
        ),
        (
            CAP_SYSLOG,
            Drop,
            "nspawn drops: the kernel log is the host's",
        ),
        (CAP_WAKE_ALARM, Drop, "nspawn drops: host power management"),
        (
            CAP_BLOCK_SUSPEND,
            Drop,
            "nspawn drops: host power management",
        ),
        (CAP_AUDIT_READ, Drop, "nspawn drops: the host's audit log"),
        (
            CAP_PERFMON,
            Drop,
            "nspawn drops: perf reaches host-wide counters",
        ),
        (CAP_BPF, Drop, "nspawn drops: BPF programs are kernel-wide"),
        (CAP_CHECKPOINT_RESTORE, Drop, "nspawn drops"),
    ]
};

/// The set kept, given whether the container has a network namespace and a user namespace
/// of its own.
pub fn kept(private_net: bool, userns: bool) -> CapsHashSet {
    TABLE
        .iter()
        .filter(|(_, d, _)| match d {
            Decision::Keep => true,
            Decision::Drop => false,
            Decision::KeepWithPrivateNet => private_net,
            Decision::KeepInUserns => userns,
        })
        .map(|(c, _, _)| *c)
        .collect()
}

/// Drops every capability outside `keep` from the bounding set, then sets the permitted,
/// effective and inheritable sets to `keep` (intersected with what the process has: on this
/// kind of host root itself lacks CAP_SYS_RESOURCE). Ambient capabilities are cleared.
pub fn apply_bounding(keep: &CapsHashSet) -> Result<(), rustix::io::Errno> {
    // One prctl per capability (the caps crate would read the sets again for each).
    for cap in caps::all() {
        if !keep.contains(&cap) {
            berth_sys::caps::drop_bounding(cap.index())?;
        }
    }
    berth_sys::caps::clear_ambient()
}

/// Sets permitted, effective and inheritable to `keep` ∩ permitted; for root after the
/// bounding set was trimmed.
pub fn apply_process_sets(keep: &CapsHashSet) -> Result<(), caps::errors::CapsError> {
    let permitted = caps::read(None, CapSet::Permitted)?;
    let set: CapsHashSet = keep.intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &set)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Permitted, &set)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_capability_once() {
        let mut seen = CapsHashSet::new();
        for (c, _, _) in TABLE {
            assert!(seen.insert(*c), "{c} twice");
        }
        for c in caps::all() {
            assert!(seen.contains(&c), "{c} missing from the table");
        }
    }

    #[test]
    fn lxc_default_drops_are_dropped() {
        let k = kept(true, true);
        for c in [
            Capability::CAP_SYS_MODULE,
            Capability::CAP_SYS_TIME,
            Capability::CAP_SYS_RAWIO,
            Capability::CAP_MAC_ADMIN,
            Capability::CAP_MAC_OVERRIDE,
        ] {
            assert!(!k.contains(&c), "{c} kept");
        }
        assert!(k.contains(&Capability::CAP_SYS_ADMIN));
        assert!(k.contains(&Capability::CAP_NET_ADMIN));
        assert!(!kept(false, true).contains(&Capability::CAP_NET_ADMIN));
        assert!(!kept(true, false).contains(&Capability::CAP_SYS_PTRACE));
        assert!(k.contains(&Capability::CAP_SYS_PTRACE));
    }
}
