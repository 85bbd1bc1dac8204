//! lxcfs, so that `free`, `nproc`, `uptime` and `top` inside a container tell the truth:
//! one lxcfs (Debian's package) per state root, started by the first container start that
//! needs it and restarted by the next one if it died (berth has no daemon to watch it);
//! each container gets its files bound over /proc and /sys. Without the package, those
//! files show the host's figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;
use berth_store::Store;

/// The lxcfs program.
const LXCFS: &str = "/usr/bin/lxcfs";

/// FUSE's statfs magic (include/uapi/linux/magic.h): lxcfs is mounted there.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Where the lxcfs of the host's service manager is mounted (lxcfs.service), used when
/// present rather than starting another.
const SYSTEM_MOUNT: &str = "/var/lib/lxcfs";

/// How long a fresh lxcfs may take to mount its filesystem.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The files lxcfs virtualises, as (path under its mount, path in the container).
pub const FILES: &[&str] = &[
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/stat",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/swaps",
    "/proc/diskstats",
    "/sys/devices/system/cpu/online",
];

/// Where the lxcfs of `store` is mounted.
pub fn mount_dir(store: &Store) -> PathBuf {
    store.root().join("run").join("lxcfs")
}

/// The file holding the pid of the lxcfs of `store`.
pub fn pid_file(store: &Store) -> PathBuf {
    store.root().join("run").join("lxcfs.pid")
}

/// Whether `dir` holds a working lxcfs mount (FUSE, answering).
// f_type's type differs between architectures (i64 here, u32 on some): the cast is needed
// there.
#[allow(clippy::unnecessary_cast)]
fn healthy(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|st| st.f_type as i64 == FUSE_SUPER_MAGIC)
        && std::fs::metadata(dir.join("proc/meminfo")).is_ok()
}

/// The lxcfs mount of `store`, started if it is not running; None without the lxcfs
/// package. Under a lock, so that parallel starts start one lxcfs.
pub fn ensure(store: &Store) -> Result<Option<PathBuf>, Error> {
    if !Path::new(LXCFS).exists() {
        return Ok(None);
    }
    // The host's own lxcfs (Debian's lxcfs.service mounts it here), when it runs.
    let system = Path::new(SYSTEM_MOUNT);
    if healthy(system) {
        return Ok(Some(system.to_path_buf()));
    }
    let dir = mount_dir(store);
    if healthy(&dir) {
        return Ok(Some(dir));
    }
    let run = store.root().join("run");
    std::fs::create_dir_all(&run).map_err(|e| Error::Io {
        what: format!("create {}", run.display()),
        source: e,
    })?;
    let _lock =
        berth_store::atomic::lock_file(&run.join("lxcfs.lock"), true).map_err(Error::Store)?;
    if healthy(&dir) {
        return Ok(Some(dir));
    }
    // A dead lxcfs leaves its mount behind, answering ENOTCONN: take it away first.
    let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        what: format!("create {}", dir.display()),
        source: e,
    })?;
    let log = std::fs::File::create(run.join("lxcfs.log")).map_err(|e| Error::Io {
        what: "create the lxcfs log".into(),
        source: e,
    })?;
    let mut cmd = std::process::Command::new(LXCFS);
    cmd.arg("--foreground")
        .arg("--enable-loadavg")
        // The cpus limit (CFS quota) counts in /proc/cpuinfo and /proc/stat, not only the
        // cpuset.
        .arg("--enable-cfs")
        .arg("--enable-pidfd")
        .arg("--pidfile")
        .arg(pid_file(store))
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // A daemon: it outlives `start`, in a session of its own, holding none of the caller's
    // descriptors or its working directory.
    cmd.current_dir("/");
    berth_sys::exec::daemonize(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| Error::Io {
        what: format!("start {LXCFS}"),
        source: e,
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !healthy(&dir) {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(run.join("lxcfs.log")).unwrap_or_default();
            return Err(Error::Io {
                what: format!(
                    "lxcfs exited ({status}) before mounting {} (see {}; `lxcfs = false` in the config does without): {}",
                    dir.display(),
                    run.join("lxcfs.log").display(),
                    text.lines().last().unwrap_or("")
                ),
                source: std::io::Error::other("lxcfs failed"),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Io {
                what: format!(
                    "lxcfs did not mount {} within 5 s (see {})",
                    dir.display(),
                    run.join("lxcfs.log").display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not waited for: it is a daemon from here on (the pid file names it).
    drop(child);
    Ok(Some(dir))
}

/// The binds that put lxcfs's files over the container's: those lxcfs provides.
pub fn binds(dir: &Path) -> Vec<berth_spec::Bind> {
    FILES
        .iter()
        .map(|f| (dir.join(f.trim_start_matches('/')), *f))
        .filter(|(src, _)| src.exists())
        .map(|(source, target)| berth_spec::Bind {
            source,
            target: target.to_string(),
            readonly: true,
        })
        .collect()
}
