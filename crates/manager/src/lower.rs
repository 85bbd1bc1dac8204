//! A system container's config, lowered to the runtime's Plan.

use crate::Error;
pub use crate::layers::Layers;
use berth_spec::config::{Config, signal_number};
use berth_spec::{Bind, IdMap, Limits, NetMode, Plan, User};
use berth_store::Store;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Container `name`'s files: a directory rootfs (its path, or its own copy of an image), or
/// an image's rootfs with the container's own layer (`layer/`: upper/ and work/) over it.
pub fn container_layers(store: &Store, name: &str, config: &Config) -> Result<Layers, Error> {
    let dir = store.container_dir(name);
    if config.rootfs.image.is_none() {
        return Ok(Layers {
            lower: rootfs_path(config)?,
            upper: None,
        });
    }
    let missing = |p: &Path| Error::RootfsMissing(name.to_string(), p.display().to_string());
    if !is_overlay(store, name, config) {
        // Its own copy, never the image itself, which other containers share.
        let own = dir.join("rootfs");
        return if own.is_dir() {
            Ok(Layers {
                lower: own,
                upper: None,
            })
        } else {
            Err(missing(&own))
        };
    }
    // By its id, straight to its directory (start's hot path: no image metadata parsed).
    let lower = match config.rootfs.image_id.as_deref() {
        Some(id) if store.images_dir().join(id).join("rootfs").is_dir() => {
            store.images_dir().join(id).join("rootfs")
        }
        _ => image_of(store, config)?.rootfs,
    };
    let layer = dir.join("layer");
    if !layer.join("upper").is_dir() {
        return Err(missing(&layer));
    }
    Ok(Layers {
        lower,
        upper: Some(layer.join("upper")),
    })
}

/// Whether container `name` keeps its files as a layer over its image. A container made
/// before berth had layers has a `rootfs/` copy and no `mode` in its config: a copy.
pub fn is_overlay(store: &Store, name: &str, config: &Config) -> bool {
    let dir = store.container_dir(name);
    config.rootfs.is_overlay()
        && !(config.rootfs.mode.is_none()
            && dir.join("rootfs").is_dir()
            && !dir.join("layer").exists())
}

/// The image a config's container is made from: by the id it was made from, else by name.
pub fn image_of(store: &Store, config: &Config) -> Result<berth_image::Image, Error> {
    let images = berth_image::Images::open(store)?;
    let name = config.rootfs.image.as_deref().unwrap_or_default();
    let found = match &config.rootfs.image_id {
        Some(id) => images.by_id(id)?,
        None => images.resolve(name)?,
    };
    found.ok_or_else(|| {
        berth_image::Error::Bad(
            name.to_string(),
            "the image this container was made from is gone; recreate the container".into(),
        )
        .into()
    })
}

/// A path rootfs's directory.
fn rootfs_path(config: &Config) -> Result<PathBuf, Error> {
    config
        .rootfs
        .path
        .clone()
        .ok_or_else(|| berth_spec::SpecError::Key("rootfs", "set image or path".into()).into())
}

/// The name container `name` goes by on the host, for its cgroup (`berth-` + this): the name
/// itself under the default state root, and `.HASH-NAME` under another, HASH naming the
/// root, so that two roots may each hold a container `web` without one's start killing the
/// other's processes (a cgroup is host-wide; names are per root).
pub fn host_name(store: &Store, name: &str) -> String {
    // The store's root is canonical (Store::open).
    let root = store.root().to_path_buf();
    let default = std::fs::canonicalize(berth_store::DEFAULT_ROOT)
        .unwrap_or_else(|_| PathBuf::from(berth_store::DEFAULT_ROOT));
    if root == default {
        return name.to_string();
    }
    // FNV-1a, 32 bits: stable across builds and versions (std's hashers are not).
    let hash = std::os::unix::ffi::OsStrExt::as_bytes(root.as_os_str())
        .iter()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
    format!(".{hash:08x}-{name}")
}

/// The container's limits, checked, with their devices looked up on this host.
///
/// Limits this version cannot enforce on a system container are refused rather than
/// accepted and ignored: a quota that silently does nothing is worse than none.
pub fn limits(config: &Config) -> Result<Limits, Error> {
    let mut limits = config.limits.resolve(crate::ops::host_cpus())?;
    berth_cgroups::resolve_devices(&mut limits).map_err(|(device, why)| {
        // Name the key that named the device.
        let l = &config.limits;
        let key = [
            ("limits.io_read_bps", &l.io_read_bps),
            ("limits.io_write_bps", &l.io_write_bps),
            ("limits.io_read_iops", &l.io_read_iops),
            ("limits.io_write_iops", &l.io_write_iops),
        ]
        .into_iter()
        .find(|(_, v)| v.as_deref().is_some_and(|v| v.contains(device.as_str())))
        .map_or("limits.io", |(k, _)| k);
        Error::Spec(berth_spec::SpecError::Key(key, why))
    })?;
    berth_runtime::rlimits::check(&limits.rlimits)
        .map_err(|e| Error::Spec(berth_spec::SpecError::Plain(e)))?;
    let refuse = |key: &'static str, why: &str| {
        Err(Error::Spec(berth_spec::SpecError::Key(
            key,
            why.to_string(),
        )))
    };
    crate::disks::check_config(config, &limits)?;
    if limits.net_ingress.is_some() || limits.net_egress.is_some() {
        let key = if limits.net_ingress.is_some() {
            "limits.net_ingress"
        } else {
            "limits.net_egress"
        };
        let kind = berth_spec::config::NetConfig::effective(&config.nets).kind;
        if !matches!(kind.as_str(), "bridge" | "routed") {
            return refuse(
                key,
                &format!(
                    "shaping works on the host end of a veth (net.type bridge or routed), and net.type is {kind}"
                ),
            );
        }
    }
    Ok(limits)
}

/// The Plan that starts container `name`.
pub fn plan(store: &Store, name: &str, config: &Config) -> Result<Plan, Error> {
    let layers = container_layers(store, name, config)?;
    let rootfs = layers.lower.clone();
    let overlay_rw = layers
        .upper
        .as_ref()
        .and_then(|up| up.parent())
        .map(Path::to_path_buf);
    let limits = limits(config)?;
    let id_map = if config.privileged {
        None
    } else {
        Some(id_map()?)
    };
    let net = match config.nets.first().map(|n| n.kind.as_str()) {
        Some("host") => NetMode::Host,
        _ => NetMode::Loopback,
    };
    let binds: Vec<Bind> = config
        .mounts
        .iter()
        .map(|m| Bind {
            source: m.source.clone(),
            target: m.target.clone(),
            readonly: m.readonly,
        })
        .collect();
    Ok(Plan {
        name: host_name(store, name),
        rootfs,
        rootfs_recursive: false,
        ephemeral: false,
        overlay_rw,
        disk: berth_image::disk::of(&store.container_dir(name)),
        command: config.init.clone(),
        command_is_default: false,
        env: [
            "container=berth",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=linux",
            "HOME=/root",
        ]
        .iter()
        .map(OsString::from)
        .collect(),
        cwd: "/".into(),
        user: User {
            uid: 0,
            gid: 0,
            groups: vec![],
        },
        hostname: Some(config.hostname.clone().unwrap_or_else(|| name.to_string())),
        id_map,
        net,
        cgroupns: true,
        mount_sys: true,
        tmpfs_run_tmp: true,
        binds,
        limits,
        cgroup: true,
        init_stub: false,
        new_session: true,
        terminal: true,
        close_fds: true,
        confine: true,
    })
}

/// An unprivileged container's id mapping: container ids 0-65535 onto the start of root's
/// subordinate ranges (/etc/subuid, /etc/subgid), which are added when root has none.
pub fn id_map() -> Result<IdMap, Error> {
    let u = berth_store::subid::root_range(Path::new("/etc/subuid"))?;
    let g = berth_store::subid::root_range(Path::new("/etc/subgid"))?;
    Ok(IdMap {
        host_uid: u.start,
        host_gid: g.start,
        count: berth_store::subid::CONTAINER_IDS,
    })
}

/// The signal that halts the container's init cleanly: the configured one, or the one its
/// init understands (systemd: SIGRTMIN+3; busybox: SIGUSR2; sysvinit and others: SIGPWR, as
/// LXC does).
pub fn stop_signal(config: &Config, rootfs: &Path) -> i32 {
    if let Some(s) = config.stop_signal.as_deref().and_then(signal_number) {
        return s;
    }
    let init = config
        .init
        .first()
        .map(String::as_str)
        .unwrap_or("/sbin/init");
    let target = resolve_in(rootfs, init);
    let name = target.to_string_lossy();
    if name.contains("systemd") {
        libc::SIGRTMIN() + 3
    } else if name.contains("busybox") {
        libc::SIGUSR2
    } else {
        libc::SIGPWR
    }
}

/// Writes the container's hostname into the rootfs's /etc/hostname, where an init (systemd,
/// Debian's hostname.sh) reads it at boot and would otherwise set the name the rootfs came
/// with. Only an existing regular file is replaced.
pub fn write_hostname(layers: &Layers, hostname: &str) {
    if layers.read("/etc/hostname", 4096).is_some()
        && let Err(e) = layers.replace("/etc/hostname", &format!("{hostname}\n"))
    {
        tracing::warn!("could not write /etc/hostname: {e}");
    }
}

/// sysvinit halts on SIGPWR only through a `powerfail` entry of /etc/inittab, which
/// Debian's lacks (its `pf::powerwait` merely warns): add one that halts, as LXC's Debian
/// template does. Only for a sysvinit rootfs (an inittab, an init that is neither systemd
/// nor busybox) that has no such entry yet.
pub fn prepare_sysvinit(layers: &Layers, config: &Config) {
    // The init is the image's: an upper layer is fresh at create.
    if stop_signal(config, &layers.lower) != libc::SIGPWR || config.stop_signal.is_some() {
        return;
    }
    let Some(inittab) = layers.read("/etc/inittab", 1 << 20) else {
        return;
    };
    let has_powerfail = inittab
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.split(':').nth(2) == Some("powerfail"));
    if has_powerfail {
        return;
    }
    let text = format!(
        "{inittab}\n# Added by berth: `berth stop` sends SIGPWR to halt cleanly.\np0::powerfail:/sbin/init 0\n"
    );
    if let Err(e) = layers.replace("/etc/inittab", &text) {
        tracing::warn!("could not add a powerfail entry to /etc/inittab: {e}");
    }
}

/// Follows the symlinks of `path` inside `rootfs` (a few levels, never leaving it) to find
/// what the init really is.
fn resolve_in(rootfs: &Path, path: &str) -> PathBuf {
    let mut current = PathBuf::from(path);
    for _ in 0..8 {
        let on_host = rootfs.join(current.strip_prefix("/").unwrap_or(&current));
        match std::fs::read_link(&on_host) {
            Ok(t) if t.is_absolute() => current = t,
            Ok(t) => current = current.parent().unwrap_or(Path::new("/")).join(t),
            Err(_) => break,
        }
    }
    current
}
