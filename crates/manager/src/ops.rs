//! The operations, one function each; every one takes the container's lock first, so that
//! two commands on one container run one after the other.

use crate::{Error, lower, supervisor};
use berth_cgroups::Cgroup;
use berth_spec::config::{Config, Rootfs};
use berth_spec::{User, validate};
use berth_store::Store;
use berth_store::state::State;
use rustix::io::Errno;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state root's manager.
pub struct Manager {
    pub store: Store,
}

/// What a new container is made from.
pub enum CreateSource {
    Image(String),
    Path(PathBuf),
}

/// `berth stop` options.
pub struct StopOptions {
    pub timeout: Duration,
    pub force: bool,
}

/// `berth exec` options.
pub struct ExecOptions {
    pub command: Vec<String>,
    pub user: Option<(u32, Option<u32>)>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub terminal: bool,
}

/// The CPUs berth may use (its affinity mask), the ceiling for `limits.cpus`. Not std's
/// `available_parallelism`, which also reads cgroup quota files: every command that loads a
/// config (`start`, `exec`) would pay for it.
pub fn host_cpus() -> usize {
    rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as usize)
        .unwrap_or(1)
        .max(1)
}

impl Manager {
    pub fn open(root: &Path) -> Result<Manager, Error> {
        Ok(Manager {
            store: Store::open(root)?,
        })
    }

    /// Loads and validates container `name`'s config.
    pub fn config(&self, name: &str) -> Result<Config, Error> {
        validate::name(name)?;
        let text = self.store.read_config(name)?;
        Ok(Config::parse(&text, host_cpus())?)
    }

    /// `berth create`: a new, stopped container. Every setting is checked, and the image
    /// built if it is the built-in one, before the container directory appears.
    pub fn create(
        &self,
        source: CreateSource,
        name: &str,
        base: Option<&str>,
        sets: &[(String, String)],
    ) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        self.store.sweep();
        if self.store.exists(name) {
            return Err(berth_store::StoreError::Exists(name.to_string()).into());
        }
        let rootfs = match source {
            CreateSource::Image(image) => {
                validate::image_name(&image)?;
                Rootfs {
                    image: Some(image),
                    ..Rootfs::default()
                }
            }
            CreateSource::Path(path) => {
                let canon = path.canonicalize().map_err(|e| Error::Io {
                    what: format!("root filesystem {}", path.display()),
                    source: e,
                })?;
                if !canon.is_dir() {
                    return Err(Error::Io {
                        what: format!("root filesystem {}", path.display()),
                        source: std::io::Error::other("not a directory"),
                    });
                }
                Rootfs {
                    path: Some(canon),
                    ..Rootfs::default()
                }
            }
        };
        let mut config = match base {
            Some(text) => {
                let mut c: Config = Config::parse(text, host_cpus())?;
                c.rootfs = rootfs;
                c
            }
            None => Config::new(rootfs),
        };
        config = config.with_all(sets, host_cpus())?;
        // Devices named by I/O limits exist, and every limit is one this host can enforce.
        let limits = lower::limits(&config)?;
        crate::networks::check_config(&self.store, name, &config)?;
        // Find (or build) the image now, so that a bad image name fails here, and record
        // which one it is: the container stays on it whatever the name points at later.
        // Until the container is in place, no image removal may run (see users_lock).
        let _users = match &config.rootfs.image {
            Some(_) => Some(berth_image::Images::open(&self.store)?.users_lock(false)?),
            None => None,
        };
        let image = match &config.rootfs.image {
            Some(name) => Some(crate::images::resolve_or_build(&self.store, name)?),
            None => None,
        };
        config.rootfs.image_id = image.as_ref().map(|i| i.id.clone());
        let overlay = config.rootfs.is_overlay();
        let hostname = config.hostname.clone().unwrap_or_else(|| name.to_string());
        self.store
            .create_container_with(name, &config.to_toml()?, |dir| {
                let layers = match &image {
                    None => lower::Layers {
                        lower: config.rootfs.path.clone().unwrap_or_default(),
                        upper: None,
                    },
                    // The container's own layer over the shared image: instant, and small.
                    Some(image) if overlay => {
                        let layer = dir.join("layer");
                        new_layer(&layer, &image.rootfs)?;
                        lower::Layers {
                            lower: image.rootfs.clone(),
                            upper: Some(layer.join("upper")),
                        }
                    }
                    Some(image) => {
                        // As it is: owners, modes, hard links, xattrs.
                        crate::snapshots::copy_all(&image.rootfs, &dir.join("rootfs")).map_err(
                            |e| berth_store::StoreError::Io {
                                action: "copy the image",
                                path: image.rootfs.clone(),
                                source: std::io::Error::other(e.to_string()),
                            },
                        )?;
                        lower::Layers {
                            lower: dir.join("rootfs"),
                            upper: None,
                        }
                    }
                };
                lower::prepare_sysvinit(&layers, &config);
                lower::write_hostname(&layers, &hostname);
                // The layer, as prepared, moves into the container's own disk.
                crate::disks::make(dir, &limits).map_err(|e| berth_store::StoreError::Io {
                    action: "limits.disk:",
                    path: PathBuf::from(name),
                    source: std::io::Error::other(match e {
                        Error::Image(berth_image::Error::Disk(why)) => why,
                        other => other.to_string(),
                    }),
                })?;
                Ok(())
            })?;
        Ok(())
    }

    /// The state of `name` if its init is alive; a stale record is cleaned up.
    pub fn running_state(&self, name: &str) -> Result<Option<State>, Error> {
        let Some(state) = self.store.read_state(name)? else {
            return Ok(None);
        };
        if state.init_alive() {
            return Ok(Some(state));
        }
        // Nobody is left to clean up after this container: do it now, but only under its
        // lock and only if the record is still this one (a locked `start` may be replacing
        // it; a caller that holds the lock itself leaves it to the next reader, or to its
        // own clearing of orphans).
        if !state.supervisor_alive()
            && let Ok(Some(_lock)) = self.store.try_lock(name)
            && self.store.read_state(name).ok().flatten().as_ref() == Some(&state)
        {
            let _ = Cgroup::adopt(&paths(&state)).remove();
            self.store.clear_state(name)?;
        }
        Ok(None)
    }

    /// `berth start`: boots the container's init under a supervisor; returns once init runs.
    pub fn start(&self, name: &str) -> Result<(), Error> {
        let config = self.config(name)?;
        let lock = self.store.lock(name)?;
        if self.running_state(name)?.is_some() {
            return Err(Error::Running(name.to_string()));
        }
        // What an interrupted restore or copy left is set right before the files are used.
        crate::snapshots::recover(&self.store, name);
        let mut plan = lower::plan(&self.store, name, &config)?;
        // eth0: its network up (made on first use) and its address reserved.
        if let Some(iface) = crate::networks::attach(&self.store, name, &config)? {
            plan.net = berth_spec::NetMode::Interface(Box::new(iface));
        }
        // What the container's users see of its limits: lxcfs's files, started if need be
        // (after the plan is made, so that a bad config starts nothing).
        if config.lxcfs != Some(false) {
            match crate::lxcfs::ensure(&self.store) {
                Ok(Some(dir)) => plan.binds.extend(crate::lxcfs::binds(&dir)),
                Ok(None) => {}
                // The container still runs, with the host's figures in /proc.
                Err(e) => {
                    tracing::warn!("lxcfs: {e}; the container's /proc shows the host's figures")
                }
            }
        }
        let stop_signal = lower::stop_signal(&config, &plan.rootfs);
        let layout = berth_cgroups::Layout::detect()?;
        let leftovers = clear_orphans(&self.store, &layout, name)?;
        let host = berth_runtime::Host {
            cgroups: Some(layout),
            cache_dir: self.store.root().join("cache"),
        };
        let started = supervisor::spawn(&self.store, name, &plan, &host, stop_signal, lock);
        if started.is_err() && self.store.read_state(name).ok().flatten().is_none() {
            // The supervisor died before recording the container: end what it started.
            let _ = Cgroup::adopt(&leftovers).remove();
        }
        started?;
        if plan.limits.net_ingress.is_some() || plan.limits.net_egress.is_some() {
            crate::networks::shape(&self.store, name, &config, &plan.limits).map_err(|e| {
                Error::Start {
                    name: name.to_string(),
                    reason: format!("it runs, but its bandwidth limits failed: {e}"),
                }
            })?;
        }
        // Its port forwards, now that it runs (they follow its address).
        crate::networks::started(&self.store, &config).map_err(|e| Error::Start {
            name: name.to_string(),
            reason: format!("it runs, but its port forwards failed: {e}"),
        })
    }

    /// `berth stop`: the init's halt signal, then (after the timeout) everything in the
    /// container's cgroup killed; returns once the container is down and cleaned up.
    pub fn stop(&self, name: &str, opts: &StopOptions) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        self.stop_locked(name, opts)
    }

    fn stop_locked(&self, name: &str, opts: &StopOptions) -> Result<(), Error> {
        crate::snapshots::recover(&self.store, name);
        let Some(state) = self.running_state(name)? else {
            return Err(Error::NotRunning(name.to_string()));
        };
        let init = open_pidfd(&state).ok_or_else(|| Error::NotRunning(name.to_string()))?;
        let cgroup = Cgroup::adopt(&paths(&state));
        let signal = if opts.force {
            libc::SIGKILL
        } else {
            state.stop_signal
        };
        if signal != libc::SIGKILL {
            // An init that does not handle its halt signal yet (it has just started) would
            // lose it: PID 1 of a namespace drops signals it has no handler for.
            wait_catches(state.pid, signal, opts.timeout.min(Duration::from_secs(3)));
        }
        send(&init, signal)?;
        // A frozen container takes no signal until it is thawed.
        if cgroup.is_frozen() {
            cgroup.set_frozen(false)?;
        }
        if opts.force || !wait_halt(&init, &cgroup, state.pid, signal, opts.timeout) {
            cgroup.kill_all()?;
            if !wait_exit(&init, Duration::from_secs(5)) {
                cgroup.release();
                return Err(Error::StopTimeout(name.to_string(), opts.timeout.as_secs()));
            }
        }
        // Cleaned up here, under the lock, whether or not a supervisor is alive: it waits for
        // the lock and then finds the container's record gone (see supervisor::finish).
        cgroup.remove()?;
        self.store.clear_state(name)?;
        if let Ok(config) = self.config(name) {
            crate::networks::stopped(&self.store, name, &config);
        }
        Ok(())
    }

    /// `berth kill`: a signal to the container's init.
    pub fn kill(&self, name: &str, signal: i32) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        let state = self
            .running_state(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))?;
        let init = open_pidfd(&state).ok_or_else(|| Error::NotRunning(name.to_string()))?;
        send(&init, signal)
    }

    /// `berth freeze` / `berth unfreeze`: the cgroup freezer (v1 freezer.state, v2
    /// cgroup.freeze).
    pub fn set_frozen(&self, name: &str, frozen: bool) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        crate::snapshots::recover(&self.store, name);
        let state = self
            .running_state(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))?;
        let cgroup = Cgroup::adopt(&paths(&state));
        let result = cgroup.set_frozen(frozen);
        cgroup.release();
        Ok(result?)
    }

    /// `berth delete`: removes a stopped container (a running one only with `force`, which
    /// kills it first).
    pub fn delete(&self, name: &str, force: bool) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        if !self.store.exists(name) {
            return Err(berth_store::StoreError::NoSuchContainer(name.to_string()).into());
        }
        if self.running_state(name)?.is_some() {
            if !force {
                return Err(Error::DeleteRunning(name.to_string()));
            }
            self.stop_locked(
                name,
                &StopOptions {
                    timeout: Duration::ZERO,
                    force: true,
                },
            )?;
        } else {
            clear_orphans(&self.store, &berth_cgroups::Layout::detect()?, name)?;
        }
        self.store.remove_container(name)?;
        // Its address is free again and its name resolves no more.
        if let Err(e) = crate::networks::release(&self.store, name) {
            tracing::warn!("releasing the address of {name}: {e}");
        }
        // An image kept only for this container (deleted with --force meanwhile) goes too.
        if let Err(e) = crate::images::prune(&self.store) {
            tracing::warn!("removing unused images: {e}");
        }
        Ok(())
    }

    /// `berth config set`: validates the new value and writes the config atomically.
    pub fn config_set(&self, name: &str, key: &str, value: &str) -> Result<Vec<String>, Error> {
        let _lock = self.store.lock(name)?;
        let old = self.config(name)?;
        let config = old.with(key, value, host_cpus())?;
        self.replace_locked(name, &old, &config)
    }

    /// `berth config set|edit`: replaces the whole config, if it validates. A running
    /// container gets the changed limits at once (the config is written only once they are
    /// in place); the notes returned name settings that take effect at the next start.
    pub fn config_replace(&self, name: &str, text: &str) -> Result<Vec<String>, Error> {
        let _lock = self.store.lock(name)?;
        let old = self.config(name)?;
        let config = Config::parse(text, host_cpus())?;
        self.replace_locked(name, &old, &config)
    }

    fn replace_locked(&self, name: &str, old: &Config, new: &Config) -> Result<Vec<String>, Error> {
        same_rootfs(old, new)?;
        let new_limits = crate::lower::limits(new)?;
        crate::networks::check_config(&self.store, name, new)?;
        let running = self.running_state(name)?;
        let old_limits = crate::live::in_force(old);
        crate::disks::change(
            &self.store,
            name,
            &old_limits,
            &new_limits,
            running.is_some(),
        )?;
        let mut notes = match &running {
            Some(state) => crate::live::apply(state, &old_limits, &new_limits)?,
            None => Vec::new(),
        };
        if running.is_some() && old.lxcfs != new.lxcfs {
            notes.push("lxcfs applies from the next start".to_string());
        }
        let written = new
            .to_toml()
            .map_err(Error::from)
            .and_then(|text| Ok(self.store.write_config(name, &text)?));
        if let Err(e) = written {
            // The kernel must not keep limits the config does not say.
            if let Some(state) = &running {
                let _ = crate::live::apply(state, &new_limits, &old_limits);
            }
            return Err(e);
        }
        if running.is_some()
            && (old_limits.net_ingress != new_limits.net_ingress
                || old_limits.net_egress != new_limits.net_egress)
            && old.nets == new.nets
        {
            crate::networks::shape(&self.store, name, new, &new_limits)?;
        }
        if running.is_some() && old.nets != new.nets {
            notes.push("the network change applies from the next start".to_string());
        }
        if running.is_some() && old.ports != new.ports {
            // Forwards follow the config at once; if the table cannot take them, the old
            // config (and its limits) come back, so that config and table agree.
            if let Err(e) = crate::networks::ports_changed(&self.store) {
                if let Ok(text) = old.to_toml() {
                    let _ = self.store.write_config(name, &text);
                }
                let _ = crate::networks::ports_changed(&self.store);
                if let Some(state) = &running {
                    let _ = crate::live::apply(state, &new_limits, &old_limits);
                }
                return Err(e);
            }
        }
        Ok(notes)
    }

    /// `berth port add`: a forward from the host's `port.host_port` to the container's
    /// `port.container_port`, in force while the container runs.
    pub fn port_add(&self, name: &str, port: berth_spec::config::PortConfig) -> Result<(), Error> {
        let _lock = self.store.lock(name)?;
        let old = self.config(name)?;
        let mut new = old.clone();
        new.ports.push(port);
        new.validate(host_cpus())?;
        self.replace_locked(name, &old, &new).map(|_| ())
    }

    /// `berth port remove`: the forward of host port `host_port` (`proto`) goes, only the
    /// one for host address `host_ip` when given.
    pub fn port_remove(
        &self,
        name: &str,
        host_port: u16,
        proto: &str,
        host_ip: Option<&str>,
    ) -> Result<(), Error> {
        let _lock = self.store.lock(name)?;
        let old = self.config(name)?;
        let mut new = old.clone();
        new.ports.retain(|p| {
            !(p.host_port == host_port
                && p.proto == proto
                && host_ip.is_none_or(|ip| p.host_ip.as_deref() == Some(ip)))
        });
        if new.ports.len() == old.ports.len() {
            return Err(Error::Container {
                name: name.to_string(),
                reason: format!(
                    "no forward of host port {host_port}/{proto} (`berth port list {name}`)"
                ),
            });
        }
        self.replace_locked(name, &old, &new).map(|_| ())
    }

    /// `berth autostart`: starts every container whose config says `autostart.enabled`, by
    /// `autostart.order` (lowest first), waiting `autostart.delay` after each; with `stop`,
    /// stops them in the reverse order. Returns each container's outcome; one failure does
    /// not keep the others from starting.
    pub fn autostart(&self, stop: bool) -> Result<Vec<Outcome>, Error> {
        let mut chosen: Vec<(i64, String, Option<Duration>)> = Vec::new();
        for name in self.store.list()? {
            let Ok(c) = self.config(&name) else { continue };
            if c.autostart.enabled {
                let delay = c.autostart.delay.as_deref().and_then(humantime_parse);
                chosen.push((c.autostart.order, name, delay));
            }
        }
        chosen.sort();
        if stop {
            chosen.reverse();
        }
        let mut outcomes = Vec::new();
        for (_, name, delay) in chosen {
            let result = if stop {
                match self.stop(
                    &name,
                    &StopOptions {
                        timeout: Duration::from_secs(30),
                        force: false,
                    },
                ) {
                    Err(Error::NotRunning(_)) => Ok(()),
                    other => other,
                }
            } else {
                match self.start(&name) {
                    Err(Error::Running(_)) => Ok(()),
                    Ok(()) => {
                        if let Some(d) = delay {
                            std::thread::sleep(d);
                        }
                        Ok(())
                    }
                    other => other,
                }
            };
            outcomes.push((name, result));
        }
        Ok(outcomes)
    }

    /// `berth console`: attaches to the console the supervisor holds, until Ctrl-a q.
    /// Returns true when the user detached (false: the container's console went away).
    pub fn console(&self, name: &str, connected: impl FnOnce()) -> Result<bool, Error> {
        self.config(name)?;
        let state = self
            .running_state(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))?;
        if !state.supervisor_alive() {
            return Err(Error::Start {
                name: name.to_string(),
                reason: "its supervisor, which holds the console, is gone; restart the container to get the console back".into(),
            });
        }
        let path = crate::supervisor::console_socket(&self.store, name);
        let sock = rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        )
        .map_err(|errno| Error::Sys {
            what: "create a socket",
            errno,
        })?;
        let addr = rustix::net::SocketAddrUnix::new(&path).map_err(|errno| Error::Sys {
            what: "console socket path",
            errno,
        })?;
        // The supervisor listens just after `start` returns: give it a moment.
        let mut tries = 0;
        while let Err(errno) = rustix::net::connect(&sock, &addr) {
            tries += 1;
            if tries > 100 || !matches!(errno, Errno::NOENT | Errno::CONNREFUSED) {
                return Err(Error::Sys {
                    what: "connect to the console",
                    errno,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        connected();
        berth_runtime::relay::console(&sock).map_err(|errno| Error::Sys {
            what: "relay the console",
            errno,
        })
    }

    /// `berth exec`: a command in the running container. Returns its exit status.
    pub fn exec(&self, name: &str, opts: ExecOptions) -> Result<i32, Error> {
        // Everything exec needs is in the state record; the config is not parsed (hot path).
        validate::name(name)?;
        if !self.store.exists(name) {
            return Err(berth_store::StoreError::NoSuchContainer(name.to_string()).into());
        }
        let state = self
            .running_state(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))?;
        if Cgroup::adopt(&paths(&state)).is_frozen() {
            return Err(Error::Frozen(name.to_string()));
        }
        let (uid, gid) = opts.user.unwrap_or((0, None));
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), berth_runtime::exec::DEFAULT_PATH.into()),
            (
                "HOME".into(),
                if uid == 0 { "/root".into() } else { "/".into() },
            ),
            (
                "TERM".into(),
                std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
            ),
            ("container".into(), "berth".into()),
        ];
        for (k, v) in opts.env {
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        let seccomp = berth_runtime::seccomp::load_or_compile(&self.store.root().join("cache"))
            .map_err(|e| Error::Start {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        let req = berth_runtime::attach::ExecRequest {
            pid: state.pid,
            pid_start: state.pid_start,
            cgroup: paths(&state),
            command: opts.command,
            env: env
                .into_iter()
                .map(|(k, v)| OsString::from(format!("{k}={v}")))
                .collect(),
            cwd: opts.cwd.unwrap_or_else(|| "/".into()),
            user: User {
                uid,
                gid: gid.unwrap_or(uid),
                groups: vec![],
            },
            terminal: opts.terminal,
            seccomp: Some(seccomp),
            confine: true,
            rlimits: state
                .rlimits
                .iter()
                .filter_map(|(name, soft, hard)| {
                    let (n, resource, _) = berth_spec::limits::RLIMITS
                        .iter()
                        .find(|(n, _, _)| n == name)?;
                    Some(berth_spec::Rlimit {
                        name: n,
                        resource: *resource,
                        soft: *soft,
                        hard: *hard,
                    })
                })
                .collect(),
        };
        Ok(berth_runtime::attach::exec(&req)?)
    }
}

/// What happened to one container in `autostart`.
pub type Outcome = (String, Result<(), Error>);

/// A duration as config.toml writes it ("5s", "500ms"); validated when the config was.
fn humantime_parse(text: &str) -> Option<Duration> {
    berth_spec::config::parse_duration(text)
}

/// An empty layer (`upper/`, `work/`) for a container over an image whose root directory is
/// `lower`: the upper root takes the lower root's mode and owner (overlayfs shows the upper's).
fn new_layer(layer: &Path, lower: &Path) -> Result<(), berth_store::StoreError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| berth_store::StoreError::Io {
            action: what,
            path: p,
            source: e,
        }
    };
    let root = std::fs::metadata(lower).map_err(io("stat", lower))?;
    for sub in ["upper", "work"] {
        let p = layer.join(sub);
        std::fs::create_dir_all(&p).map_err(io("create", &p))?;
    }
    // The layer belongs to whom the image's root belongs: host root (the layer is then
    // idmapped like the image), or the container's ids for an image chowned into them.
    for p in [layer.to_path_buf(), layer.join("upper"), layer.join("work")] {
        std::os::unix::fs::chown(&p, Some(root.uid()), Some(root.gid()))
            .map_err(io("chown", &p))?;
    }
    let upper = layer.join("upper");
    std::fs::set_permissions(
        &upper,
        std::fs::Permissions::from_mode(root.mode() & 0o7777),
    )
    .map_err(io("chmod", &upper))?;
    Ok(())
}

/// The root filesystem is chosen at create: changing `[rootfs]` afterwards would point the
/// container at files it was not made with.
fn same_rootfs(old: &Config, new: &Config) -> Result<(), Error> {
    if old.rootfs == new.rootfs {
        Ok(())
    } else {
        Err(berth_spec::SpecError::Key(
            "rootfs",
            "is fixed when a container is created: `berth copy`, or a new container, gives other files".into(),
        )
        .into())
    }
}

/// Kills and removes what is in container `name`'s cgroup while no state records it running
/// (the caller holds its lock): processes of a start whose supervisor was killed before it
/// recorded the container, or left by a crash. Returns the directories, for a later sweep.
fn clear_orphans(
    store: &Store,
    layout: &berth_cgroups::Layout,
    name: &str,
) -> Result<Vec<PathBuf>, Error> {
    let dirs = container_cgroup_dirs(store, layout, name);
    Cgroup::adopt(&dirs).remove()?;
    Ok(dirs)
}

/// Where container `name`'s cgroup directories are, in `layout`.
fn container_cgroup_dirs(
    store: &Store,
    layout: &berth_cgroups::Layout,
    name: &str,
) -> Vec<PathBuf> {
    let dir = berth_runtime::launcher::cgroup_name(&lower::host_name(store, name));
    layout
        .v1
        .iter()
        .map(|h| h.mount_point.join(&dir))
        .chain(layout.unified.iter().map(|u| u.join(&dir)))
        .collect()
}

pub(crate) fn paths(state: &State) -> Vec<PathBuf> {
    state.cgroup.iter().map(PathBuf::from).collect()
}

/// A pidfd of the container's init, if it is still the recorded process.
pub(crate) fn open_pidfd(state: &State) -> Option<rustix::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(state.pid)?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    // Checked after opening: the pidfd then names the recorded process for good.
    state.init_alive().then_some(fd)
}

fn send(pidfd: &rustix::fd::OwnedFd, signal: i32) -> Result<(), Error> {
    berth_sys::signal::pidfd_send(pidfd, signal).map_err(|errno| Error::Sys {
        what: "signal the container's init",
        errno,
    })
}

/// Waits until process `pid` has a handler for `signal` (its SigCgt in /proc), at most
/// `timeout`; an init that never installs one gets the signal anyway and then the kill.
fn wait_catches(pid: i32, signal: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let Ok(bit) = u32::try_from(signal - 1) else {
        return;
    };
    loop {
        let caught = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            });
        match caught {
            Some(mask) if mask & (1u64 << bit) != 0 => return,
            None => return, // gone, or unreadable: nothing to wait for
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for the init to finish its clean shutdown, at most `timeout`. busybox's init, once
/// every other process is gone, only sleeps (1 s after SIGTERM, 1 s after SIGKILL) before it
/// powers off: when it has been alone for a moment, it is ended at once (the sleeps are
/// most of lxc-stop's 2 s).
fn wait_halt(
    init: &rustix::fd::OwnedFd,
    cgroup: &Cgroup,
    pid: i32,
    signal: i32,
    timeout: Duration,
) -> bool {
    const STEP: Duration = Duration::from_millis(10);
    let deadline = Instant::now() + timeout;
    let mut alone_since: Option<Instant> = None;
    loop {
        if wait_exit(init, STEP) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if signal == libc::SIGUSR2 {
            if cgroup.pids() == [pid] {
                let since = *alone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(30) {
                    let _ = send(init, libc::SIGKILL);
                }
            } else {
                alone_since = None;
            }
        }
    }
}

/// Waits until the process behind `pidfd` has exited, at most `timeout`.
pub(crate) fn wait_exit(pidfd: &rustix::fd::OwnedFd, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}
