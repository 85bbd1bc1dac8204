//! The confinement of a `berth run` container: capabilities, seccomp, file descriptors, and
//! the berth binary out of the container's reach (CVE-2019-5736).

use berth_e2e::{World, root_or_skip, text};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_TIME: u32 = 25;
const CAP_MAC_OVERRIDE: u32 = 32;
const CAP_MAC_ADMIN: u32 = 33;
const CAP_SYSLOG: u32 = 34;

#[test]
fn the_bounding_set_drops_host_wide_capabilities() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&[]);
    let hex = r["cap_bnd"].as_str().expect("cap_bnd");
    let bnd = u64::from_str_radix(hex, 16).expect("cap_bnd is hex");
    for (cap, name) in [
        (CAP_SYS_MODULE, "CAP_SYS_MODULE"),
        (CAP_SYS_TIME, "CAP_SYS_TIME"),
        (CAP_SYS_RAWIO, "CAP_SYS_RAWIO"),
        (CAP_MAC_ADMIN, "CAP_MAC_ADMIN"),
        (CAP_MAC_OVERRIDE, "CAP_MAC_OVERRIDE"),
        (CAP_SYSLOG, "CAP_SYSLOG"),
    ] {
        assert_eq!(bnd & (1 << cap), 0, "{name} is in the bounding set {hex}");
    }
    // What a container needs in its own namespaces stays.
    for (cap, name) in [
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ] {
        assert_ne!(
            bnd & (1 << cap),
            0,
            "{name} is not in the bounding set {hex}"
        );
    }
}

/// The system calls a container must never make, whatever its capabilities.
const DENIED: &[&str] = &[
    "kexec_load",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
];

/// Whether the probe may skip kexec calls here: it makes them only when they cannot
/// decrement kernel.kexec_load_limit_reboot (see tests/probe/src/abi.rs).
fn probe_skips_kexec() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/kexec_load_limit_reboot")
        .is_ok_and(|limit| limit.trim() != "-1")
}

#[test]
fn seccomp_denies_the_dangerous_calls_on_every_abi() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for opts in [&[][..], &["--privileged"][..]] {
        let r = w.probe(opts);
        assert_eq!(r["seccomp"], 2, "{opts:?}: seccomp mode");
        let calls = &r["syscalls"];
        // The probe's calls work at all.
        assert_eq!(calls["x86_64"]["getpid_ok"], 0, "{opts:?}: {calls}");
        for abi in ["x86_64", "i386", "x32"] {
            for name in DENIED {
                let got = &calls[abi][*name];
                if name.starts_with("kexec") && got.is_null() && probe_skips_kexec() {
                    continue;
                }
                assert_eq!(got, 1, "{opts:?}: {abi} {name} answered {got} (want EPERM)");
            }
        }
    }
}

#[test]
fn no_file_descriptor_of_the_caller_reaches_the_container() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // The shell leaves fd 7 open (not close-on-exec) for what it execs.
    let with_fd_7 = |args: &[&str]| -> Output {
        Command::new("/bin/sh")
            .args(["-c", "exec 7</etc/hostname; exec \"$0\" \"$@\""])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sh")
    };
    let control = with_fd_7(&["readlink", "/proc/self/fd/7"]);
    assert_eq!(
        text(&control.stdout),
        "/etc/hostname\n",
        "fd 7 is inherited"
    );
    let berth = berth_e2e::bin("berth");
    let state = w.state.to_str().expect("utf-8 path");
    let berth = berth.to_str().expect("utf-8 path");
    let out = with_fd_7(&[
        berth,
        "--root",
        state,
        "run",
        w.rootfs_str(),
        "--",
        "/bin/berth-probe",
        "report",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
    let fds: Vec<&str> = r["fds"]
        .as_object()
        .expect("fds is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "open fds inside: {}", r["fds"]);
}

/// Spawns `cmd`, retrying while the kernel says ETXTBSY: a binary just written may still be
/// open for writing in a process another test thread forked before its exec.
fn output_retrying(mut cmd: Command) -> Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.expect("run berth"),
        }
    }
    panic!("berth copy stays busy (ETXTBSY)");
}

#[test]
fn the_berth_binary_cannot_be_overwritten_from_inside() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // A private copy of berth: if the container could write it, only this copy is damaged.
    let original = std::fs::read(berth_e2e::bin("berth")).expect("read berth");
    let copy = w.dir.path().join("berth");
    std::fs::write(&copy, &original).expect("copy berth");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("chmod berth copy");
    let berth = |opts: &[&str], cmd: &[&str]| -> Output {
        let mut c = Command::new(&copy);
        c.arg("--root")
            .arg(&w.state)
            .arg("run")
            .args(opts)
            .arg(&w.rootfs)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null());
        output_retrying(c)
    };
    for opts in [&[][..], &["--privileged"][..]] {
        let out = berth(opts, &["/bin/berth-probe", "report"]);
        assert!(out.status.success(), "{opts:?}: {}", text(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
        let errno = &r["pid1_exe_open_write_errno"];
        assert!(
            errno.as_i64().is_some_and(|e| e != 0),
            "{opts:?}: /proc/1/exe opened for writing (errno {errno})"
        );
        // The shell runs either way and says whether the attempt worked.
        for attempt in ["echo x > /proc/1/exe", "cat /proc/1/exe > /dev/null"] {
            let script = format!("{attempt} && echo WORKED; echo ran");
            let out = berth(opts, &["sh", "-c", &script]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{opts:?}: {}",
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), "ran\n", "{opts:?}: `{attempt}` inside");
        }
        let now = std::fs::read(&copy).expect("read the berth copy");
        assert!(now == original, "{opts:?}: the berth binary changed");
    }
}
