//! The commands on system containers: create, launch, start, stop, restart, kill, freeze,
//! unfreeze, delete, list, info, exec, logs and config. Each parses its arguments, calls
//! berth-manager and prints.

use crate::Failure;
use anyhow::anyhow;
use berth_manager::{ContainerInfo, CreateSource, ExecOptions, Manager, StopOptions};
use berth_spec::validate;
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Output format of listings.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// An image name (built in: busybox) or a root filesystem directory.
    image: String,
    /// The container's name: lower-case letters, digits and '-'.
    name: String,
    /// A setting, KEY=VALUE (repeatable), e.g. -c limits.memory=512MiB; applied over
    /// --config.
    #[arg(short = 'c', long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// A whole config.toml to start from.
    #[arg(long = "config", visible_alias = "config-file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// For an image: `overlay` (the container's changes over the shared image: instant and
    /// small; the default) or `copy` (a full copy of its own).
    #[arg(long, value_name = "overlay|copy")]
    storage: Option<String>,
    /// eth0: bridge (on berth0, the default), bridge=NETWORK, routed=ADDRESS,
    /// macvlan=PARENT, none or host, then [[net]] keys: e.g. bridge,ipv4=10.44.0.10/24.
    #[arg(long, value_name = "TYPE[=ARG][,KEY=VALUE...]")]
    net: Option<String>,
    #[command(flatten)]
    limits: super::limit_flags::LimitFlags,
}

#[derive(Args, Debug)]
pub struct NameArg {
    name: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    name: String,
    /// Seconds to wait for a clean shutdown before killing everything in the container.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Kill at once (SIGKILL), no clean shutdown.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    name: String,
    /// The signal (name or number).
    #[arg(long, short = 's', default_value = "SIGKILL")]
    signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    name: String,
    /// Stop (kill) the container first if it runs.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    name: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Args, Debug, PartialEq)]
pub struct ExecArgs {
    name: String,
    /// Allocate a pseudo-terminal (automatic when stdin and stdout are terminals).
    #[arg(short = 't', long)]
    tty: bool,
    /// UID[:GID] inside the container.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w')]
    cwd: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e')]
    envs: Vec<String>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    name: String,
    /// Keep printing what the console writes, until the container stops (or ^C).
    #[arg(long, short = 'f')]
    follow: bool,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    op: ConfigOp,
}

#[derive(Subcommand, Debug)]
enum ConfigOp {
    /// Print the whole config.toml.
    Show { name: String },
    /// Print one setting.
    Get { name: String, key: String },
    /// Change settings, KEY=VALUE (validated; nothing is written if one is wrong).
    Set {
        name: String,
        #[arg(required = true)]
        sets: Vec<String>,
    },
    /// Edit config.toml in $EDITOR; the result is written only if it validates.
    Edit { name: String },
}

fn manager(root: &Path) -> Result<Manager, Failure> {
    Manager::open(root).map_err(fail)
}

pub(crate) fn fail(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: e.into(),
    }
}

fn key_values(sets: &[String]) -> Result<Vec<(String, String)>, Failure> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    fail(anyhow!(
                        "invalid setting {s:?}: use KEY=VALUE, e.g. limits.memory=512MiB"
                    ))
                })
        })
        .collect()
}

pub fn create(root: &Path, a: CreateArgs) -> Result<u8, Failure> {
    let m = manager(root)?;
    let source = if super::is_path_source(&a.image) {
        CreateSource::Path(PathBuf::from(&a.image))
    } else {
        CreateSource::Image(a.image.clone())
    };
    let base = match &a.config_file {
        Some(f) => Some(
            std::fs::read_to_string(f).map_err(|e| fail(anyhow!("read {}: {e}", f.display())))?,
        ),
        None => None,
    };
    let mut sets = key_values(&a.sets)?;
    if let Some(storage) = &a.storage {
        sets.push(("rootfs.mode".into(), storage.clone()));
    }
    sets.extend(a.limits.settings().map_err(|e| fail(anyhow!(e)))?);
    if let Some(net) = &a.net {
        sets.extend(super::net::net_settings(net).map_err(|e| fail(anyhow!(e)))?);
    }
    m.create(source, &a.name, base.as_deref(), &sets)
        .map_err(fail)?;
    Ok(0)
}

pub fn launch(root: &Path, a: CreateArgs) -> Result<u8, Failure> {
    let name = a.name.clone();
    create(root, a)?;
    manager(root)?.start(&name).map_err(fail)?;
    Ok(0)
}

pub fn start(root: &Path, a: NameArg) -> Result<u8, Failure> {
    manager(root)?.start(&a.name).map_err(fail)?;
    Ok(0)
}

pub fn stop(root: &Path, a: StopArgs) -> Result<u8, Failure> {
    let opts = StopOptions {
        timeout: Duration::from_secs(a.timeout),
        force: a.force,
    };
    manager(root)?.stop(&a.name, &opts).map_err(fail)?;
    Ok(0)
}

pub fn restart(root: &Path, a: StopArgs) -> Result<u8, Failure> {
    let m = manager(root)?;
    let opts = StopOptions {
        timeout: Duration::from_secs(a.timeout),
        force: a.force,
    };
    match m.stop(&a.name, &opts) {
        Ok(()) | Err(berth_manager::Error::NotRunning(_)) => {}
        Err(e) => return Err(fail(e)),
    }
    m.start(&a.name).map_err(fail)?;
    Ok(0)
}

pub fn kill(root: &Path, a: KillArgs) -> Result<u8, Failure> {
    let sig = berth_spec::config::signal_number(&a.signal).ok_or_else(|| {
        fail(anyhow!(
            "unknown signal {:?}: use a name like SIGTERM or a number",
            a.signal
        ))
    })?;
    manager(root)?.kill(&a.name, sig).map_err(fail)?;
    Ok(0)
}

pub fn freeze(root: &Path, a: NameArg, frozen: bool) -> Result<u8, Failure> {
    manager(root)?.set_frozen(&a.name, frozen).map_err(fail)?;
    Ok(0)
}

pub fn delete(root: &Path, a: DeleteArgs) -> Result<u8, Failure> {
    manager(root)?.delete(&a.name, a.force).map_err(fail)?;
    Ok(0)
}

pub fn list(root: &Path, a: ListArgs) -> Result<u8, Failure> {
    let all = manager(root)?.list().map_err(fail)?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&all).map_err(fail)?),
        Format::Table => {
            println!(
                "{:<24} {:<8} {:>8} {:<16} {:<20} {:<9}",
                "NAME", "STATE", "PID", "IPV4", "IMAGE", "AUTOSTART"
            );
            for c in &all {
                println!(
                    "{:<24} {:<8} {:>8} {:<16} {:<20} {:<9}",
                    c.name,
                    state_word(c),
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    if c.ipv4.is_empty() {
                        "-".to_string()
                    } else {
                        c.ipv4.join(",")
                    },
                    c.image.as_deref().unwrap_or("-"),
                    if c.autostart { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(0)
}

fn state_word(c: &ContainerInfo) -> &'static str {
    match c.state {
        berth_manager::RunState::Running => "running",
        berth_manager::RunState::Stopped => "stopped",
        berth_manager::RunState::Frozen => "frozen",
    }
}

pub fn info(root: &Path, a: InfoArgs) -> Result<u8, Failure> {
    let c = manager(root)?.info(&a.name).map_err(fail)?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&c).map_err(fail)?),
        Format::Table => {
            println!("name:        {}", c.name);
            println!("state:       {}", state_word(&c));
            println!("image:       {}", c.image.as_deref().unwrap_or("-"));
            println!("autostart:   {}", c.autostart);
            if let Some(pid) = c.pid {
                println!("pid:         {pid}");
                println!(
                    "supervisor:  {}",
                    c.supervisor_pid
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "gone".into())
                );
                println!("started at:  {} (unix time)", c.started_at.unwrap_or(0));
                println!("cgroup:      {}", c.cgroup.join(" "));
                if let Some(m) = c.memory_bytes {
                    println!("memory:      {}", bytes(m));
                }
                if let Some(s) = c.cpu_seconds {
                    println!("cpu:         {s:.2} s");
                }
            }
            print_limits(&c);
        }
    }
    Ok(0)
}

/// A byte count for people: "1.5 MiB".
pub(crate) fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `berth info`'s limits table: each key set in the config, its value, and what the running
/// container uses of it.
fn print_limits(c: &ContainerInfo) {
    if c.limits.is_empty() && c.usage.is_none() {
        return;
    }
    let u = c.usage.clone().unwrap_or_default();
    let show = |v: Option<u64>| v.map(bytes).unwrap_or_else(|| "-".into());
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let used = |key: &str| -> String {
        match key {
            "memory" => {
                let mut s = format!(
                    "{} (peak {})",
                    show(u.memory_bytes),
                    show(u.memory_peak_bytes)
                );
                if let Some(k) = u.oom_kills.filter(|k| *k > 0) {
                    s.push_str(&format!(", OOM kills: {k}"));
                }
                s
            }
            "memory_high" => show(u.memory_bytes),
            "swap" => show(u.swap_bytes),
            "pids" => u.pids.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            "cpus" | "cpu_weight" | "cpuset" => {
                let mut s = c
                    .cpu_seconds
                    .map(|t| format!("{t:.2} s"))
                    .unwrap_or_else(|| "-".into());
                if key == "cpus"
                    && let Some(n) = u.cpu_throttled_periods
                {
                    s.push_str(&format!(", throttled {n} periods"));
                }
                s
            }
            "disk" => match (c.disk_used_bytes, c.disk_size_bytes) {
                (Some(u), Some(s)) => format!("{} of {}", bytes(u), bytes(s)),
                _ => "-".into(),
            },
            k if k.starts_with("io_") => format!(
                "read {}, written {}",
                show(u.io_read_bytes),
                show(u.io_write_bytes)
            ),
            _ => String::new(),
        }
    };
    for (k, v) in &c.limits {
        rows.push((k.clone(), v.clone(), used(k)));
    }
    if c.usage.is_some() {
        for key in ["memory", "pids", "cpus"] {
            if !c.limits.contains_key(key) {
                rows.push((key.to_string(), "-".into(), used(key)));
            }
        }
        if u.oom_kills.is_some_and(|k| k > 0) && !c.limits.contains_key("memory") {
            rows.push((
                "oom kills".into(),
                "-".into(),
                u.oom_kills.unwrap_or(0).to_string(),
            ));
        }
    }
    println!("limits:");
    println!("  {:<14} {:<22} USE", "KEY", "LIMIT");
    for (k, v, used) in rows {
        println!("  {k:<14} {v:<22} {used}");
    }
}

/// `berth [--root DIR] [--log-level L] exec NAME [OPTIONS] -- COMMAND...` parsed by hand,
/// as `run` is (exec is on the hot path of tools that drive containers); anything unusual
/// goes to clap.
pub fn parse_fast(argv: &[String]) -> Option<(String, Option<PathBuf>, ExecArgs)> {
    let (level, root, rest) = super::global_prefix(argv, "exec")?;
    let mut it = rest.iter();
    let name = it.next().filter(|n| !n.starts_with('-'))?.clone();
    let mut a = ExecArgs {
        name,
        tty: false,
        user: None,
        cwd: None,
        envs: Vec::new(),
        command: Vec::new(),
    };
    loop {
        let arg = it.next()?;
        let (opt, inline) = super::split_inline(arg);
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match opt {
            "--" => break,
            "--tty" | "-t" if inline.is_none() => a.tty = true,
            "--user" | "-u" => a.user = Some(value()?),
            "--cwd" | "-w" => a.cwd = Some(value()?),
            "--env" | "-e" => a.envs.push(value()?),
            _ => return None,
        }
    }
    a.command = it.cloned().collect();
    if a.command.is_empty() {
        return None;
    }
    Some((level, root, a))
}

pub fn exec(root: &Path, a: ExecArgs) -> Result<u8, Failure> {
    let user = a
        .user
        .as_deref()
        .map(validate::user)
        .transpose()
        .map_err(|e| Failure::berth(e.into()))?;
    let env = a
        .envs
        .iter()
        .map(|e| validate::env(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::berth(e.into()))?;
    let terminal = a.tty
        || (rustix::termios::isatty(rustix::stdio::stdin())
            && rustix::termios::isatty(rustix::stdio::stdout()));
    let m = Manager::open(root).map_err(|e| Failure::berth(e.into()))?;
    let status = m
        .exec(
            &a.name,
            ExecOptions {
                command: a.command,
                user,
                cwd: a.cwd,
                env,
                terminal,
            },
        )
        .map_err(|e| Failure {
            code: if e.exit_code() == 1 {
                125
            } else {
                e.exit_code()
            },
            error: e.into(),
        })?;
    Ok(u8::try_from(status).unwrap_or(255))
}

#[derive(Args, Debug)]
pub struct AutostartArgs {
    /// Stop the autostart containers, in reverse order, instead.
    #[arg(long)]
    stop: bool,
}

pub fn autostart(root: &Path, a: AutostartArgs) -> Result<u8, Failure> {
    let outcomes = manager(root)?.autostart(a.stop).map_err(fail)?;
    let mut code = 0;
    for (name, result) in outcomes {
        match result {
            Ok(()) => println!("{} {name}", if a.stop { "stopped" } else { "started" }),
            Err(e) => {
                eprintln!("berth: {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn console(root: &Path, a: NameArg) -> Result<u8, Failure> {
    let m = manager(root)?;
    let detached = m
        .console(&a.name, || {
            eprintln!(
                "berth: connected to the console of {}; type Ctrl-a q to detach",
                a.name
            )
        })
        .map_err(fail)?;
    eprintln!();
    eprintln!(
        "berth: {}",
        if detached {
            "detached"
        } else {
            "the console closed (the container stopped)"
        }
    );
    Ok(0)
}

pub fn logs(root: &Path, a: LogsArgs) -> Result<u8, Failure> {
    let m = manager(root)?;
    m.config(&a.name).map_err(fail)?;
    let dir = m.store.container_dir(&a.name);
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut out = std::io::stdout();
    if let Ok(bytes) = std::fs::read(dir.join("console.log.1")) {
        let _ = out.write_all(&bytes);
    }
    let log = dir.join("console.log");
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        // Read on from where we were; a rotation (a shorter file) starts again at its top.
        if let Ok(mut f) = std::fs::File::open(&log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < pos {
                pos = 0;
            }
            buf.clear();
            if f.seek(SeekFrom::Start(pos)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                pos += buf.len() as u64;
                if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                    return Ok(0);
                }
            }
        }
        if !a.follow {
            return Ok(0);
        }
        // Polling is enough for a console: it costs one stat a fifth of a second.
        if m.running_state(&a.name).map_err(fail)?.is_none() {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub fn config(root: &Path, a: ConfigArgs) -> Result<u8, Failure> {
    let m = manager(root)?;
    match a.op {
        ConfigOp::Show { name } => {
            print!(
                "{}",
                m.config(&name).map_err(fail)?.to_toml().map_err(fail)?
            );
        }
        ConfigOp::Get { name, key } => {
            println!(
                "{}",
                m.config(&name).map_err(fail)?.get(&key).map_err(fail)?
            );
        }
        ConfigOp::Set { name, sets } => {
            let kv = key_values(&sets)?;
            // All or nothing: every value is checked on a copy before anything is written.
            let c = m
                .config(&name)
                .and_then(|c| Ok(c.with_all(&kv, berth_manager::ops::host_cpus())?))
                .map_err(fail)?;
            let notes = m
                .config_replace(&name, &c.to_toml().map_err(fail)?)
                .map_err(fail)?;
            for n in notes {
                eprintln!("note: {n}");
            }
        }
        ConfigOp::Edit { name } => {
            let text = m.config(&name).map_err(fail)?.to_toml().map_err(fail)?;
            // A private temporary file (created exclusively, mode 0600) in the container's
            // own directory: never a predictable name in /tmp that another user could plant.
            let mut tmp = tempfile::Builder::new()
                .prefix(".edit-")
                .suffix(".toml")
                .tempfile_in(m.store.container_dir(&name))
                .map_err(fail)?;
            {
                use std::io::Write;
                tmp.write_all(text.as_bytes()).map_err(fail)?;
            }
            let editor = std::env::var("VISUAL")
                .or_else(|_| std::env::var("EDITOR"))
                .unwrap_or_else(|_| "vi".into());
            // Through the shell, as git does: EDITOR may carry arguments ("code --wait").
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("berth-edit")
                .arg(tmp.path())
                .status()
                .map_err(|e| fail(anyhow!("run the editor {editor:?}: {e}")))?;
            if !status.success() {
                return Err(fail(anyhow!(
                    "the editor {editor:?} failed; nothing changed"
                )));
            }
            let edited = std::fs::read_to_string(tmp.path()).map_err(fail)?;
            for n in m.config_replace(&name, &edited).map_err(fail)? {
                eprintln!("note: {n}");
            }
        }
    }
    Ok(0)
}
