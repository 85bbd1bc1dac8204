//! `berth run`: a command in a new, fully isolated container, without a supervisor.

use super::limit_flags::LimitFlags;
use crate::Failure;
use anyhow::{Context, anyhow};
use berth_spec::{Limits, NetMode, Plan, User, passwd, validate};
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Run a command in a new container and exit with its status.
#[derive(Args, Debug, PartialEq)]
#[command(
    after_help = "SOURCE is an image name (built in: busybox) or a path to a root filesystem directory.\n\
Exit status: the command's own; 128+N when signal N ended it; 125 when berth failed; 126 when the command cannot be run; 127 when it was not found."
)]
pub struct RunArgs {
    /// Image name or root filesystem directory.
    source: String,
    /// Command and arguments (default: /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// A name for the container (its cgroup is berth-NAME); default run-PID.
    #[arg(long)]
    name: Option<String>,
    /// No user namespace: container root is host root (LXC's default; less isolated).
    #[arg(long)]
    privileged: bool,
    /// Network: `none` (a namespace with loopback only, the default), `host`, or `bridge`
    /// / `bridge=NETWORK` (eth0 on a managed network: an address, NAT and DNS).
    #[arg(long, value_parser = parse_net, default_value = "none", value_name = "none|host|TYPE[=ARG][,KEY=VALUE...]")]
    net: Net,
    /// Bind mount SRC:DST[:ro] (repeatable).
    #[arg(long = "bind", value_name = "SRC:DST[:ro]")]
    binds: Vec<String>,
    /// Write to a throwaway tmpfs overlay: nothing reaches the rootfs.
    #[arg(long)]
    ephemeral: bool,
    /// Run as UID[:GID] (numbers inside the container).
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w', default_value = "/")]
    cwd: String,
    /// Set an environment variable (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// Hostname inside the container (default: the image or directory name).
    #[arg(long)]
    hostname: Option<String>,
    /// Allocate a pseudo-terminal (automatic when stdin is a terminal).
    #[arg(long, short = 't')]
    tty: bool,
    #[command(flatten)]
    limits: LimitFlags,
}

/// The cgroup controllers a `run` container joins: those its limits and accounting use. The
/// other v1 hierarchies (devices, freezer, name=systemd, ...) serve system containers.
const RUN_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

/// `--net`: none (the default), host, or an interface as on create (`bridge`,
/// `bridge=NET`, `routed=ADDRESS`, `macvlan=PARENT`, then [[net]] keys), whose address on a
/// managed network is reserved for the run and given back at its end.
#[derive(Clone, Debug, PartialEq)]
enum Net {
    None,
    Host,
    Iface(Box<berth_spec::config::NetConfig>),
}

fn parse_net(text: &str) -> Result<Net, String> {
    match text {
        "none" => return Ok(Net::None),
        "host" => return Ok(Net::Host),
        _ => {}
    }
    let mut n = berth_spec::config::NetConfig::of("bridge");
    for (k, v) in super::net::net_settings(text)? {
        n.set(k.trim_start_matches("net."), &v)
            .map_err(|e| e.to_string())?;
    }
    n.validate().map_err(|e| format!("--net {text}: {e}"))?;
    Ok(Net::Iface(Box::new(n)))
}

/// `berth [--root DIR] [--log-level L] run [OPTIONS] SOURCE [-- COMMAND...]` parsed by hand:
/// building clap's parser for every command of berth costs a tenth of a millisecond or more
/// on each start, on the path that must stay within 0.5x of crun. Anything unusual (help,
/// an unknown option, an option after SOURCE, combined short flags) returns None, and clap
/// parses the line and explains. Returns the log level, the state root and the arguments.
pub fn parse_fast(argv: &[String]) -> Option<(String, Option<PathBuf>, RunArgs)> {
    let (level, root, rest) = super::global_prefix(argv, "run")?;
    let mut a = RunArgs {
        source: String::new(),
        command: Vec::new(),
        name: None,
        privileged: false,
        net: Net::None,
        binds: Vec::new(),
        ephemeral: false,
        user: None,
        cwd: "/".into(),
        envs: Vec::new(),
        hostname: None,
        tty: false,
        limits: LimitFlags::default(),
    };
    let mut it = rest.iter();
    loop {
        let arg = it.next()?;
        let (opt, inline) = super::split_inline(arg);
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match opt {
            "--name" => a.name = Some(value()?),
            "--privileged" if inline.is_none() => a.privileged = true,
            "--net" => a.net = parse_net(&value()?).ok()?,
            "--bind" => a.binds.push(value()?),
            "--ephemeral" if inline.is_none() => a.ephemeral = true,
            "--user" | "-u" => a.user = Some(value()?),
            "--cwd" | "-w" => a.cwd = value()?,
            "--env" | "-e" => a.envs.push(value()?),
            "--hostname" => a.hostname = Some(value()?),
            "--tty" | "-t" if inline.is_none() => a.tty = true,
            "--memory" => a.limits.memory = Some(value()?),
            "--pids" => a.limits.pids = Some(value()?),
            "--cpus" => a.limits.cpus = Some(value()?),
            _ if arg.starts_with('-') => return None,
            _ => {
                a.source = arg.clone();
                break;
            }
        }
    }
    let mut rest = it.peekable();
    match rest.peek() {
        Some(first) if *first == "--" => {
            rest.next();
        }
        Some(first) if first.starts_with('-') => return None,
        _ => {}
    }
    a.command = rest.cloned().collect();
    Some((level, root, a))
}

pub fn main(state_root: &Path, args: RunArgs) -> Result<u8, Failure> {
    let iface = match &args.net {
        Net::Iface(n) => Some(n.clone()),
        _ => None,
    };
    let (mut plan, host) = plan(state_root, args).map_err(Failure::berth)?;
    let Some(net) = iface else {
        let status = berth_runtime::run(&plan, &host)?;
        return Ok(u8::try_from(status).unwrap_or(255));
    };
    // eth0 on the network, its address reserved under the run's own key (given back at the
    // end, or by `berth doctor` once this process is gone).
    let store = berth_store::Store::open(state_root).map_err(|e| Failure::berth(e.into()))?;
    let key = berth_manager::networks::run_key();
    let mut iface = berth_manager::networks::attach_run(&store, &key, &net)
        .map_err(|e| Failure::berth(e.into()))?;
    if !plan.ephemeral {
        // The user's own directory: its resolv.conf is theirs.
        iface.dns = None;
    }
    plan.net = NetMode::Interface(Box::new(iface));
    let status = berth_runtime::run(&plan, &host);
    if let Err(e) = berth_manager::networks::release(&store, &key) {
        tracing::warn!("giving back the address of this run: {e}");
    }
    Ok(u8::try_from(status?).unwrap_or(255))
}

/// The limit flags, checked as `[limits]` is, the errors naming the flags.
fn limits(a: &RunArgs) -> anyhow::Result<Limits> {
    let flag_names = |msg: String| {
        let mut msg = msg;
        // Longest first: limits.memory must not eat the start of limits.memory_high.
        let mut keys: Vec<&str> = berth_spec::config::KEYS
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("limits.").map(|_| *k))
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
        for key in keys {
            let name = key.trim_start_matches("limits.");
            let flag = if berth_spec::limits::RLIMITS.iter().any(|r| r.0 == name) {
                format!("rlimit {name}")
            } else {
                name.replace('_', "-")
            };
            msg = msg.replace(key, &format!("--{flag}"));
        }
        anyhow!(msg)
    };
    let config = a.limits.to_config().map_err(flag_names)?;
    let mut limits = config
        .resolve(super::host::cpus())
        .map_err(|e| flag_names(e.to_string()))?;
    berth_cgroups::resolve_devices(&mut limits).map_err(|(_, why)| anyhow!("--io-*: {why}"))?;
    berth_runtime::rlimits::check(&limits.rlimits).map_err(flag_names)?;
    // An image source is always run over a throwaway layer (see `plan`).
    if limits.disk.is_some() && !a.ephemeral && super::is_path_source(&a.source) {
        return Err(anyhow!(
            "--disk sizes the throwaway layer of --ephemeral; without it `run` writes into the \
             root filesystem directory itself: add --ephemeral"
        ));
    }
    if limits.net_ingress.is_some() || limits.net_egress.is_some() {
        return Err(anyhow!(
            "--net-ingress and --net-egress shape a system container's veth; `run` does not \
             shape its network (use `berth launch` with the limits)"
        ));
    }
    Ok(limits)
}

/// Turns the arguments into a Plan, refusing bad input before anything is created.
fn plan(state_root: &Path, a: RunArgs) -> anyhow::Result<(Plan, berth_runtime::Host)> {
    let limits = limits(&a)?;
    let binds = a
        .binds
        .iter()
        .map(|b| validate::bind(b))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = a
        .envs
        .iter()
        .map(|e| validate::env(e))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = validate::container_path(&a.cwd)?;
    if let Some(h) = &a.hostname {
        validate::hostname(h)?;
    }
    let user_spec = a.user.as_deref().map(validate::user).transpose()?;
    if let Some((uid, gid)) = user_spec
        && !a.privileged
    {
        let limit = berth_store::subid::CONTAINER_IDS;
        if uid >= limit || gid.is_some_and(|g| g >= limit) {
            return Err(anyhow!(
                "--user {}: the container's ids are 0 to {} (or use --privileged)",
                a.user.as_deref().unwrap_or(""),
                limit - 1
            ));
        }
    }
    if limits.pids.is_some_and(|p| p < 2) {
        return Err(anyhow!(
            "--pids must be at least 2: berth's init and the command are both processes of the container"
        ));
    }
    // Its cgroup is berth-run.NAME: the '.' keeps run containers apart from system
    // containers (berth-NAME), whose names cannot contain one.
    let name = match &a.name {
        Some(n) => format!("run.{}", validate::name(n)?),
        None => format!("run.{}", std::process::id()),
    };

    let is_path = super::is_path_source(&a.source);
    let (rootfs, default_hostname) = if is_path {
        let p = PathBuf::from(&a.source);
        let canon = p
            .canonicalize()
            .with_context(|| format!("root filesystem {} does not exist", p.display()))?;
        if !canon.is_dir() {
            return Err(anyhow!(
                "root filesystem {} is not a directory",
                p.display()
            ));
        }
        let base = canon
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        (canon, base)
    } else {
        validate::image_name(&a.source).map_err(|_| anyhow!("unknown image {:?}: name an image (`berth image list`) or a root filesystem directory", a.source))?;
        let store = berth_store::Store::open(state_root)?;
        let image = berth_manager::images::resolve_or_build(&store, &a.source)?;
        // The hostname: the name's last part ("debian/bookworm" → "bookworm").
        let host = a.source.rsplit('/').next().unwrap_or("berth").to_string();
        (image.rootfs, host)
    };
    let hostname = match a.hostname {
        Some(h) => h,
        None => validate::hostname(&default_hostname)
            .map(str::to_string)
            .unwrap_or_else(|_| "berth".into()),
    };

    // Read as the container sees it: symlinks resolved inside, only a small regular file.
    let passwd_text =
        berth_runtime::resolve::read_in_root(&rootfs, "/etc/passwd", 1 << 20).unwrap_or_default();
    let entries = passwd::parse_passwd(&passwd_text);
    let user = match user_spec {
        None => User {
            uid: 0,
            gid: 0,
            groups: vec![],
        },
        Some((uid, gid)) => {
            let entry = entries.iter().find(|e| e.uid == uid);
            User {
                uid,
                gid: gid.or(entry.map(|e| e.gid)).unwrap_or(0),
                groups: vec![],
            }
        }
    };
    let home = entries
        .iter()
        .find(|e| e.uid == user.uid)
        .map(|e| e.home.clone())
        .unwrap_or_else(|| {
            if user.uid == 0 {
                "/root".into()
            } else {
                "/".into()
            }
        });
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), berth_runtime::exec::DEFAULT_PATH.into()),
        ("HOME".into(), home),
        ("TERM".into(), term),
        ("container".into(), "berth".into()),
    ];
    for (k, v) in envs {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }

    let id_map = if a.privileged {
        None
    } else {
        Some(berth_manager::lower::id_map()?)
    };
    let command_is_default = a.command.is_empty();
    let command = if command_is_default {
        vec!["/bin/sh".to_string()]
    } else {
        a.command
    };
    // A pty only for an interactive use (both ends on a terminal), or when asked: with
    // output redirected, stdout and stderr must stay apart and unchanged.
    let terminal = a.tty
        || (rustix::termios::isatty(rustix::stdio::stdin())
            && rustix::termios::isatty(rustix::stdio::stdout()));
    let plan = Plan {
        name,
        rootfs,
        rootfs_recursive: false,
        // An image is a template: a run never changes it.
        ephemeral: a.ephemeral || !is_path,
        overlay_rw: None,
        disk: None,
        command,
        command_is_default,
        env: env
            .into_iter()
            .map(|(k, v)| OsString::from(format!("{k}={v}")))
            .collect(),
        cwd,
        user,
        hostname: Some(hostname),
        id_map,
        // A bridge's eth0 is added by `main` once the network has a lease for the run.
        net: match a.net {
            Net::Host => NetMode::Host,
            Net::None | Net::Iface(_) => NetMode::Loopback,
        },
        cgroupns: true,
        mount_sys: true,
        tmpfs_run_tmp: true,
        binds,
        limits,
        cgroup: true,
        terminal,
        init_stub: true,
        new_session: true,
        close_fds: true,
        confine: true,
    };
    // The cpuset and blkio hierarchies only when a limit needs them (v1: each joined
    // hierarchy costs a directory on the start path).
    let mut controllers = RUN_CONTROLLERS.to_vec();
    if plan.limits.cpuset.is_some() {
        controllers.push("cpuset");
    }
    if plan.limits.io_weight.is_some() || !plan.limits.io.is_empty() {
        controllers.push("blkio");
    }
    let host = super::host::runtime_host(state_root, Some(&controllers))?;
    Ok((plan, host))
}
