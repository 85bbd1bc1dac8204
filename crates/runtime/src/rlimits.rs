//! Process resource limits (`limits.nofile` and the like): checked before anything is made,
//! set in the child just before it drops privileges, so the container's init and everything
//! it starts inherit them.

use berth_spec::Rlimit;
use rustix::process::{Resource, getrlimit, setrlimit};

/// rustix's name for an rlimit key of [`berth_spec::limits::RLIMITS`].
fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "fsize" => Resource::Fsize,
        "stack" => Resource::Stack,
        "core" => Resource::Core,
        "nproc" => Resource::Nproc,
        "nofile" => Resource::Nofile,
        "memlock" => Resource::Memlock,
        "sigpending" => Resource::Sigpending,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "rtprio" => Resource::Rtprio,
        _ => return None,
    })
}

/// Refuses a hard limit above the caller's own unless it may raise it (CAP_SYS_RESOURCE in
/// the host's user namespace; a container's root never has it over the host's limits).
pub fn check(limits: &[Rlimit]) -> Result<(), String> {
    for l in limits {
        let Some(r) = resource(l.name) else {
            return Err(format!("limits.{}: not an rlimit berth knows", l.name));
        };
        if l.name == "nofile" {
            // The kernel caps open files at fs.nr_open, whoever asks (setrlimit: EPERM).
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(1 << 20);
            if l.soft.is_none_or(|v| v > nr_open) || l.hard.is_none_or(|v| v > nr_open) {
                return Err(format!(
                    "limits.nofile: at most {nr_open} (the kernel's fs.nr_open); unlimited is not possible"
                ));
            }
        }
        let own = getrlimit(r).maximum;
        let above = match (l.hard, own) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(have)) => want > have,
        };
        if above && !berth_sys::caps::has_sys_resource() {
            let show = |v: Option<u64>| v.map_or_else(|| "unlimited".into(), |v| v.to_string());
            return Err(format!(
                "limits.{}: the hard limit {} is above berth's own ({}), and raising it needs \
                 CAP_SYS_RESOURCE, which this process lacks: use at most {}",
                l.name,
                show(l.hard),
                show(own),
                show(own)
            ));
        }
    }
    Ok(())
}

/// Sets every limit of `limits` on the calling process.
pub fn apply(limits: &[Rlimit]) -> Result<(), (rustix::io::Errno, String)> {
    for l in limits {
        let Some(r) = resource(l.name) else { continue };
        let value = rustix::process::Rlimit {
            current: l.soft,
            maximum: l.hard,
        };
        setrlimit(r, value).map_err(|e| (e, format!("set limits.{}", l.name)))?;
    }
    Ok(())
}
