//! state.json: what is running. A pid alone is not trusted: the kernel reuses pids, so the
//! record keeps each process's start time (field 22 of /proc/PID/stat), and a process whose
//! start time differs is not the container's, whatever its pid.

use crate::{Store, StoreError, atomic};
use serde::{Deserialize, Serialize};

/// A running container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The container's init, as seen from the host.
    pub pid: i32,
    pub pid_start: u64,
    /// The supervisor ("berth: NAME").
    pub supervisor_pid: i32,
    pub supervisor_start: u64,
    /// Unix time the container started.
    pub started_at: u64,
    /// The cgroup directories of the container.
    pub cgroup: Vec<String>,
    /// The signal that halts its init cleanly.
    pub stop_signal: i32,
    /// The boot this record belongs to (/proc/sys/kernel/random/boot_id): after a reboot a
    /// pid and start time can match an unrelated process.
    #[serde(default)]
    pub boot_id: String,
    /// The process limits the init got (`limits.nofile`, ...), which `exec` gives its
    /// commands too, without reading the config: (name, soft, hard), None = unlimited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<(String, Option<u64>, Option<u64>)>,
}

/// This boot's id.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of process `pid` in clock ticks since boot, or None when there is no such
/// process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`, and not a zombie (dead,
/// waiting to be reaped).
pub fn same_process(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.get(s.rfind(')')? + 2..)
                .map(|r| r.starts_with('Z') || r.starts_with('X'))
        })
        .unwrap_or(true)
}

impl State {
    /// The init is alive (and is the one recorded). An init on its way out (killed: its
    /// namespaces already released while the kernel ends the rest of its pid namespace) is
    /// not: nothing could join it any more.
    pub fn init_alive(&self) -> bool {
        self.this_boot()
            && same_process(self.pid, self.pid_start)
            && std::fs::read_link(format!("/proc/{}/ns/mnt", self.pid)).is_ok()
    }

    pub fn supervisor_alive(&self) -> bool {
        self.this_boot() && same_process(self.supervisor_pid, self.supervisor_start)
    }

    fn this_boot(&self) -> bool {
        self.boot_id.is_empty() || self.boot_id == boot_id()
    }
}

impl Store {
    /// The recorded state of container `name`, if it has one.
    pub fn read_state(&self, name: &str) -> Result<Option<State>, StoreError> {
        let path = self.container_dir(name).join("state.json");
        match std::fs::read(&path) {
            // What a crash between the unsynced write and its flush leaves: nothing runs
            // after a crash (and a record from before a reboot is refused by its boot id).
            Ok(bytes) if bytes.is_empty() => Ok(None),
            // Unreadable (a crash can leave zeros): no running container is known. Its
            // processes, if any, are in its cgroup, which the next start or delete clears.
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(state) => Ok(Some(state)),
                Err(e) => {
                    tracing::warn!(
                        "ignoring the unreadable state record {}: {e}",
                        path.display()
                    );
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &path)(e)),
        }
    }

    pub fn write_state(&self, name: &str, state: &State) -> Result<(), StoreError> {
        let path = self.container_dir(name).join("state.json");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::BadState {
            name: name.to_string(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        atomic::write_unsynced(&path, &bytes, 0o644)
    }

    pub fn clear_state(&self, name: &str) -> Result<(), StoreError> {
        let path = self.container_dir(name).join("state.json");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_tells_processes_apart() {
        let me = std::process::id() as i32;
        let t = start_time(me).expect("own start time");
        assert!(same_process(me, t));
        assert!(!same_process(me, t + 1));
        assert!(!same_process(i32::MAX - 1, t));
    }

    #[test]
    fn state_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("store");
        s.create_container("web", "").expect("create");
        assert_eq!(s.read_state("web").expect("read"), None);
        let st = State {
            rlimits: vec![],
            pid: 1,
            pid_start: 2,
            supervisor_pid: 3,
            supervisor_start: 4,
            started_at: 5,
            cgroup: vec!["/sys/fs/cgroup/memory/berth-web".into()],
            stop_signal: 12,
            boot_id: boot_id(),
        };
        s.write_state("web", &st).expect("write");
        assert_eq!(s.read_state("web").expect("read"), Some(st));
        s.clear_state("web").expect("clear");
        assert_eq!(s.read_state("web").expect("read"), None);
    }

    #[test]
    fn an_empty_or_garbled_state_file_is_no_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("store");
        s.create_container("web", "").expect("create");
        let path = s.container_dir("web").join("state.json");
        // What a crash before the unsynced record reached the disk leaves behind.
        std::fs::write(&path, b"").expect("write");
        assert_eq!(s.read_state("web").expect("read"), None);
        std::fs::write(&path, b"{\"pid\": ").expect("write");
        assert_eq!(s.read_state("web").expect("read"), None);
        std::fs::write(&path, [0u8; 64]).expect("write");
        assert_eq!(s.read_state("web").expect("read"), None);
    }
}
