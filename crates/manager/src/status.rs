//! `berth list` and `berth info`: what each container is and does.

use crate::Error;
use crate::ops::{Manager, paths};
use berth_cgroups::Cgroup;
use serde::Serialize;

/// running, stopped or frozen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Stopped,
    Frozen,
}

/// One container, as `list --format json` and `info --format json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub name: String,
    pub state: RunState,
    pub pid: Option<i32>,
    pub ipv4: Vec<String>,
    pub image: Option<String>,
    pub autostart: bool,
    /// Unix time of the start, when running.
    pub started_at: Option<u64>,
    pub supervisor_pid: Option<i32>,
    pub cgroup: Vec<String>,
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// The `[limits]` set in the config, as written there.
    pub limits: std::collections::BTreeMap<String, String>,
    /// What the running container uses, from its cgroup.
    pub usage: Option<berth_cgroups::Usage>,
    /// The container's own disk (`limits.disk`), while it runs: its filesystem's size and
    /// the bytes in use.
    pub disk_size_bytes: Option<u64>,
    pub disk_used_bytes: Option<u64>,
    /// eth0: its type (bridge, routed, macvlan, none, host), MAC, the network or bridge it
    /// joins and the host end of its veth (where tcpdump and tc look).
    pub net: crate::networks::NetInfo,
}

impl Manager {
    /// The container `name`.
    pub fn info(&self, name: &str) -> Result<ContainerInfo, Error> {
        let config = self.config(name)?;
        let state = self.running_state(name)?;
        let (run_state, memory, cpu, usage) = match &state {
            Some(s) => {
                let cg = Cgroup::adopt(&paths(s));
                let st = if cg.is_frozen() {
                    RunState::Frozen
                } else {
                    RunState::Running
                };
                let u = cg.usage();
                cg.release();
                let c = u.cpu_nanos.map(|n| n as f64 / 1e9);
                (st, u.memory_bytes, c, Some(u))
            }
            None => (RunState::Stopped, None, None, None),
        };
        let disk = state
            .as_ref()
            .filter(|_| berth_image::disk::of(&self.store.container_dir(name)).is_some())
            .and_then(|s| disk_use(s.pid));
        Ok(ContainerInfo {
            name: name.to_string(),
            state: run_state,
            pid: state.as_ref().map(|s| s.pid),
            ipv4: if state.is_some() {
                crate::networks::addresses(&self.store, name, &config)
            } else {
                Vec::new()
            },
            image: config
                .rootfs
                .image
                .clone()
                .or_else(|| config.rootfs.path.as_ref().map(|p| p.display().to_string())),
            autostart: config.autostart.enabled,
            started_at: state.as_ref().map(|s| s.started_at),
            supervisor_pid: state
                .as_ref()
                .filter(|s| s.supervisor_alive())
                .map(|s| s.supervisor_pid),
            cgroup: state.as_ref().map(|s| s.cgroup.clone()).unwrap_or_default(),
            memory_bytes: memory,
            cpu_seconds: cpu,
            limits: limit_table(&config),
            usage,
            disk_size_bytes: disk.map(|d| d.0),
            disk_used_bytes: disk.map(|d| d.1),
            net: crate::networks::info(&self.store, name, &config),
        })
    }

    /// Every container, by name.
    pub fn list(&self) -> Result<Vec<ContainerInfo>, Error> {
        self.store.list()?.iter().map(|n| self.info(n)).collect()
    }
}

/// The `[limits]` keys a config sets, each as its text.
fn limit_table(config: &berth_spec::config::Config) -> std::collections::BTreeMap<String, String> {
    let Ok(toml::Value::Table(t)) = toml::Value::try_from(&config.limits) else {
        return Default::default();
    };
    t.into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

/// Size and use of a running container's own disk: its root is an overlay, whose statfs
/// reports the filesystem of its upper layer, the disk.
pub(crate) fn disk_use(pid: i32) -> Option<(u64, u64)> {
    let st = rustix::fs::statfs(format!("/proc/{pid}/root")).ok()?;
    let block = st.f_frsize as u64;
    let size = st.f_blocks as u64 * block;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * block;
    Some((size, used))
}
