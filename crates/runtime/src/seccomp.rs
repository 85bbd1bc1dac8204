//! The default seccomp profile: a deny list answered with EPERM, on the x86_64, x86 and x32
//! ABIs alike (a deny list that forgot an ABI could be bypassed through it). The program is
//! compiled with libseccomp once and cached by hash, because compiling on every start is
//! where systemd-nspawn spends most of its start-up time.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// (syscall, source). Every entry answers EPERM.
pub const DENY: &[(&str, &str)] = &[
    ("kexec_load", "LXC common.seccomp; loads a new kernel"),
    (
        "kexec_file_load",
        "Docker default profile; loads a new kernel",
    ),
    (
        "open_by_handle_at",
        "LXC common.seccomp; the 'shocker' escape",
    ),
    ("init_module", "LXC common.seccomp; kernel modules"),
    ("finit_module", "LXC common.seccomp; kernel modules"),
    ("delete_module", "LXC common.seccomp; kernel modules"),
    (
        "keyctl",
        "Docker default profile; the keyring is not namespaced",
    ),
    (
        "add_key",
        "Docker default profile; the keyring is not namespaced",
    ),
    (
        "request_key",
        "Docker default profile; the keyring is not namespaced",
    ),
    ("iopl", "Docker default profile; raw port I/O"),
    ("ioperm", "Docker default profile; raw port I/O"),
    ("swapon", "Docker default profile; host swap"),
    ("swapoff", "Docker default profile; host swap"),
    ("acct", "Docker default profile; host-wide accounting"),
    ("lookup_dcookie", "Docker default profile"),
    ("nfsservctl", "Docker default profile"),
    ("uselib", "Docker default profile; obsolete"),
    ("create_module", "Docker default profile; obsolete"),
    ("get_kernel_syms", "Docker default profile; obsolete"),
    ("query_module", "Docker default profile; obsolete"),
    ("_sysctl", "Docker default profile; obsolete"),
    (
        "userfaultfd",
        "Docker default profile; widens kernel race windows",
    ),
    (
        "perf_event_open",
        "Docker default profile; host-wide counters",
    ),
    (
        "fanotify_init",
        "nspawn; watches mounts beyond the container",
    ),
    ("quotactl", "nspawn; quotas are the host's"),
    ("vm86", "Docker default profile"),
    ("vm86old", "Docker default profile"),
];

/// `umount2(path, flags)` with MNT_FORCE is refused (LXC's `reject_force_umount`): a forced
/// unmount of a shared filesystem would hit the host.
const MNT_FORCE: u64 = 1;

const ARCHES: &[ScmpArch] = &[ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];

/// TIOCSTI and TIOCLINUX (asm-generic/ioctls.h).
const TERMINAL_IOCTLS: &[u64] = &[0x5412, 0x541C];

/// Bumped whenever `compile` changes in a way the tables above do not show, so that a
/// cached program from an older berth is not reused.
const PROFILE_VERSION: u32 = 2;

/// Errors of compiling the profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compile the seccomp profile: {0}")]
    Compile(#[from] libseccomp::error::SeccompError),
    #[error("write the compiled seccomp profile: {0}")]
    Export(std::io::Error),
}

/// Compiles the profile to raw BPF.
pub fn compile() -> Result<Vec<u8>, SeccompError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)?;
    // The default for an ABI not listed is to kill: a process cannot dodge the filter by
    // switching to an architecture the filter does not know.
    ctx.set_act_badarch(ScmpAction::KillProcess)?;
    // Keep no_new_privs off: system containers need setuid programs (su, sudo, ping).
    ctx.set_ctl_nnp(false)?;
    for arch in ARCHES {
        if !ctx.is_arch_present(*arch)? {
            ctx.add_arch(*arch)?;
        }
    }
    let eperm = ScmpAction::Errno(libc_eperm());
    for (name, _) in DENY {
        // A name unknown to this libseccomp (or absent on an ABI) is skipped, not fatal.
        if let Ok(sc) = ScmpSyscall::from_name(name)
            && let Err(e) = ctx.add_rule(eperm, sc)
        {
            tracing::debug!(syscall = name, "not in the seccomp profile: {e}");
        }
    }
    // ioctl(fd, TIOCSTI / TIOCLINUX, ...) types into a terminal, which may be the caller's
    // (as bubblewrap denies them). The command is a 32-bit value: compare only those bits.
    let ioctl = ScmpSyscall::from_name("ioctl")?;
    for cmd in TERMINAL_IOCTLS {
        ctx.add_rule_conditional(
            eperm,
            ioctl,
            &[ScmpArgCompare::new(
                1,
                ScmpCompareOp::MaskedEqual(0xffff_ffff),
                *cmd,
            )],
        )?;
    }
    let umount2 = ScmpSyscall::from_name("umount2")?;
    ctx.add_rule_conditional(
        eperm,
        umount2,
        &[ScmpArgCompare::new(
            1,
            ScmpCompareOp::MaskedEqual(MNT_FORCE),
            MNT_FORCE,
        )],
    )?;
    // libseccomp 2.5 (Debian 12) exports only to a file descriptor.
    let mut file = tempfile::tempfile().map_err(SeccompError::Export)?;
    ctx.export_bpf(&file)?;
    let mut out = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut out))
        .map_err(SeccompError::Export)?;
    Ok(out)
}

fn libc_eperm() -> i32 {
    1
}

/// A stable key for the compiled program: the profile's contents and libseccomp's version.
fn profile_hash() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    DENY.hash(&mut h);
    MNT_FORCE.hash(&mut h);
    TERMINAL_IOCTLS.hash(&mut h);
    PROFILE_VERSION.hash(&mut h);
    format!("{ARCHES:?}").hash(&mut h);
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        (v.major, v.minor, v.micro).hash(&mut h);
    }
    h.finish()
}

/// The compiled profile, from `cache_dir` when it is there, compiled (and cached) otherwise.
/// A cache that cannot be written only costs speed.
pub fn load_or_compile(cache_dir: &Path) -> Result<Vec<u8>, SeccompError> {
    let path: PathBuf = cache_dir.join(format!("seccomp-{:016x}.bpf", profile_hash()));
    if let Ok(bytes) = std::fs::read(&path)
        && !bytes.is_empty()
        && bytes.len().is_multiple_of(berth_sys::seccomp::INSN_LEN)
    {
        return Ok(bytes);
    }
    let bytes = compile()?;
    let tmp = cache_dir.join(format!(".seccomp-{}.tmp", std::process::id()));
    if std::fs::create_dir_all(cache_dir).is_ok()
        && std::fs::write(&tmp, &bytes).is_ok()
        && std::fs::rename(&tmp, &path).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_compiles_for_all_abis() {
        let bpf = compile().expect("compile");
        assert!(!bpf.is_empty());
        assert_eq!(bpf.len() % berth_sys::seccomp::INSN_LEN, 0);
    }

    #[test]
    fn deny_list_has_the_issue_minimum() {
        for name in [
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "finit_module",
            "delete_module",
            "keyctl",
            "add_key",
            "request_key",
        ] {
            assert!(DENY.iter().any(|(n, _)| *n == name), "{name} missing");
        }
    }

    #[test]
    fn cache_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_compile(dir.path()).expect("first");
        let b = load_or_compile(dir.path()).expect("cached");
        assert_eq!(a, b);
    }
}
