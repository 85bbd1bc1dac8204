//! Calls the system calls a container's seccomp filter must deny, once per x86 ABI.
//!
//! Each call runs in a forked child (see `syscalls::call_in_child`) with arguments the
//! kernel rejects after its permission check, so an unfiltered call by a fully privileged
//! process still fails and changes nothing: EPERM means seccomp (or a missing capability)
//! stopped it; any other errno means the call reached the kernel's argument checks
//! (ENOSYS: the kernel lacks the call or the ABI, e.g. x32).

use serde_json::{Map, Value, json};

use crate::syscalls::{Abi, Outcome, call_in_child};

/// x32 calls are the x86_64 numbers with this bit set (arch/x86/include/uapi/asm/unistd.h).
const X32_BIT: u64 = 0x4000_0000;

/// Invalid both in its low bits (not a KEXEC_* flag) and in its arch field (0xdead).
const BAD_KEXEC_FLAGS: u64 = 0xdead_8000;
/// Not a KEXEC_FILE_* flag, and without KEXEC_FILE_ON_CRASH.
const BAD_KEXEC_FILE_FLAGS: u64 = 0xdead_0000;
/// Not a MODULE_INIT_* flag.
const BAD_MODULE_FLAGS: u64 = 0x7ead_0000;
/// More than KEXEC_SEGMENT_MAX (16).
const TOO_MANY_SEGMENTS: u64 = 0xffff;
/// The fd -1 as the kernel reads an int argument.
const BAD_FD: u64 = u32::MAX as u64;
const NO_SUCH_MODULE: &std::ffi::CStr = c"berth_probe_no_such_mod";

/// A call, its numbers (x86_64, i386, x32 from arch/x86/entry/syscalls/syscall_{64,32}.tbl)
/// and arguments. `None`: the ABI has no such call.
struct Probe {
    name: &'static str,
    x86_64: u64,
    i386: Option<u64>,
    x32: u64,
    args: [u64; 5],
}

#[rustfmt::skip]
fn probes() -> [Probe; 10] {
    let module_name = NO_SUCH_MODULE.as_ptr() as u64;
    let nonblock = libc::O_NONBLOCK as u64;
    let p = |name, x86_64, i386, x32, args| Probe { name, x86_64, i386, x32, args };
    [
        p("getpid_ok", 39, Some(20), 39 | X32_BIT, [0; 5]),
        // -> EINVAL (flags, arch, segment count)
        p("kexec_load", 246, Some(283), 528 | X32_BIT, [0, TOO_MANY_SEGMENTS, 0, BAD_KEXEC_FLAGS, 0]),
        // -> EINVAL (flags); both fds -1
        p("kexec_file_load", 320, None, 320 | X32_BIT, [BAD_FD, BAD_FD, 0, 0, BAD_KEXEC_FILE_FLAGS]),
        // -> EFAULT (NULL handle) or EBADF (mount fd -1), by the kernel's order of checks
        p("open_by_handle_at", 304, Some(342), 304 | X32_BIT, [BAD_FD, 0, 0, 0, 0]),
        // -> ENOEXEC (image shorter than an ELF header); at most bumps a debugfs
        // failure counter (CONFIG_MODULE_STATS), as any rejected load does
        p("init_module", 175, Some(128), 175 | X32_BIT, [0; 5]),
        // -> EINVAL (flags), before the fd -1 is read
        p("finit_module", 313, Some(350), 313 | X32_BIT, [BAD_FD, 0, BAD_MODULE_FLAGS, 0, 0]),
        // -> ENOENT (no such module); the i386 ABI gets a NULL name (EFAULT), see `report`
        p("delete_module", 176, Some(129), 176 | X32_BIT, [module_name, nonblock, 0, 0, 0]),
        // -> EOPNOTSUPP (no such operation)
        p("keyctl", 250, Some(288), 250 | X32_BIT, [0x7fff, 0, 0, 0, 0]),
        // -> EFAULT (NULL key type)
        p("add_key", 248, Some(286), 248 | X32_BIT, [0; 5]),
        p("request_key", 249, Some(287), 249 | X32_BIT, [0; 5]),
    ]
}

/// {"x86_64": {name: errno}, "i386": {..}, "x32": {..}}. A value is the errno (0: the
/// call succeeded), "signal N" if the call killed the child, or null if it was not made.
pub fn report() -> Value {
    if !cfg!(target_arch = "x86_64") {
        return Value::Null;
    }
    let kexec_ok = kexec_has_no_side_effect();
    let mut out = Map::new();
    for (key, abi) in [
        ("x86_64", Abi::X86_64),
        ("i386", Abi::I386),
        ("x32", Abi::X32),
    ] {
        let mut calls = Map::new();
        for probe in probes() {
            let nr = match abi {
                Abi::X86_64 => Some(probe.x86_64),
                Abi::I386 => probe.i386,
                Abi::X32 => Some(probe.x32),
            };
            let Some(nr) = nr else { continue };
            let mut args = probe.args;
            if matches!(abi, Abi::I386) && probe.name == "delete_module" {
                // The name lives above 4 GiB, out of reach of 32-bit registers.
                args[0] = 0;
            }
            let value = if probe.name.starts_with("kexec") && !kexec_ok {
                Value::Null
            } else {
                outcome(call_in_child(abi, nr, args))
            };
            calls.insert(probe.name.to_owned(), value);
        }
        out.insert(key.to_owned(), Value::Object(calls));
    }
    Value::Object(out)
}

fn outcome(result: std::io::Result<Outcome>) -> Value {
    match result {
        Ok(Outcome::Errno(errno)) => json!(errno),
        Ok(Outcome::Signal(sig)) => json!(format!("signal {sig}")),
        Err(_) => Value::Null,
    }
}

/// Since Linux 6.6 a kexec call that passes the CAP_SYS_BOOT check decrements
/// kernel.kexec_load_limit_reboot unless it is -1 (unlimited), before the arguments are
/// checked. So the kexec calls are made only when that counter is -1, or is absent while
/// /proc/sys is visible (an older kernel, or one without kexec: nothing to decrement).
fn kexec_has_no_side_effect() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/kexec_load_limit_reboot") {
        Ok(limit) => limit.trim() == "-1",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok()
        }
        Err(_) => false,
    }
}
