//! berth: system containers for Linux. This binary only wires the command line to the
//! library crates: argument structs, output, and errors turned into exit codes.

// No Rust runtime start-up (see `main` below); the one unsafe item is that entry point.
#![cfg_attr(not(test), no_main)]
// Unit tests use the test harness's own main, which leaves the entry path unused.
#![cfg_attr(test, allow(dead_code))]
#![deny(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit status for berth's own failures in `run` and `chroot`, as chroot(8) and
/// `docker run` use it.
const EXIT_BERTH_FAILED: u8 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "System containers for Linux",
    propagate_version = true
)]
struct Cli {
    /// State directory (containers, images, caches).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(cmd::run::RunArgs),
    Chroot(cmd::chroot::ChrootArgs),
    /// Create a system container (stopped).
    Create(cmd::system::CreateArgs),
    /// Create a system container and start it.
    Launch(cmd::system::CreateArgs),
    /// Boot a container's init under a supervisor.
    Start(cmd::system::NameArg),
    /// Shut a container down cleanly (then kill what is left after the timeout).
    Stop(cmd::system::StopArgs),
    /// Stop, then start.
    Restart(cmd::system::StopArgs),
    /// Send a signal to a container's init.
    Kill(cmd::system::KillArgs),
    /// Freeze every process of a container.
    Freeze(cmd::system::NameArg),
    /// Thaw a frozen container.
    Unfreeze(cmd::system::NameArg),
    /// Delete a container.
    Delete(cmd::system::DeleteArgs),
    /// List the containers.
    List(cmd::system::ListArgs),
    /// Show one container.
    Info(cmd::system::InfoArgs),
    /// Run a command in a running container.
    Exec(cmd::system::ExecArgs),
    /// Start the containers marked autostart, in order (or stop them, with --stop).
    Autostart(cmd::system::AutostartArgs),
    /// Attach to a container's console (Ctrl-a q detaches).
    Console(cmd::system::NameArg),
    /// Print a container's console log.
    Logs(cmd::system::LogsArgs),
    /// Show or change a container's settings.
    Config(cmd::system::ConfigArgs),
    /// Show every running container's CPU, memory, processes, disk I/O and network.
    Top(cmd::top::TopArgs),
    /// Manage images: list, build, import, export, delete.
    Image(cmd::image::ImageArgs),
    /// Take a snapshot of a container's files (`snapshot NAME [SNAP]`), or `list` or
    /// `delete` them.
    Snapshot(cmd::snapshot::SnapshotArgs),
    /// Put a stopped container's files back as they were in a snapshot.
    Restore(cmd::snapshot::RestoreArgs),
    /// A new container with another's settings and a copy of its files.
    Copy(cmd::snapshot::CopyArgs),
    /// Make an image of a container's files (now, or from a snapshot).
    Publish(cmd::snapshot::PublishArgs),
    /// Manage networks: create, list, show, delete.
    Network(cmd::net::NetworkArgs),
    /// Forward host ports to a container: add, list, remove.
    Port(cmd::net::PortArgs),
    /// Find and remove what stopped or deleted containers left on the host.
    Doctor(cmd::net::DoctorArgs),
}

/// The C entry point, instead of Rust's `fn main`.
///
/// Rust's start-up code (reading /proc/self/maps for the main thread's stack bounds,
/// installing stack-overflow handlers, ignoring SIGPIPE) costs about 0.2 ms of CPU here, a
/// tenth of what `berth chroot` may add to a plain chroot. Without it the caller's signal
/// dispositions also reach the command unchanged, as chroot(8) passes them on.
#[cfg(not(test))]
#[allow(unsafe_code)]
// SAFETY: this is the program's only `main` symbol, with the C signature glibc calls it
// with; std's argument and environment access work without `lang_start` on Linux/glibc.
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let code = real_main();
    // std flushes stdout at exit only from its own start-up code.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::ffi::c_int::from(code)
}

fn real_main() -> u8 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let utf8: Option<Vec<String>> = argv
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect();
    // A container's supervisor, re-exec'd by `berth start` (never typed by a user).
    if let [_, first, rest @ ..] = argv.as_slice()
        && first == berth_manager::supervisor::RESUME_ARG
    {
        return match need_root() {
            Ok(()) => berth_manager::supervisor::resume(rest),
            Err(_) => 1,
        };
    }
    if let Some((level, root, args)) = utf8.as_deref().and_then(cmd::run::parse_fast) {
        return fast(&level, root, |root| cmd::run::main(root, args));
    }
    if let Some((level, root, args)) = utf8.as_deref().and_then(cmd::chroot::parse_fast) {
        return fast(&level, root, |root| cmd::chroot::main(root, args));
    }
    if let Some((level, root, args)) = utf8.as_deref().and_then(cmd::system::parse_fast) {
        return fast(&level, root, |root| cmd::system::exec(root, args));
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // run, chroot and exec report their own failures as 125, never as a status
                // the command itself could have returned.
                _ if runs_a_command(&argv) => EXIT_BERTH_FAILED,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    let runs = matches!(
        cli.command,
        Command::Run(_) | Command::Chroot(_) | Command::Exec(_)
    );
    if let Err(e) = init_logging(&cli.log_level) {
        eprintln!("berth: {e}");
        return if runs { EXIT_BERTH_FAILED } else { 1 };
    }
    if let Err(e) = need_root() {
        return finish(Err(Failure {
            code: if runs { EXIT_BERTH_FAILED } else { 1 },
            error: e.error,
        }));
    }
    let root = absolute(cli.root);
    let root = root.as_path();
    use cmd::system as sys;
    finish(match cli.command {
        Command::Run(args) => cmd::run::main(root, args),
        Command::Chroot(args) => cmd::chroot::main(root, args),
        Command::Create(a) => sys::create(root, a),
        Command::Launch(a) => sys::launch(root, a),
        Command::Start(a) => sys::start(root, a),
        Command::Stop(a) => sys::stop(root, a),
        Command::Restart(a) => sys::restart(root, a),
        Command::Kill(a) => sys::kill(root, a),
        Command::Freeze(a) => sys::freeze(root, a, true),
        Command::Unfreeze(a) => sys::freeze(root, a, false),
        Command::Delete(a) => sys::delete(root, a),
        Command::List(a) => sys::list(root, a),
        Command::Info(a) => sys::info(root, a),
        Command::Exec(a) => sys::exec(root, a),
        Command::Logs(a) => sys::logs(root, a),
        Command::Console(a) => sys::console(root, a),
        Command::Autostart(a) => sys::autostart(root, a),
        Command::Config(a) => sys::config(root, a),
        Command::Top(a) => cmd::top::main(root, a),
        Command::Image(a) => cmd::image::main(root, a),
        Command::Snapshot(a) => cmd::snapshot::snapshot(root, a),
        Command::Restore(a) => cmd::snapshot::restore(root, a),
        Command::Copy(a) => cmd::snapshot::copy(root, a),
        Command::Publish(a) => cmd::snapshot::publish(root, a),
        Command::Network(a) => cmd::net::network(root, a),
        Command::Port(a) => cmd::net::port(root, a),
        Command::Doctor(a) => cmd::net::doctor(root, a),
    })
}

/// Runs a hand-parsed hot command (run, chroot): the state root from `--root`, BERTH_ROOT
/// or the default, as clap would have chosen it.
fn fast(
    level: &str,
    root: Option<PathBuf>,
    command: impl FnOnce(&std::path::Path) -> Result<u8, Failure>,
) -> u8 {
    let root = absolute(
        root.or_else(|| std::env::var_os("BERTH_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(berth_store::DEFAULT_ROOT)),
    );
    if let Err(e) = init_logging(level) {
        eprintln!("berth: {e}");
        return EXIT_BERTH_FAILED;
    }
    finish(need_root().and_then(|()| command(&root)))
}

/// The state root made absolute: a supervisor outlives the caller's working directory (it
/// runs in /), and records name paths under the root.
fn absolute(root: PathBuf) -> PathBuf {
    std::path::absolute(&root).unwrap_or(root)
}

/// Prints a failure (the whole chain, once) and returns the exit status.
fn finish(result: Result<u8, Failure>) -> u8 {
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("berth: {:#}", failure.error);
            failure.code
        }
    }
}

/// Whether the command line names `run` or `chroot` (for the exit status of a usage error).
fn runs_a_command(argv: &[std::ffi::OsString]) -> bool {
    let mut args = argv.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        match a.as_ref() {
            // Global options that take a separate value.
            "--root" | "--log-level" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return a == "run" || a == "chroot" || a == "exec",
        }
    }
    false
}

/// berth creates namespaces, cgroups and mounts: say so plainly rather than fail on the
/// first of them.
fn need_root() -> Result<(), Failure> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(Failure::berth(anyhow::anyhow!(
            "berth must run as root (it creates namespaces, cgroups and mounts)"
        )))
    }
}

/// A plain level filter: an `EnvFilter` compiles regular expressions, which costs more
/// than the whole of `berth chroot`'s own work.
fn init_logging(level: &str) -> Result<(), String> {
    let filter: tracing_subscriber::filter::LevelFilter = level.parse().map_err(|_| {
        format!("invalid --log-level {level:?}: use error, warn, info, debug or trace")
    })?;
    tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    Ok(())
}

/// An error with the exit status to report.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn berth(error: anyhow::Error) -> Self {
        Failure {
            code: EXIT_BERTH_FAILED,
            error,
        }
    }
}

impl From<berth_runtime::LaunchError> for Failure {
    fn from(e: berth_runtime::LaunchError) -> Self {
        Failure {
            code: e.code,
            error: anyhow::anyhow!(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written chroot parser agrees with clap wherever it answers.
    #[test]
    fn fast_chroot_parser_agrees_with_clap() {
        let lines: &[&[&str]] = &[
            &["berth", "chroot", "/srv/r"],
            &[
                "berth",
                "chroot",
                "/srv/r",
                "make",
                "-j4",
                "--userspec=x",
                "-h",
            ],
            &[
                "berth",
                "--root",
                "/x",
                "chroot",
                "--userspec=u:g",
                "--groups",
                "a,b",
                "/r",
                "id",
            ],
            &[
                "berth",
                "--log-level",
                "debug",
                "chroot",
                "--skip-chdir",
                "--no-network",
                "/",
                "ls",
                "-l",
            ],
            &[
                "berth",
                "chroot",
                "--userspec",
                "1:2",
                "--",
                "/r",
                "--",
                "x",
            ],
        ];
        for line in lines {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            let (_, _, fast) = cmd::chroot::parse_fast(&argv).expect("fast path answers");
            let clap = Cli::try_parse_from(&argv).expect("clap parses");
            let Command::Chroot(slow) = clap.command else {
                panic!("not chroot: {line:?}");
            };
            assert_eq!(fast, slow, "{line:?}");
        }
    }

    /// The hand-written run parser agrees with clap wherever it answers.
    #[test]
    fn fast_run_parser_agrees_with_clap() {
        let lines: &[&[&str]] = &[
            &["berth", "run", "busybox"],
            &["berth", "run", "busybox", "echo", "hi"],
            &["berth", "run", "busybox", "--", "sh", "-c", "exit 3"],
            &[
                "berth",
                "--root",
                "/x",
                "run",
                "--name",
                "n1",
                "--privileged",
                "--net",
                "host",
                "/r",
                "--",
                "true",
            ],
            &[
                "berth",
                "run",
                "--bind",
                "/a:/b:ro",
                "--bind=/c:/d",
                "--ephemeral",
                "-u",
                "1:2",
                "-w",
                "/tmp",
                "-e",
                "A=1",
                "--env=B=2",
                "--hostname",
                "h",
                "-t",
                "--memory",
                "1G",
                "--pids=5",
                "--cpus",
                "0.5",
                "busybox",
                "--",
                "id",
                "-u",
            ],
            &[
                "berth",
                "--log-level=debug",
                "run",
                "--net=none",
                "busybox",
                "--",
                "--weird-command",
            ],
            &["berth", "run", "--net", "bridge", "busybox"],
            &["berth", "run", "--net=bridge=lab", "busybox", "true"],
        ];
        for line in lines {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            let (_, _, fast) = cmd::run::parse_fast(&argv).expect("fast path answers");
            let clap = Cli::try_parse_from(&argv).expect("clap parses");
            let Command::Run(slow) = clap.command else {
                panic!("not run: {line:?}");
            };
            assert_eq!(fast, slow, "{line:?}");
        }
        for line in [
            &["berth", "run"][..],
            &["berth", "run", "--help"],
            &["berth", "run", "--bogus", "busybox"],
            &["berth", "run", "--net", "wifi", "busybox"],
            &["berth", "run", "busybox", "--ephemeral"],
            &["berth", "run", "-te", "A=1", "busybox"],
        ] {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            assert!(cmd::run::parse_fast(&argv).is_none(), "{line:?}");
        }
    }

    /// The hand-written exec parser agrees with clap wherever it answers.
    #[test]
    fn fast_exec_parser_agrees_with_clap() {
        let lines: &[&[&str]] = &[
            &["berth", "exec", "web", "--", "true"],
            &[
                "berth",
                "--root",
                "/x",
                "exec",
                "web",
                "-t",
                "-u",
                "1:2",
                "--cwd=/tmp",
                "-e",
                "A=1",
                "--env",
                "B=2",
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
            &["berth", "exec", "web", "--user=0", "--", "--odd-command"],
        ];
        for line in lines {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            let (_, _, fast) = cmd::system::parse_fast(&argv).expect("fast path answers");
            let Command::Exec(slow) = Cli::try_parse_from(&argv).expect("clap parses").command
            else {
                panic!("not exec: {line:?}");
            };
            assert_eq!(fast, slow, "{line:?}");
        }
        for line in [
            &["berth", "exec", "web"][..],
            &["berth", "exec", "web", "true"],
            &["berth", "exec", "--help"],
            &["berth", "exec", "web", "--bogus", "--", "x"],
        ] {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            assert!(cmd::system::parse_fast(&argv).is_none(), "{line:?}");
        }
    }

    /// Everything else is left to clap, which explains it.
    #[test]
    fn fast_chroot_parser_declines_the_unusual() {
        let lines: &[&[&str]] = &[
            &["berth", "chroot"],
            &["berth", "chroot", "--help"],
            &["berth", "chroot", "--bogus", "/r"],
            &["berth", "chroot", "--userspec"],
            &["berth", "run", "busybox"],
            &["berth", "--version"],
        ];
        for line in lines {
            let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            assert!(cmd::chroot::parse_fast(&argv).is_none(), "{line:?}");
        }
    }
}
