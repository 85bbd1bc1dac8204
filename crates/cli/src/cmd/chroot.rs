//! `berth chroot`: a drop-in replacement for GNU chroot(8), with the command isolated in
//! mount, pid, ipc and uts namespaces and given a /proc and /dev of its own.

use crate::Failure;
use anyhow::{Context, anyhow};
use berth_spec::passwd::{self, UserRef};
use berth_spec::{Limits, NetMode, Plan, User};
use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Run COMMAND with root directory set to NEWROOT, isolated (GNU chroot's grammar).
#[derive(Args, Debug, PartialEq)]
#[command(
    after_help = "Exit status: 125 if berth itself fails, 126 if COMMAND cannot be run, 127 if it is not found, otherwise COMMAND's own."
)]
pub struct ChrootArgs {
    /// Run as USER:GROUP (names or numbers, resolved inside NEWROOT).
    #[arg(long, value_name = "USER:GROUP")]
    userspec: Option<String>,
    /// Supplementary groups G1,G2,... (names or numbers, resolved inside NEWROOT).
    #[arg(long, value_name = "G1,G2,...")]
    groups: Option<String>,
    /// Do not change the working directory to '/' (only with NEWROOT = '/').
    #[arg(long)]
    skip_chdir: bool,
    /// An empty network namespace (loopback only) instead of the host's network.
    #[arg(long)]
    no_network: bool,
    newroot: PathBuf,
    /// Command and arguments (default: "${SHELL:-/bin/sh} -i").
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// GNU chroot's grammar, parsed by hand for `berth [--root DIR] [--log-level L] chroot ...`:
/// a build daemon starts thousands of these, and building clap's parser costs a tenth of what
/// `berth chroot` may add to a plain chroot. Anything unusual (help, version, an unknown or
/// incomplete option) returns None, and clap then parses the line and explains the error.
/// Returns the log level and the arguments.
pub fn parse_fast(argv: &[String]) -> Option<(String, Option<PathBuf>, ChrootArgs)> {
    let (log_level, root, rest) = super::global_prefix(argv, "chroot")?;
    let mut it = rest.iter();
    let mut args = ChrootArgs {
        userspec: None,
        groups: None,
        skip_chdir: false,
        no_network: false,
        newroot: PathBuf::new(),
        command: Vec::new(),
    };
    loop {
        let a = it.next()?;
        match a.as_str() {
            "--userspec" => args.userspec = Some(it.next()?.clone()),
            "--groups" => args.groups = Some(it.next()?.clone()),
            "--skip-chdir" => args.skip_chdir = true,
            "--no-network" => args.no_network = true,
            "--" => {
                args.newroot = PathBuf::from(it.next()?);
                break;
            }
            _ if a.starts_with("--userspec=") => {
                args.userspec = Some(a["--userspec=".len()..].to_string())
            }
            _ if a.starts_with("--groups=") => {
                args.groups = Some(a["--groups=".len()..].to_string())
            }
            _ if a.starts_with('-') => return None,
            _ => {
                args.newroot = PathBuf::from(a);
                break;
            }
        }
    }
    args.command = it.cloned().collect();
    Some((log_level, root, args))
}

pub fn main(state_root: &Path, args: ChrootArgs) -> Result<u8, Failure> {
    let plan = plan(args).map_err(Failure::berth)?;
    // The state root holds only the seccomp cache for chroot.
    let host = super::host::runtime_host(state_root, None).map_err(Failure::berth)?;
    let status = berth_runtime::run(&plan, &host)?;
    Ok(u8::try_from(status).unwrap_or(255))
}

fn plan(a: ChrootArgs) -> anyhow::Result<Plan> {
    let rootfs = a
        .newroot
        .canonicalize()
        .with_context(|| format!("cannot change root directory to '{}'", a.newroot.display()))?;
    if !rootfs.is_dir() {
        return Err(anyhow!(
            "cannot change root directory to '{}': Not a directory",
            a.newroot.display()
        ));
    }
    let is_old_root = rootfs == Path::new("/");
    if a.skip_chdir && !is_old_root {
        return Err(anyhow!(
            "option --skip-chdir only permitted if NEWROOT is old '/'"
        ));
    }
    let user = credentials(&rootfs, a.userspec.as_deref(), a.groups.as_deref())?;
    let command_is_default = a.command.is_empty();
    let command = if command_is_default {
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        vec![shell, "-i".into()]
    } else {
        a.command
    };
    let cwd = if a.skip_chdir {
        std::env::current_dir()
            .context("read the current directory")?
            .to_string_lossy()
            .into_owned()
    } else {
        "/".into()
    };
    Ok(Plan {
        name: format!("chroot-{}", std::process::id()),
        rootfs,
        rootfs_recursive: true,
        ephemeral: false,
        overlay_rw: None,
        disk: None,
        command,
        command_is_default: false,
        env: std::env::vars_os().map(|(k, v)| join_env(k, v)).collect(),
        cwd,
        user,
        hostname: None,
        id_map: None,
        net: if a.no_network {
            NetMode::Loopback
        } else {
            NetMode::Host
        },
        cgroupns: false,
        mount_sys: false,
        tmpfs_run_tmp: false,
        binds: vec![],
        limits: Limits::default(),
        cgroup: false,
        terminal: false,
        init_stub: true,
        new_session: false,
        close_fds: false,
        confine: true,
    })
}

fn join_env(k: OsString, v: OsString) -> OsString {
    let mut e = k;
    e.push("=");
    e.push(v);
    e
}

/// Resolves --userspec and --groups inside NEWROOT, as chroot(8) does: a user given by name
/// without --groups gets that user's groups from NEWROOT's /etc/group.
fn credentials(root: &Path, userspec: Option<&str>, groups: Option<&str>) -> anyhow::Result<User> {
    // Read as the command will see them: symlinks resolved inside NEWROOT, small regular
    // files only (a FIFO would block berth forever).
    let read = |p| berth_runtime::resolve::read_in_root(root, p, 1 << 20).unwrap_or_default();
    let users = passwd::parse_passwd(&read("/etc/passwd"));
    let grps = passwd::parse_group(&read("/etc/group"));
    let current = rustix::process::getgroups()
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    let mut user = User {
        uid: 0,
        gid: 0,
        groups: current,
    };
    let mut user_name = None;
    if let Some(spec) = userspec {
        let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
        if !u.is_empty() {
            match passwd::lookup_user(&users, u).ok_or_else(|| anyhow!("invalid user {u:?}"))? {
                UserRef::Entry(e) => {
                    user.uid = e.uid;
                    user.gid = e.gid;
                    user_name = Some(e.name.clone());
                }
                UserRef::Number(n) => {
                    user.uid = n;
                    user.gid = n;
                    if g.is_empty() {
                        return Err(anyhow!("no group specified for unknown uid: {n}"));
                    }
                }
            }
        }
        if !g.is_empty() {
            user.gid =
                passwd::lookup_group(&grps, g).ok_or_else(|| anyhow!("invalid group {g:?}"))?;
        }
        user.groups = vec![user.gid];
    }
    match groups {
        Some(list) => {
            user.groups = list
                .split(',')
                .filter(|g| !g.is_empty())
                .map(|g| {
                    passwd::lookup_group(&grps, g).ok_or_else(|| anyhow!("invalid group {g:?}"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        None => {
            if let Some(name) = user_name {
                user.groups = passwd::groups_of(&grps, &name, user.gid);
            }
        }
    }
    Ok(user)
}
